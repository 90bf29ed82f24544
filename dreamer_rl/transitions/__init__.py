"""Transition models of the world model (``model.transition``), all with :class:`dreamer_rl.rssm.RSSM`'s interface.

- ``rssm``: :class:`dreamer_rl.rssm.RSSM` (PlaNet, Dreamer V1-V3), every latent and cell kind.
- ``ssm``: PlaNet's purely stochastic SSM (:mod:`dreamer_rl.transitions.ssm`), ``feat = z``.
- ``rssm_ma``: the fork's slow (moving-average) + fast RSSM (:mod:`dreamer_rl.transitions.moving_average`).
- ``clockwork``: the fork's RSSM cells on their own clocks (:mod:`dreamer_rl.transitions.clockwork`), with the
  optional ``cell_as_prior`` loss.

``mean_only`` (PlaNet's purely deterministic ablation: samples are the mean) applies to all of them with Gaussian
latents; the last three take Gaussian latents only. The state is always ``(deter [N, D], stoch [N, Z])``, each
model giving these its own meaning (its docstring); code outside the model only uses the interface (``transition``,
``prior``, ``posterior``, ``sample``, ``mode``, ``feat``, ``kl``, ``img_step``, ``obs_step``, ``observe``,
``initial``, ``extra_losses`` and the widths ``deter``, ``stoch``, ``feat_dim``, ``stats_dim``).
"""

from __future__ import annotations

from typing import Literal, Sequence

from dreamer_rl.nets.cells import CellKind
from dreamer_rl.nets.mlp import Activation, Norm
from dreamer_rl.rssm import RSSM, LatentKind
from dreamer_rl.transitions.base import TransitionModel
from dreamer_rl.transitions.clockwork import ClockworkRSSM
from dreamer_rl.transitions.moving_average import MovingAverageRSSM
from dreamer_rl.transitions.ssm import SSM

TransitionKind = Literal["rssm", "ssm", "rssm_ma", "clockwork"]
__all__ = ["ClockworkRSSM", "MovingAverageRSSM", "SSM", "TransitionKind", "TransitionModel", "make_rssm",
           "split_evenly"]


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` units over ``parts`` cells, the first ``total mod parts`` one larger: ``(10, 3) -> [4, 3, 3]``."""
    if total < parts:
        raise ValueError(f"clockwork: {total} units cannot be split over {parts} cells")
    return [total // parts + (i < total % parts) for i in range(parts)]


def make_rssm(action_dim: int, embed_dim: int, *, transition: TransitionKind = "rssm", stoch: int = 30,
              deter: int = 200, hidden: int = 200, act: Activation = "elu", min_std: float = 0.1,
              latent: LatentKind = "gaussian", cell: CellKind = "gru", classes: int = 32, unimix: float = 0.0,
              norm: Norm = "none", prior_layers: int = 1, blocks: int = 8, mean_only: bool = False,
              ma_ppn: float = 0.25, ma_alpha: float = 0.25, clock_periods: Sequence[int] = (1, 4),
              clock_deter: Sequence[int] = (), clock_stoch: Sequence[int] = (),
              cell_as_prior: float = 0.0) -> RSSM | TransitionModel:
    """The transition model ``transition`` (see the module docstring) with the world model's sizes.

    ``clock_deter`` / ``clock_stoch``: per-cell sizes of the clockwork RSSM (empty: ``deter`` / ``stoch`` split
    evenly over the ``len(clock_periods)`` cells); its cells' hidden widths split ``hidden`` in proportion.
    """
    if transition == "rssm":
        return RSSM(action_dim, embed_dim, stoch=stoch, deter=deter, hidden=hidden, act=act, min_std=min_std,
                    latent=latent, cell=cell, classes=classes, unimix=unimix, norm=norm, prior_layers=prior_layers,
                    blocks=blocks, mean_only=mean_only)
    if transition not in ("ssm", "rssm_ma", "clockwork"):
        raise ValueError(f"transition {transition!r}; available: 'rssm', 'ssm', 'rssm_ma', 'clockwork'")
    if latent != "gaussian":
        raise ValueError(f"transition {transition!r} takes Gaussian latents only (latent 'gaussian'), got {latent!r}")
    if transition == "ssm":
        return SSM(action_dim, embed_dim, stoch=stoch, hidden=hidden, act=act, norm=norm, min_std=min_std,
                   mean_only=mean_only)
    kw = dict(act=act, min_std=min_std, cell=cell, norm=norm, prior_layers=prior_layers, blocks=blocks,
              mean_only=mean_only)
    if transition == "rssm_ma":
        return MovingAverageRSSM(action_dim, embed_dim, stoch=stoch, deter=deter, hidden=hidden, ppn=ma_ppn,
                                 alpha=ma_alpha, **kw)
    n = len(clock_periods)
    deters = list(clock_deter) or split_evenly(deter, n)
    stochs = list(clock_stoch) or split_evenly(stoch, n)
    hiddens = (split_evenly(hidden, n) if not clock_deter else
               [max(1, round(hidden * d / sum(deters))) for d in deters])
    return ClockworkRSSM(action_dim, embed_dim, periods=list(clock_periods), deter=deters, stoch=stochs,
                         hidden=hiddens, cell_as_prior=cell_as_prior, **kw)
