"""Action distributions and likelihood helpers.

Dreamer V1's actor is a tanh-transformed diagonal Gaussian: with raw network outputs ``(m, s)``,

    mean = 5 * tanh(m / 5)            (keeps the pre-tanh mean in [-5, 5])
    std  = softplus(s + softplus^-1(init_std)) + min_std
    a    = tanh(mean + std * eps),  eps ~ N(0, I)

so that an untrained actor acts with std ``init_std`` (5) before the squash, i.e. almost uniformly in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dreamer_rl.nets.mlp import MLP, Activation

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(target: torch.Tensor, mean: torch.Tensor, event_dims: int) -> torch.Tensor:
    """log N(target | mean, 1) summed over the last ``event_dims`` dims: ``-0.5 (x - mu)^2 - 0.5 log 2 pi``."""
    lp = -0.5 * (target - mean).square() - 0.5 * _LOG_2PI
    return lp.flatten(-event_dims).sum(-1) if event_dims > 0 else lp


def gaussian_kl(mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean_q, std_q) || N(mean_p, std_p))`` summed over the last dim: ``[..., S] -> [...]``.

        KL = sum_i [ log(s_p / s_q) + (s_q² + (m_q - m_p)²) / (2 s_p²) - 1/2 ]
    """
    var_ratio = (std_q / std_p).square()
    mahalanobis = ((mean_q - mean_p) / std_p).square()
    return 0.5 * (var_ratio + mahalanobis - 1.0 - var_ratio.log()).sum(-1)


def mean_gaussian_nll(target: torch.Tensor, mean: torch.Tensor, event_dims: int) -> torch.Tensor:
    """``-mean log N(target | mean, 1)`` over the leading dims, summed over the last ``event_dims`` (a scalar).

    Equal to ``-gaussian_log_prob(target, mean, event_dims).mean()`` but one fused squared-error reduction instead
    of several full-size temporaries: this is the image term, over ``B*T*64*64*3`` elements.
    """
    event = math.prod(mean.shape[mean.dim() - event_dims:]) if event_dims else 1
    count = mean.numel() // event
    sse = F.mse_loss(mean, target.to(mean.dtype), reduction="sum")
    return 0.5 * sse / count + 0.5 * _LOG_2PI * event


class TanhNormalActor(nn.Module):
    """``[..., feat] -> [..., A]`` actions in [-1, 1], reparameterised (gradients flow into ``feat``).

    ``forward(feat, sample=True)`` returns a sample (``rsample``); ``sample=False`` returns the deterministic
    mode approximation ``tanh(mean)`` used for evaluation.
    """

    def __init__(self, feat_dim: int, action_dim: int, *, units: int, layers: int, act: Activation = "elu",
                 init_std: float = 5.0, min_std: float = 1e-4, mean_scale: float = 5.0) -> None:
        super().__init__()
        self.net = MLP(feat_dim, 2 * action_dim, units=units, layers=layers, act=act)
        self.raw_init_std = math.log(math.expm1(init_std))
        self.min_std = min_std
        self.mean_scale = mean_scale
        self.action_dim = action_dim

    def params(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and std, each ``[..., A]``."""
        mean, std = self.net(feat).chunk(2, -1)
        mean = self.mean_scale * torch.tanh(mean / self.mean_scale)
        std = F.softplus(std + self.raw_init_std) + self.min_std
        return mean, std

    def forward(self, feat: torch.Tensor, sample: bool = True) -> torch.Tensor:  # noqa: D102
        mean, std = self.params(feat)
        if not sample:
            return torch.tanh(mean)
        return torch.tanh(mean + std * torch.randn_like(mean))
