"""The clockwork RSSM of the discrete-action PlaNet fork (rosea-tf/planet ``model_size``/``state_size``/``cw_tau``).

``n`` independent RSSMs (:class:`dreamer_rl.rssm.RSSM`), cell ``i`` with its own sizes ``S_i``, ``D_i``, ``H_i`` and
period ``τ_i`` (``τ_0 = 1``; by the fork's convention the cells go from fast to slow). With ``t`` the step index from
the episode start (``is_init`` sets it back to 0), cell ``i`` steps only where ``t mod τ_i = 0``, seeing that row's
action and embedding, and holds its whole state (belief, sample, posterior) in between:

    u_{i,t} = [t mod τ_i = 0]
    h_{i,t} = u f_i(h_{i,t-1}, z_{i,t-1}, a_{t-1}) + (1 - u) h_{i,t-1}
    z_{i,t} = u z' + (1 - u) z_{i,t-1},   z' ~ q_i(. | h_{i,t}, e_t) (filtering) or p_i(. | h_{i,t}) (imagining)
    q_{i,t} = u q_i(h_{i,t}, e_t) + (1 - u) q_{i,t-1};   p_{i,t} = p_i(h_{i,t}) is held with h_{i,t}

(selections by ``torch.where``: no branching on values). The KL is the Gaussian KL over the concatenated latent,
i.e. the sum of the cells' KLs, under one free-nats clamp; a held cell repeats its last KL, as the fork's repeated
outputs do. ``feat = [z_0 .. z_{n-1}, h_0 .. h_{n-1}]``; stats ``[mean_0 .. mean_{n-1}, std_0 .. std_{n-1}]``.

``cell_as_prior = x`` (equal sizes): ``L = x · Σ_{i≥1} mean_{b,t} KL(q_{i-1,t} || q_{i,t})``, the posterior of the
slower cell ``i`` (held over its period) acting as the prior of the faster cell ``i - 1``'s posterior, as in the
fork's ``compute_losses`` (no free nats; gradients into both). :meth:`ClockworkRSSM.extra_losses` returns it.

State layout (the step counter rides along so every step is a function of ``(deter, stoch, action)`` alone):

- ``deter [N, ΣD + ΣS + 1]`` = ``[h_0 .. h_{n-1}, z̄_0 .. z̄_{n-1}, c]``: the beliefs, each cell's sample as of the
  previous step (``z̄``) and the counter ``c`` = steps taken since the episode start, modulo ``lcm(τ)``. A zero
  state (a reset) has ``c = 0``, so the next step has ``t = 0`` and every cell steps.
- ``stoch [N, ΣS]``: the samples. A held cell's sample in ``stoch`` is ignored where it matters: :meth:`feat` and
  the next transition take ``z_{i,t} = z̄_i`` when cell ``i`` did not step (``(c - 1) mod τ_i ≠ 0``), so the raw
  chain ``transition -> prior -> sample`` (a planner's) still holds idle cells. ``img_step``, ``obs_step`` and
  ``observe`` return the held samples themselves.

``posterior(deter, e)`` gives every cell's fresh posterior; ``observe`` holds it for idle cells.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dreamer_rl.nets.cells import CellKind
from dreamer_rl.nets.distributions import gaussian_kl
from dreamer_rl.nets.mlp import Activation, Norm
from dreamer_rl.rssm import RSSM, RSSMStates
from dreamer_rl.transitions.base import TransitionModel


class ClockworkTransition(nn.Module):
    """``(deter, stoch, action_in) -> deter'`` of the clockwork RSSM (see the module docstring)."""

    def __init__(self, model: "ClockworkRSSM", action_dim: int) -> None:
        super().__init__()
        self._model = [model]  # a plain list: the cells are registered once, on the model
        self.action_split = [c.transition.action_input(torch.zeros(1, action_dim)).shape[-1] for c in model.cells]

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """``[..., A] -> [..., Σ X_i]``: every cell's action projection."""
        return torch.cat([c.transition.action_input(action) for c in self._model[0].cells], -1)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:  # noqa: D102
        m = self._model[0]
        hs, _, count = m.split_deter(deter)
        z_prev = m.held_stoch(stoch, deter)  # z_{t-1}: idle cells' samples from z̄
        stepping = m.stepping(count)  # [N, n] bool, u_{i,t}
        new = [torch.where(stepping[..., i:i + 1], cell.transition(h, z, a), h) for i, (cell, h, z, a) in
               enumerate(zip(m.cells, hs, z_prev.split(m.stoch_sizes, -1), action_in.split(self.action_split, -1)))]
        return torch.cat([*new, z_prev, torch.remainder(count + 1, m.cycle)], -1)


