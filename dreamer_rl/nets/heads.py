"""Scalar prediction heads (reward, critic) and the observation-likelihood kinds of the world model.

``ScalarHead`` kinds (``model.reward_head``, ``behavior.critic_head``):

- ``gaussian`` (V1, V2): an MLP predicts the mean ``μ`` of ``N(μ, 1)``; ``loss = -log N(y | μ, 1)
  = ½ (y - μ)² + ½ log 2π``.
- ``symexp_twohot`` (V3): an MLP predicts logits over ``K`` bins ``b_k`` spaced evenly in symlog space
  (:func:`dreamer_rl.nets.outputs.twohot_bins`); the prediction is ``Σ_k softmax(l)_k b_k`` and the loss the
  cross-entropy against the two-hot encoding of ``y`` (weights on the two bins around ``y``). Its output layer
  starts at zero (V3's ``outscale: 0``), so an untrained head predicts 0 with uniform probabilities.

Observation likelihoods (``model.obs_loss``), per element summed over the observation's dims, averaged over the
leading ``[B, T]``: ``gaussian`` ``½ (x - x̂)² + ½ log 2π`` (V1, V2), ``mse`` ``(x - x̂)²`` (V3 pixels), and
``symlog_mse`` ``(symlog(x) - x̂)²`` (V3 vectors: the decoder predicts in symlog space, so large-magnitude entries
do not dominate).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dreamer_rl.nets.distributions import gaussian_log_prob, mean_gaussian_nll
from dreamer_rl.nets.mlp import MLP, Activation, Norm
from dreamer_rl.nets.outputs import symlog, twohot_bins, twohot_mean, twohot_nll

HeadKind = Literal["gaussian", "symexp_twohot"]
ObsLoss = Literal["gaussian", "mse", "symlog_mse"]


class ScalarHead(nn.Module):
    """``[..., F] -> [..., 1]`` prediction; ``loss(feat, target [..., 1]) -> [...]`` (see the module docstring)."""

    def __init__(self, feat_dim: int, *, kind: HeadKind = "gaussian", units: int, layers: int,
                 act: Activation = "elu", norm: Norm = "none", bins: int = 255) -> None:
        super().__init__()
        if kind not in ("gaussian", "symexp_twohot"):
            raise ValueError(f"head kind {kind!r}; available: 'gaussian', 'symexp_twohot'")
        self.kind = kind
        out = 1 if kind == "gaussian" else bins
        self.net = MLP(feat_dim, out, units=units, layers=layers, act=act, norm=norm)
        if kind == "symexp_twohot":
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)
            self.net[-1].zero_init = True  # V3's outscale 0: kept by dreamer_rl.nets.init.dreamer_v3_init
            self.register_buffer("bins", twohot_bins(bins), persistent=False)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.predict(self.net(feat))

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """The prediction ``[..., 1]`` from the network's raw output (mean, or two-hot expectation)."""
        return out if self.kind == "gaussian" else twohot_mean(out, self.bins)[..., None]

    def loss(self, feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``target [..., 1]`` per element ``[...]``."""
        return self.nll(self.net(feat), target)

    def nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """:meth:`loss` from the raw output ``self.net(feat)``, so one forward serves several targets."""
        if self.kind == "gaussian":
            return -gaussian_log_prob(target, out, 1)
        return twohot_nll(out, target[..., 0], self.bins)


def obs_nll(kind: ObsLoss, target: torch.Tensor, pred: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Mean over the leading dims of the per-observation loss summed over the last ``event_dims`` (a scalar)."""
    if kind == "gaussian":
        return mean_gaussian_nll(target, pred, event_dims)
    if kind == "symlog_mse":
        target = symlog(target)
    elif kind != "mse":
        raise ValueError(f"obs loss {kind!r}; available: 'gaussian', 'mse', 'symlog_mse'")
    count = pred.numel() // (pred.shape[-event_dims:].numel())
    return F.mse_loss(pred, target.to(pred.dtype), reduction="sum") / count
