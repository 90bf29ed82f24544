"""Time-agnostic prediction (TAP, Jayaraman et al. 2018, "Time-Agnostic Prediction: Predicting Predictable Video
Frames") as a world-model loss.

TAP asks a predictor for *some* future frame instead of the frame at a fixed time: the loss is the minimum over the
candidate target times of the per-target loss, so the model is free to predict whichever future frame is easiest.
Here the predictor is the model's own observation decoder read at the posterior feature ``feat_j`` and the
candidates are the next ``H = horizon`` rows inside the same episode::

    ℓ(i, j)  = -log p(o_i | dec(feat_j))                  the decoder's likelihood (model.obs_loss), per pair
    I_j      = { i : j < i ≤ min(j + H, T - 1), no is_init among rows j+1 .. i }
    L_tap    = mean over the j with I_j ≠ ∅ of  min_{i ∈ I_j} ℓ(i, j)

The gradient of the minimum flows into the chosen pair only (the decoder's prediction and ``feat_j``). The decoder
runs once over ``[B, T]`` (its prediction from ``feat_j`` does not depend on ``i``); the pairs are compared by a
loop over the offset ``i - j = 1 .. H``.

Per-pair likelihoods, summed over the observation's event dims (the same per-observation losses as
:func:`dreamer_rl.nets.heads.obs_nll`): ``gaussian`` ``½ Σ (x̂ - o)² + ½ n log 2π``; ``mse`` ``Σ (x̂ - o)²``;
``symlog_mse`` ``Σ (x̂ - symlog o)²``.

The discrete-action PlaNet fork (rosea-tf/planet, ``planet/training/utility.py`` ``compute_tap_losses``, option
``tap_cell``) intends this loss, but as coded it is identically zero: the excluded pairs are set to 0
(``-tools.mask(log_prob, mask)``) and the ``reduce_min`` runs over an axis on which every slice holds an excluded
pair (row 0 of its ``sequence_mask(range(T), T)`` is all false), so each minimum is min(0, positive NLLs) = 0.
This module implements the paper's definition instead.

Shapes: ``pred``, ``target`` ``[B, T, *event]`` (``event_dims`` trailing dims), ``is_init`` ``[B, T, 1]`` bool.
"""

from __future__ import annotations

import math

import torch

from dreamer_rl.nets.heads import ObsLoss
from dreamer_rl.nets.outputs import symlog

__all__ = ["pair_nll", "tap_loss"]


def pair_nll(kind: ObsLoss, target: torch.Tensor, pred: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Per-observation loss of ``pred`` against ``target``, summed over the last ``event_dims``: ``[..., *event] ->
    [...]``."""
    if kind == "symlog_mse":
        target = symlog(target)
    elif kind not in ("gaussian", "mse"):
        raise ValueError(f"obs loss {kind!r}; available: 'gaussian', 'mse', 'symlog_mse'")
    dims = tuple(range(-event_dims, 0))
    sse = (pred - target.to(pred.dtype)).square().sum(dims)
    if kind != "gaussian":
        return sse
    return 0.5 * sse + 0.5 * math.log(2 * math.pi) * math.prod(pred.shape[pred.dim() - event_dims:])


def tap_loss(pred: torch.Tensor, target: torch.Tensor, is_init: torch.Tensor, *, horizon: int,
             kind: ObsLoss = "gaussian", event_dims: int = 1) -> torch.Tensor:
    """``L_tap`` of the module docstring (a scalar; 0 when no row has a candidate).

    :param pred: the decoder's prediction from each ``feat_j``, ``[B, T, *event]``.
    :param target: the observations ``o_i`` as the decoder's targets (:meth:`WorldModel.target`).
    :param is_init: ``[B, T, 1]`` bool episode starts. :param horizon: ``H``, farthest target offset.
    """
    B, T = pred.shape[:2]
    H = min(horizon, T - 1)
    if H < 1:
        return pred.new_zeros(())
    init = is_init.reshape(B, T).bool()
    init = torch.cat([init, init.new_ones(B, H)], 1)  # rows past the chunk end: never a candidate
    crossed = torch.zeros_like(init[:, :T])
    nlls, valids = [], []
    for d in range(1, H + 1):
        nll = pair_nll(kind, target[:, d:], pred[:, :T - d], event_dims)  # [B, T - d]: target j + d from feat j
        nlls.append(torch.cat([nll, nll.new_zeros(B, d)], 1))
        crossed = crossed | init[:, d:d + T]
        valids.append(~crossed)
    nll, valid = torch.stack(nlls, -1), torch.stack(valids, -1)  # [B, T, H]
    best = torch.where(valid, nll, torch.full_like(nll, math.inf)).amin(-1)  # [B, T]
    has = valid.any(-1)
    return torch.where(has, best, torch.zeros_like(best)).sum() / has.sum().clamp(min=1).to(best.dtype)
