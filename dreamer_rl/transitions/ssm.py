"""PlaNet's purely stochastic state-space model (SSM, ``model: ssm``; Hafner et al. 2019, section 3 and Table 2).

No deterministic path: the whole state is the Gaussian latent ``z_t`` (``S`` units), and every step goes through it.

    x_t     = act(norm(W_z z_{t-1} + W_a a_{t-1} + b))                          [N, H]
    p(z_t | z_{t-1}, a_{t-1}) = N(m_p, s_p),   [m_p, s_p] = stats(W_p x_t)       prior (transition)
    y_t     = act(norm(W_m m_p + W_s s_p + W_e e_t + b'))                        [N, H]
    q(z_t | m_p, s_p, e_t)     = N(m_q, s_q),   [m_q, s_q] = stats(W_q y_t)       posterior
    feat_t  = z_t                                                               feat_dim = S

with ``stats(u) = [u_1, softplus(u_2) + min_std]``. PlaNet's original uses ReLU and one hidden layer for each (ours:
``act`` and ``norm`` of the model).

State layout: ``stoch [N, S]`` is ``z``; ``deter [N, 2S]`` holds the prior's stats ``[m_p, s_p]`` of the current step
(what the transition computed), so :meth:`SSM.prior` is the identity and the posterior reads the prior's mean and
std as the original does. The transition reads only ``(z, a)``: ``deter`` is an output, never an input to the
next step, and it is not part of the features.
"""

from __future__ import annotations

import torch
from torch import nn

from dreamer_rl.nets.mlp import Activation, Norm, norm_act, pre_norm_bias
from dreamer_rl.transitions.base import TransitionModel


class SSMTransition(nn.Module):
    """``(deter, z, a) -> [m_p, s_p]`` (``deter`` is ignored, see the module docstring)."""

    def __init__(self, stoch: int, action_dim: int, hidden: int, *, act: Activation, norm: Norm,
                 min_std: float) -> None:
        super().__init__()
        self.in_stoch = nn.Linear(stoch, hidden, bias=pre_norm_bias(norm))
        self.in_action = nn.Linear(action_dim, hidden, bias=False)
        self.norm, self.act = norm_act(norm, hidden, act)
        self.out = nn.Linear(hidden, 2 * stoch)
        self.min_std = min_std

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """``[..., A] -> [..., hidden]``."""
        return self.in_action(action)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.out(self.act(self.norm(self.in_stoch(stoch) + action_in))).to(deter.dtype)  # float32 under bf16
        mean, std = out.chunk(2, -1)
        return torch.cat([mean, nn.functional.softplus(std) + self.min_std], -1)


class SSM(TransitionModel):
    """PlaNet's SSM; ``deter`` is ``2 S`` wide (the prior's stats), ``stoch`` and ``feat`` are ``z`` (``S``).

    :param action_dim: ``A``. :param embed_dim: ``E``. :param stoch: ``S``. :param hidden: ``H``.
    """

    def __init__(self, action_dim: int, embed_dim: int, *, stoch: int = 30, hidden: int = 200,
                 act: Activation = "elu", norm: Norm = "none", min_std: float = 0.1, mean_only: bool = False) -> None:
        super().__init__(action_dim, variables=stoch, stoch=stoch, deter=2 * stoch, feat_dim=stoch,
                         min_std=min_std, mean_only=mean_only)
        self.transition = SSMTransition(stoch, action_dim, hidden, act=act, norm=norm, min_std=min_std)
        self.post_in_prior = nn.Linear(2 * stoch, hidden, bias=pre_norm_bias(norm))
        self.post_in_embed_layer = nn.Linear(embed_dim, hidden, bias=False)
        self.post_norm, self.act = norm_act(norm, hidden, act)
        self.post_out = nn.Linear(hidden, 2 * stoch)

    def feat(self, stoch: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """``z`` alone: ``[..., S], [..., 2S] -> [..., S]``."""
        return stoch

    def prior(self, deter: torch.Tensor) -> torch.Tensor:
        """The prior's stats are the state's ``deter``."""
        return deter

    def post_in_embed(self, embed: torch.Tensor) -> torch.Tensor:
        """``W_e e``: ``[..., E] -> [..., H]`` (for all ``T`` at once)."""
        return self.post_in_embed_layer(embed)

    def posterior(self, deter: torch.Tensor, embed_in: torch.Tensor) -> torch.Tensor:
        """``q(z | m_p, s_p, e)`` stats from ``deter = [m_p, s_p]`` and :meth:`post_in_embed`'s output."""
        return self._stats(self.post_out(self.act(self.post_norm(self.post_in_prior(deter) + embed_in))))