class ClockworkRSSM(TransitionModel):
    """Cells of :class:`~dreamer_rl.rssm.RSSM` on their own clocks; see the module docstring.

    :param periods: ``τ_i`` per cell, the first 1. :param deter: ``D_i`` per cell. :param stoch: ``S_i`` per cell.
    :param hidden: ``H_i`` per cell. :param cell_as_prior: weight ``x`` of the cell-as-prior loss (0: off).
    The other parameters are :class:`~dreamer_rl.rssm.RSSM`'s, shared by the cells.
    """

    def __init__(self, action_dim: int, embed_dim: int, *, periods: list[int], deter: list[int], stoch: list[int],
                 hidden: list[int], act: Activation = "elu", min_std: float = 0.1, cell: CellKind = "gru",
                 norm: Norm = "none", prior_layers: int = 1, blocks: int = 8, mean_only: bool = False,
                 cell_as_prior: float = 0.0) -> None:
        n = len(periods)
        if not (n == len(deter) == len(stoch) == len(hidden)) or n < 1:
            raise ValueError(f"clockwork: periods {periods}, deter {deter}, stoch {stoch} and hidden {hidden} must be "
                             f"lists of the same length >= 1")
        if periods[0] != 1 or min(periods) < 1:
            raise ValueError(f"clockwork: periods must be >= 1 and the first must be 1, got {periods}")
        if cell_as_prior and (n < 2 or len(set(stoch)) > 1):
            raise ValueError(f"clockwork: cell_as_prior needs at least two cells of equal stoch sizes, got {stoch}")
        S, D = sum(stoch), sum(deter)
        super().__init__(action_dim, variables=S, stoch=S, deter=D + S + 1, feat_dim=S + D, min_std=min_std,
                         mean_only=mean_only)
        self.periods, self.stoch_sizes, self.deter_sizes = list(periods), list(stoch), list(deter)
        self.cycle = float(math.lcm(*periods))
        self.cell_as_prior = float(cell_as_prior)
        self.extra_loss_keys = ("cell_as_prior",) if cell_as_prior else ()
        self.cells = nn.ModuleList(
            RSSM(action_dim, embed_dim, stoch=s, deter=d, hidden=h, act=act, min_std=min_std, cell=cell, norm=norm,
                 prior_layers=prior_layers, blocks=blocks, mean_only=mean_only)
            for s, d, h in zip(stoch, deter, hidden))
        self.hidden_split = list(hidden)
        self.register_buffer("tau", torch.tensor(periods, dtype=torch.float32), persistent=False)
        self.register_buffer("unit_cell", torch.arange(n).repeat_interleave(torch.tensor(stoch)), persistent=False)
        self.transition = ClockworkTransition(self, action_dim)

    # ---------------------------------------------------------------- state layout
    def split_deter(self, deter: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``deter -> ([h_i], z̄ [..., ΣS], c [..., 1])``."""
        D, S = sum(self.deter_sizes), self.variables
        return list(deter[..., :D].split(self.deter_sizes, -1)), deter[..., D:D + S], deter[..., D + S:].detach()

    def stepping(self, count: torch.Tensor) -> torch.Tensor:
        """``u_i = [c mod τ_i = 0]`` for the step about to be taken from a state with counter ``c``: ``[..., n]``."""
        return torch.remainder(count, self.tau.to(count.dtype)) == 0

    def _expand(self, mask: torch.Tensor) -> torch.Tensor:
        """Per-cell ``[..., n]`` -> per-unit ``[..., ΣS]``."""
        return mask[..., self.unit_cell]

    def held_stoch(self, stoch: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """The samples of the state ``(deter, stoch)``: ``stoch`` of cells that stepped into it, ``z̄`` of the rest."""
        _, z_prev, count = self.split_deter(deter)
        stepped = self._expand(self.stepping(count - 1))
        return torch.where(stepped, stoch, z_prev)

    def _hold(self, deter: torch.Tensor, stoch: torch.Tensor, stats: torch.Tensor,
              held: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stepped = self._expand(self.stepping(self.split_deter(deter)[2] - 1))
        return self.held_stoch(stoch, deter), torch.where(torch.cat([stepped, stepped], -1), stats, held)

    def _join(self, stats: list[torch.Tensor]) -> torch.Tensor:
        """Per-cell ``[m_i, s_i]`` -> ``[m_0 .. m_{n-1}, s_0 .. s_{n-1}]``."""
        means, stds = zip(*(s.chunk(2, -1) for s in stats))
        return torch.cat([*means, *stds], -1)

    def _cells_stats(self, stats: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Inverse of :meth:`_join`: ``[(m_i, s_i)]``."""
        mean, std = stats.chunk(2, -1)
        return list(zip(mean.split(self.stoch_sizes, -1), std.split(self.stoch_sizes, -1)))

    # ---------------------------------------------------------------- interface
    def feat(self, stoch: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """``[z_0 .. z_{n-1}, h_0 .. h_{n-1}]`` (idle cells' held samples): ``[..., ΣS + ΣD]``."""
        return torch.cat([self.held_stoch(stoch, deter), deter[..., :sum(self.deter_sizes)]], -1)

    def prior(self, deter: torch.Tensor) -> torch.Tensor:
        """Every cell's prior from its belief (an idle cell's is the one of its last step): ``[..., 2ΣS]``."""
        hs = self.split_deter(deter)[0]
        return self._join([cell.prior(h) for cell, h in zip(self.cells, hs)])

    def post_in_embed(self, embed: torch.Tensor) -> torch.Tensor:
        """Every cell's embedding projection ``[..., ΣH]``."""
        return torch.cat([cell.post_in_embed(embed) for cell in self.cells], -1)

    def posterior(self, deter: torch.Tensor, embed_in: torch.Tensor) -> torch.Tensor:
        """Every cell's fresh posterior ``[..., 2ΣS]`` (``observe`` holds idle cells' last one)."""
        hs = self.split_deter(deter)[0]
        return self._join([cell.posterior(h, e) for cell, h, e in
                           zip(self.cells, hs, embed_in.split(self.hidden_split, -1))])

    def extra_losses(self, states: RSSMStates) -> dict[str, torch.Tensor]:
        """``{"cell_as_prior": x Σ_i mean KL(q_{i-1} || q_i)}`` when ``cell_as_prior > 0``, else ``{}``."""
        if not self.cell_as_prior:
            return {}
        cells = self._cells_stats(states.post)
        loss = sum(gaussian_kl(*fast, *slow).mean() for fast, slow in zip(cells[:-1], cells[1:]))
        return {"cell_as_prior": self.cell_as_prior * loss}
