"""Plan2Explore (Sekar et al. 2020), DreamerV2's ``expl_behavior: Plan2Explore``: ensemble disagreement as reward.

An ensemble of ``K`` one-step predictors ``f_k(feat_t, a_t) ≈ target_{t+1}`` (``target``: the posterior sample ``z``
(V2's default ``disag_target: stoch``), the deterministic state ``h``, or the whole ``feat``) is trained on replayed
posterior states, each member by Gaussian NLL with unit variance:

    L_ens = Σ_k mean_{b,t} ½ ||f_k(feat_t, a_t) - sg(target_{t+1})||²      (pairs inside one episode only)

Row alignment (:mod:`dreamer_rl.replay`): row ``t`` holds ``o_t`` and the action ``a_{t-1}``, so the action taken
at ``t`` is row ``t+1``'s; a pair is dropped where row ``t+1`` starts an episode.

The intrinsic reward of an imagined step ``s_k --a_k--> s_{k+1}`` is the ensemble's disagreement,

    r^int_k = mean_d std_k f_k(feat_k, a_k)_d      (log of it with ``log``, V2's ``disag_log``)
    r_k     = intr_scale · r^int_k + extr_scale · rew(feat_{k+1})

which a separate exploration actor and critic maximise in imagination (:class:`~dreamer_rl.losses.ActorLoss` with
this reward); the exploration actor collects data, the task actor is evaluated. The members are one batched
module (weights ``[K, in, out]``, ``torch.baddbmm``), so the ensemble costs a few matmuls, not ``K`` Python calls.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from dreamer_rl.nets.mlp import Activation, activation

DisagTarget = Literal["stoch", "deter", "feat"]


class _EnsembleLinear(nn.Module):
    """``K`` independent linear layers: ``[K, N, I] -> [K, N, O]``."""

    def __init__(self, members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.baddbmm(self.bias, x, self.weight)


class DisagreementEnsemble(nn.Module):
    """``K`` MLPs ``[feat, a] -> target`` (see the module docstring).

    :param feat_dim: ``F``. :param action_dim: ``A`` (0: not action-conditioned). :param target_dim: width of the
        predicted target. :param members: ``K`` (V2: 10). :param units / layers: hidden width and depth.
    """

    def __init__(self, feat_dim: int, action_dim: int, target_dim: int, *, members: int = 10, units: int = 400,
                 layers: int = 4, act: Activation = "elu", log: bool = True, intr_scale: float = 1.0,
                 extr_scale: float = 0.0, target: DisagTarget = "stoch") -> None:
        super().__init__()
        self.members, self.action_dim, self.log = members, action_dim, log
        self.intr_scale, self.extr_scale, self.target = intr_scale, extr_scale, target
        dims = [feat_dim + action_dim] + [units] * layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [_EnsembleLinear(members, a, b), activation(act)]
        mods.append(_EnsembleLinear(members, dims[-1], target_dim))
        self.net = nn.Sequential(*mods)

    def predict(self, feat: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        """``feat [..., F]`` (and ``action [..., A]``) -> every member's prediction ``[K, ..., target_dim]``."""
        x = torch.cat([feat, action], -1) if self.action_dim else feat
        lead = x.shape[:-1]
        out = self.net(x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1))
        return out.reshape(self.members, *lead, out.shape[-1])

    def select_target(self, stoch: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """The predicted quantity: ``z``, ``h`` or ``[z, h]``."""
        return {"stoch": stoch, "deter": deter}.get(self.target, torch.cat([stoch, deter], -1))

    def loss(self, feat: torch.Tensor, action: torch.Tensor, target: torch.Tensor, is_init: torch.Tensor
             ) -> torch.Tensor:
        """``L_ens`` on replayed rows ``[B, T, .]`` (``action`` and ``is_init`` as stored: row t holds a_{t-1})."""
        pred = self.predict(feat[:, :-1].detach(), action[:, 1:] if self.action_dim else None)  # [K, B, T-1, X]
        keep = (~is_init[:, 1:].bool()).to(pred.dtype)  # [B, T-1, 1]: the pair stays inside one episode
        nll = 0.5 * (pred - target[:, 1:].detach()).square().sum(-1, keepdim=True)  # [K, B, T-1, 1]
        return (nll * keep).sum((1, 2, 3)).div(keep.sum().clamp(min=1)).sum()

    def intrinsic(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``r^int [..., 1]``: the members' std averaged over the target's dims (its log with ``log``)."""
        disag = self.predict(feat, action if self.action_dim else None).std(0).mean(-1, keepdim=True)
        return torch.log(disag) if self.log else disag

    def reward(self, feat: torch.Tensor, action: torch.Tensor, extrinsic: torch.Tensor) -> torch.Tensor:
        """``r_k = intr_scale r^int(feat_k, a_k) + extr_scale rew(feat_{k+1})`` for imagined ``[H, N, .]``."""
        out = self.intr_scale * self.intrinsic(feat, action)
        return out + self.extr_scale * extrinsic if self.extr_scale else out
