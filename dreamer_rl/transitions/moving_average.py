"""The moving-average RSSM of the discrete-action PlaNet fork (rosea-tf/planet ``model: rssm_ma``).

Two RSSMs (:class:`dreamer_rl.rssm.RSSM`) run side by side on the same actions and embeddings: a slow one with the
``ppn`` share of the units (``S_s = ⌊ppn S⌋`` latent, ``D_s = ⌊ppn D⌋`` deterministic, ``H_s = ⌊ppn H⌋`` hidden) and
a fast one with the rest. Every state part of the slow RSSM is a moving average of what its own step outputs
(``α = ma_alpha``):

    h̃_t   = f_s(h_{t-1}, z_{t-1}, a_{t-1})               the slow RSSM's raw belief
    h_t    = (1 - α) h_{t-1} + α h̃_t                     slow belief
    p_t    = (1 - α) σ_{t-1} + α p_s(h̃_t)                slow prior stats (mean and std each averaged)
    q_t    = (1 - α) σ_{t-1} + α q_s(h̃_t, e_t)           slow posterior stats
    z_t    ~ N(q_t) (filtering) or N(p_t) (imagining)    slow sample: its mean is the moving average of the means

where ``σ_{t-1}`` are the stats the previous slow sample was drawn from (the posterior's while filtering, the
prior's while imagining, as in the fork). The fast RSSM steps as usual. Features, stats and the KL are over the
concatenation ``[slow, fast]``; stats keep the one-tensor layout ``[mean_s, mean_f, std_s, std_f]`` (``2 S``).

One difference from the fork: there the slow *sample* is also averaged, ``z_t = (1 - α) z_{t-1} + α z̃_t`` with a
fresh ``z̃_t ~ N(p_s or q_s)``; here ``sample(stats)`` sees only the step's stats, so it draws from the averaged
distribution. The mean is the same (exactly the fork's sample with ``mean_only``), the noise is not averaged.

State layout (``S = S_s + S_f``, ``D = D_s + D_f``):

- ``stoch [N, S + 2 S_s]`` = ``[z_s, z_f, σ_s]``: the sample and the slow stats it came from;
- ``deter [N, D + D_s + 2 S_s]`` = ``[h_s, h_f, h̃_s, σ_{t-1}]``: the beliefs, the slow raw belief and the previous
  slow stats, so that :meth:`MovingAverageRSSM.prior` and ``posterior`` read ``deter`` alone;
- ``feat = [z_s, z_f, h_s, h_f]`` (``S + D``).
"""

from __future__ import annotations

import torch
from torch import nn

from dreamer_rl.nets.cells import CellKind
from dreamer_rl.nets.mlp import Activation, Norm
from dreamer_rl.rssm import RSSM
from dreamer_rl.transitions.base import TransitionModel


def _split_sizes(total: int, ppn: float, what: str) -> tuple[int, int]:
    slow = int(total * ppn)
    if not 1 <= slow < total:
        raise ValueError(f"rssm_ma: ma_ppn {ppn} of {what} {total} gives {slow} slow units; need at least one slow "
                         f"and one fast unit")
    return slow, total - slow


class MovingAverageTransition(nn.Module):
    """``(deter, stoch, action_in) -> deter'`` of the moving-average RSSM (see the module docstring)."""

    def __init__(self, model: "MovingAverageRSSM", action_dim: int) -> None:
        super().__init__()
        self._model = [model]  # a plain list: the sub-RSSMs are registered once, on the model
        self.action_split = [model.slow.transition.action_input(torch.zeros(1, action_dim)).shape[-1],
                             model.fast.transition.action_input(torch.zeros(1, action_dim)).shape[-1]]

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """``[..., A] -> [..., X_s + X_f]``: both RSSMs' action projections."""
        m = self._model[0]
        return torch.cat([m.slow.transition.action_input(action), m.fast.transition.action_input(action)], -1)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:  # noqa: D102
        m = self._model[0]
        Ds, D, Ss, S = m.deter_s, m.deter_all, m.stoch_s, m.variables
        a_s, a_f = action_in.split(self.action_split, -1)
        raw_s = m.slow.transition(deter[..., :Ds], stoch[..., :Ss], a_s)
        h_f = m.fast.transition(deter[..., Ds:D], stoch[..., Ss:S], a_f)
        h_s = torch.lerp(deter[..., :Ds], raw_s, m.alpha)
        return torch.cat([h_s, h_f, raw_s, stoch[..., S:]], -1)


