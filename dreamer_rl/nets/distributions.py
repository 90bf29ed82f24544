"""Gaussian likelihood helpers (the V1 heads).

The actors live in :mod:`dreamer_rl.nets.actors`; ``TanhNormalActor`` is re-exported here for existing imports.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dreamer_rl.nets.actors import TanhNormalActor

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


__all__ = ["TanhNormalActor", "gaussian_kl", "gaussian_log_prob", "mean_gaussian_nll"]
