"""KL divergence between diagonal Gaussians and the KL regulariser of the world model.

    KL(q || p) = sum_i [ log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2 ]

``kind="free_nats"`` (PlaNet, Dreamer V1): the KL is averaged over batch and time first, then clipped from below,

    L_kl = max(mean_{b,t} KL(q_{b,t} || p_{b,t}), free_nats)

so the model is not pushed to spend less than ``free_nats`` nats per step on the latent; below the threshold the
term has no gradient. Gradients flow into both posterior and prior (no balancing; V2's balanced KL is another kind).
"""

from __future__ import annotations

from typing import Literal

import torch

KLKind = Literal["free_nats"]


def gaussian_kl(mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean_q, std_q) || N(mean_p, std_p))`` summed over the last dim: ``[..., S] -> [...]``."""
    var_ratio = (std_q / std_p).square()
    mahalanobis = ((mean_q - mean_p) / std_p).square()
    return 0.5 * (var_ratio + mahalanobis - 1.0 - var_ratio.log()).sum(-1)


def kl_loss(mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor, *,
            kind: KLKind = "free_nats", free_nats: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The KL term of the world-model loss and the raw mean KL (for logging), both scalars.

    Inputs ``[B, T, S]``. ``kind`` selects the regulariser (see the module docstring).
    """
    kl = gaussian_kl(mean_q, std_q, mean_p, std_p).mean()
    if kind == "free_nats":
        return torch.clamp(kl, min=free_nats), kl.detach()
    raise ValueError(f"KL kind {kind!r} is not implemented; available: 'free_nats'")