class MovingAverageRSSM(TransitionModel):
    """Slow (moving-average) and fast RSSM side by side; see the module docstring.

    :param ppn: share of the units of the slow RSSM, ``0 < ppn < 1``. :param alpha: ``α``, ``0 < α <= 1``.
    The other parameters are :class:`~dreamer_rl.rssm.RSSM`'s, split between the two.
    """

    def __init__(self, action_dim: int, embed_dim: int, *, stoch: int = 30, deter: int = 200, hidden: int = 200,
                 ppn: float = 0.25, alpha: float = 0.25, act: Activation = "elu", min_std: float = 0.1,
                 cell: CellKind = "gru", norm: Norm = "none", prior_layers: int = 1, blocks: int = 8,
                 mean_only: bool = False) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"rssm_ma: ma_alpha must be in (0, 1], got {alpha}")
        (Ss, Sf), (Ds, Df), (Hs, Hf) = (_split_sizes(n, ppn, w) for n, w in
                                        ((stoch, "stoch"), (deter, "deter"), (hidden, "hidden")))
        super().__init__(action_dim, variables=stoch, stoch=stoch + 2 * Ss, deter=deter + Ds + 2 * Ss,
                         feat_dim=stoch + deter, min_std=min_std, mean_only=mean_only)
        self.stoch_s, self.deter_s, self.deter_all, self.alpha = Ss, Ds, deter, alpha
        kw = dict(act=act, min_std=min_std, cell=cell, norm=norm, prior_layers=prior_layers, blocks=blocks,
                  mean_only=mean_only)
        self.slow = RSSM(action_dim, embed_dim, stoch=Ss, deter=Ds, hidden=Hs, **kw)
        self.fast = RSSM(action_dim, embed_dim, stoch=Sf, deter=Df, hidden=Hf, **kw)
        self.hidden_split = [Hs, Hf]
        self.transition = MovingAverageTransition(self, action_dim)

    def _parts(self, deter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``deter -> (h_f, h̃_s, σ_{t-1})``."""
        Ds, D = self.deter_s, self.deter_all
        return deter[..., Ds:D], deter[..., D:D + Ds], deter[..., D + Ds:]

    def _join(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        """``[m_s, s_s], [m_f, s_f] -> [m_s, m_f, s_s, s_f]``."""
        (ms, ss), (mf, sf) = slow.chunk(2, -1), fast.chunk(2, -1)
        return torch.cat([ms, mf, ss, sf], -1)

    def _pack(self, z: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        mean, std = stats.chunk(2, -1)
        return torch.cat([z, mean[..., :self.stoch_s], std[..., :self.stoch_s]], -1)

    def feat(self, stoch: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """``[z_s, z_f, h_s, h_f]``: ``[..., S + D]``."""
        return torch.cat([stoch[..., :self.variables], deter[..., :self.deter_all]], -1)

    def prior(self, deter: torch.Tensor) -> torch.Tensor:
        """``[p_t (slow, averaged), p_f(h_f)]`` stats ``[..., 2S]``."""
        h_f, raw_s, sigma = self._parts(deter)
        return self._join(torch.lerp(sigma, self.slow.prior(raw_s), self.alpha), self.fast.prior(h_f))

    def post_in_embed(self, embed: torch.Tensor) -> torch.Tensor:
        """Both RSSMs' embedding projections ``[..., H_s + H_f]``."""
        return torch.cat([self.slow.post_in_embed(embed), self.fast.post_in_embed(embed)], -1)

    def posterior(self, deter: torch.Tensor, embed_in: torch.Tensor) -> torch.Tensor:
        """``[q_t (slow, averaged), q_f(h_f, e)]`` stats ``[..., 2S]``."""
        h_f, raw_s, sigma = self._parts(deter)
        e_s, e_f = embed_in.split(self.hidden_split, -1)
        return self._join(torch.lerp(sigma, self.slow.posterior(raw_s, e_s), self.alpha),
                          self.fast.posterior(h_f, e_f))
