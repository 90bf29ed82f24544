"""The recurrent state-space model (RSSM, Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels").

State ``s_t = (h_t, z_t)``: a deterministic part ``h_t`` (``deter`` units) and a stochastic part ``z_t`` (``stoch``).

    h_t = f(h_{t-1}, z_{t-1}, a_{t-1})          deterministic cell (GRU)
    z_t ~ p(z_t | h_t)                          prior      (imagination)
    z_t ~ q(z_t | h_t, e_t),  e_t = enc(o_t)    posterior  (filtering)
    feat_t = [z_t, h_t]                         what every head reads, ``stoch + deter`` wide

Time alignment (see :mod:`dreamer_rl.replay`): stored row ``t`` holds ``o_t`` and the action ``a_{t-1}`` that led to
it, so step ``t`` of :meth:`RSSM.observe` consumes row ``t``'s action and embedding together. Where ``is_init_t`` is
set, the previous state and action are zeroed before the step: the recurrent state resets where an episode starts.

Speed: the loop over ``T`` touches only what must be sequential. The action and embedding projections are computed
for all ``T`` in one matmul before the loop, the noise is drawn once, and the prior head (which depends only on
``h_t``) runs over ``[B, T]`` after the loop. The step is a pure function of tensors with static shapes (no
``.item()``, no branching on values), so it can be captured by ``torch.compile`` / CUDA graphs.

Options (DESIGN.md): ``latent`` picks the stochastic-state family (``"gaussian"``: diagonal Gaussian, std =
softplus(.) + min_std), ``cell`` picks the deterministic cell (``"gru"``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dreamer_rl.nets.mlp import Activation, activation

LatentKind = Literal["gaussian"]
CellKind = Literal["gru"]


class RSSMStates(NamedTuple):
    """Outputs of :meth:`RSSM.observe`, every tensor ``[B, T, ...]``."""

    deter: torch.Tensor  # [B, T, D]  h_t
    stoch: torch.Tensor  # [B, T, S]  z_t ~ q (posterior sample)
    post_mean: torch.Tensor  # [B, T, S]
    post_std: torch.Tensor  # [B, T, S]
    prior_mean: torch.Tensor  # [B, T, S]
    prior_std: torch.Tensor  # [B, T, S]


class RSSM(nn.Module):
    """Gaussian-latent RSSM with a GRU cell; see the module docstring for the equations.

    :param action_dim: ``A``. :param embed_dim: ``E``, width of the observation embedding.
    :param stoch: ``S``. :param deter: ``D``. :param hidden: width of the input/output layers around the cell.
    :param min_std: added to softplus(std) of prior and posterior.
    """

    def __init__(self, action_dim: int, embed_dim: int, *, stoch: int = 30, deter: int = 200, hidden: int = 200,
                 act: Activation = "elu", min_std: float = 0.1, latent: LatentKind = "gaussian",
                 cell: CellKind = "gru") -> None:
        super().__init__()
        if latent != "gaussian":
            raise ValueError(f"latent kind {latent!r} is not implemented; available: 'gaussian'")
        if cell != "gru":
            raise ValueError(f"cell kind {cell!r} is not implemented; available: 'gru'")
        self.stoch, self.deter, self.action_dim = stoch, deter, action_dim
        self.min_std = min_std
        self.act = activation(act)
        # img_in(cat(z, a)) = W_z z + W_a a + b, split so W_a a is computed for all T at once.
        self.img_in_stoch = nn.Linear(stoch, hidden)
        self.img_in_action = nn.Linear(action_dim, hidden, bias=False)
        self.cell = nn.GRUCell(hidden, deter)
        # prior p(z | h)
        self.prior_hidden = nn.Linear(deter, hidden)
        self.prior_out = nn.Linear(hidden, 2 * stoch)
        # posterior q(z | h, e) = W_h h + W_e e + b, W_e e computed for all T at once.
        self.post_in_deter = nn.Linear(deter, hidden)
        self.post_in_embed = nn.Linear(embed_dim, hidden, bias=False)
        self.post_out = nn.Linear(hidden, 2 * stoch)

    @property
    def feat_dim(self) -> int:
        """Width of ``feat = [z, h]``."""
        return self.stoch + self.deter

    @staticmethod
    def feat(stoch: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """``[..., S], [..., D] -> [..., S + D]``."""
        return torch.cat([stoch, deter], -1)

    def initial(self, batch_shape: tuple[int, ...], device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``(deter, stoch)`` of shapes ``[*batch_shape, D]`` and ``[*batch_shape, S]``."""
        return (torch.zeros(*batch_shape, self.deter, device=device, dtype=dtype),
                torch.zeros(*batch_shape, self.stoch, device=device, dtype=dtype))

    def _dist(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = out.chunk(2, -1)
        return mean, F.softplus(std) + self.min_std

    def prior(self, deter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior mean and std ``[..., S]`` from ``h`` ``[..., D]`` (any leading dims)."""
        return self._dist(self.prior_out(self.act(self.prior_hidden(deter))))

    def img_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor,
                 sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step: ``(h_{t-1}, z_{t-1}, a_{t-1}) -> (h_t, z_t ~ p(. | h_t))``, shapes ``[N, .]``.

        The prior sample is reparameterised, so gradients flow from ``z_t`` into the action (dynamics backprop).
        """
        x = self.act(self.img_in_stoch(stoch) + self.img_in_action(action))
        deter = self.cell(x, deter)
        mean, std = self.prior(deter)
        stoch = mean + std * torch.randn_like(std) if sample else mean
        return deter, stoch

    def obs_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor, embed: torch.Tensor,
                 is_init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One filtering step for acting: ``(h_{t-1}, z_{t-1}, a_{t-1}, e_t) -> (h_t, z_t ~ q)``, shapes ``[N, .]``.

        ``is_init`` (bool ``[N, 1]``) zeroes the previous state and action where an episode starts.
        """
        if is_init is not None:
            keep = (~is_init).to(deter.dtype)
            deter, stoch, action = deter * keep, stoch * keep, action * keep
        x = self.act(self.img_in_stoch(stoch) + self.img_in_action(action))
        deter = self.cell(x, deter)
        mean, std = self._dist(self.post_out(self.act(self.post_in_deter(deter) + self.post_in_embed(embed))))
        return deter, mean + std * torch.randn_like(std)

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_init: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None) -> RSSMStates:
        """Filter a batch of sequences.

        :param embed: ``[B, T, E]`` observation embeddings ``e_t``.
        :param action: ``[B, T, A]`` the action ``a_{t-1}`` stored with ``o_t``.
        :param is_init: ``[B, T, 1]`` bool, episode starts (state reset before the step).
        :param state: ``(h, z)`` before the first step, ``[B, D], [B, S]``; zeros if ``None``.
        :returns: :class:`RSSMStates`, all ``[B, T, .]``.
        """
        B, T = embed.shape[:2]
        assert action.shape[:2] == (B, T) and is_init.shape[:2] == (B, T), (
            f"observe: embed {tuple(embed.shape)}, action {tuple(action.shape)}, is_init {tuple(is_init.shape)}")
        deter, stoch = state if state is not None else self.initial((B,), embed.device, embed.dtype)
        keep = (~is_init.bool()).to(embed.dtype)  # [B, T, 1]
        act_proj = self.img_in_action(action * keep).unbind(1)  # T x [B, H]
        emb_proj = self.post_in_embed(embed).unbind(1)  # T x [B, H]
        keeps = keep.unbind(1)
        noise = torch.randn(B, T, self.stoch, device=embed.device, dtype=embed.dtype).unbind(1)
        deters, stochs, means, stds = [], [], [], []
        for t in range(T):
            deter, stoch = deter * keeps[t], stoch * keeps[t]
            x = self.act(self.img_in_stoch(stoch) + act_proj[t])
            deter = self.cell(x, deter)
            mean, std = self._dist(self.post_out(self.act(self.post_in_deter(deter) + emb_proj[t])))
            stoch = mean + std * noise[t]
            deters.append(deter), stochs.append(stoch), means.append(mean), stds.append(std)
        deter_bt = torch.stack(deters, 1)  # [B, T, D]
        prior_mean, prior_std = self.prior(deter_bt)  # [B, T, S], all steps at once
        return RSSMStates(deter_bt, torch.stack(stochs, 1), torch.stack(means, 1), torch.stack(stds, 1),
                          prior_mean, prior_std)
