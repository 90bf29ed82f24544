"""Critic loss: regress V(s_k) on the λ-returns of imagined states (Dreamer V1 eq. 8; V2; V3 with its regulariser).

    L_value = mean_{k,n} w_k [ ℓ(V(sg(s_k)), sg(G_k)) + β ℓ(V(sg(s_k)), sg(V_slow(s_k))) ]

``ℓ`` is the critic head's negative log-likelihood (:class:`~dreamer_rl.nets.heads.ScalarHead`: ``-log N(G | V, 1)``
for V1/V2, the symexp two-hot cross-entropy for V3); the second term is DreamerV3's slow-critic regulariser
(``slowreg``, β = 1; off for V1/V2, whose slow critic instead supplies the targets). Inputs come from
:class:`~dreamer_rl.losses.actor.ActorLoss` (states, returns and weights, all detached), so only the critic
receives gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.objectives.common import LossModule

from dreamer_rl.losses.returns import lambda_return
from dreamer_rl.nets.distributions import gaussian_log_prob
from dreamer_rl.nets.heads import ScalarHead


def critic_output(critic: nn.Module, feat: torch.Tensor) -> torch.Tensor:
    """The critic's raw output (two-hot logits or a mean); a plain module's output is its prediction."""
    return critic.net(feat) if isinstance(critic, ScalarHead) else critic(feat)


def critic_nll(critic: nn.Module, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood ``[...]`` of ``target [..., 1]`` under the critic's raw output (unit Gaussian for a
    plain module)."""
    return critic.nll(out, target) if isinstance(critic, ScalarHead) else -gaussian_log_prob(target, out, 1)


class ValueLoss(LossModule):
    """Dreamer critic loss as a TorchRL ``LossModule``; ``forward(imagined) -> {"loss_value": scalar}``.

    :param value: a :class:`ScalarHead`, or any ``feat -> [..., 1]`` module, taken as the mean of a unit Gaussian.
    :param slow_value: the slow copy, needed when ``slow_reg > 0``.

    Example::

        >>> value_loss = ValueLoss(value)
        >>> value_loss(imagined)["loss_value"].backward()   # imagined: the second output of ActorLoss
    """

    @dataclass
    class _AcceptedKeys:
        """Keys of the imagined TensorDict ``[H, N]``: ``feat [.., F]``, ``lambda_return [.., 1]``, ``weight [.., 1]``."""

        feat: NestedKey = "feat"
        lambda_return: NestedKey = "lambda_return"
        weight: NestedKey = "weight"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    out_keys = ["loss_value"]

    def __init__(self, value: ScalarHead, *, slow_value: nn.Module | None = None, slow_reg: float = 0.0) -> None:
        super().__init__()
        if slow_reg and slow_value is None:
            raise ValueError("ValueLoss: slow_reg > 0 needs a slow_value")
        self.value, self.slow_value, self.slow_reg = value, slow_value, slow_reg

    @property
    def in_keys(self) -> list[NestedKey]:  # noqa: D102
        return [self.tensor_keys.feat, self.tensor_keys.lambda_return, self.tensor_keys.weight]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    def forward(self, tensordict: TensorDictBase) -> TensorDict:  # noqa: D102
        keys = self.tensor_keys
        feat = tensordict.get(keys.feat).detach()
        target = tensordict.get(keys.lambda_return).detach()
        weight = tensordict.get(keys.weight).detach()[..., 0]
        # one forward for both targets; the actor loss may already have made it (``critic_out``)
        out = tensordict.get("critic_out") if "critic_out" in tensordict.keys() else critic_output(self.value, feat)
        loss = critic_nll(self.value, out, target)  # [H, N]
        if self.slow_reg:
            with torch.no_grad():
                slow = self.slow_value(feat)
            loss = loss + self.slow_reg * critic_nll(self.value, out, slow)
        return TensorDict({"loss_value": (weight * loss).mean()}, batch_size=[])


class ReplayValueLoss(LossModule):
    """DreamerV3's replay-value loss (``repval``, scale 0.3): the critic also learns on the replayed states.

    Along a replayed sequence of posterior states ``s_0 .. s_{T-1}`` (rows, see :mod:`dreamer_rl.replay`: row ``t``
    holds the reward ``r_t`` received on reaching ``s_t``), with ``b_t`` the imagined λ-return from ``s_t`` (the
    ``G_0`` of imagination started there, the bootstrap) and ``c_t = γ (1 - terminated_t)``:

        R_{T-1} = b_{T-1},   R_t = r_{t+1} + c_{t+1} ((1 - λ) b_{t+1} + λ R_{t+1})
        L_repval = scale · mean_{b, t < T-1} w_t [ ℓ(V(s_t), sg(R_t)) + β ℓ(V(s_t), sg(V_slow(s_t))) ]

``s_t`` is stop-gradient unless ``feat_grad`` (V3's ``repval_grad``: the loss then also shapes the world model's
representation), and ``w_t = 0`` on an episode's last row in the slice (``is_init_{t+1}``, the author's ``~is_last``),
else 1.

    (``dreamerv3/agent.py`` ``repl_loss``.) Where a slice crosses into a new episode (``is_init_{t+1}``, stream
    slices of :func:`~dreamer_rl.replay.make_replay_buffer`) there is no transition ``s_t -> s_{t+1}``: the return
    stops there, ``R_t = b_t`` (the author's ``last`` flags). ``forward(td)`` reads ``feat [B, T, F]``,
    ``reward [B, T, 1]``, ``terminated [B, T, 1]``, ``bootstrap [B, T, 1]`` and, when present, ``is_init
    [B, T, 1]``, and returns ``{"loss_repval": scalar}``.
    """

    @dataclass
    class _AcceptedKeys:
        """Keys of the replay TensorDict ``[B, T]``."""

        feat: NestedKey = "feat"
        reward: NestedKey = "reward"
        terminated: NestedKey = "terminated"
        bootstrap: NestedKey = "bootstrap"
        is_init: NestedKey = "is_init"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    out_keys = ["loss_repval"]

    def __init__(self, value: ScalarHead, *, gamma: float = 1 - 1 / 333, lambda_: float = 0.95, scale: float = 0.3,
                 slow_value: nn.Module | None = None, slow_reg: float = 0.0, feat_grad: bool = False) -> None:
        super().__init__()
        self.value, self.slow_value, self.slow_reg = value, slow_value, slow_reg
        self.feat_grad = feat_grad
        self.gamma, self.lambda_, self.scale = gamma, lambda_, scale

    @property
    def in_keys(self) -> list[NestedKey]:  # noqa: D102
        k = self.tensor_keys
        return [k.feat, k.reward, k.terminated, k.bootstrap]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    def forward(self, tensordict: TensorDictBase) -> TensorDict:  # noqa: D102
        k = self.tensor_keys
        feat = tensordict.get(k.feat)  # [B, T, F]
        feat = feat if self.feat_grad else feat.detach()
        reward = tensordict.get(k.reward).detach().to(feat.dtype)  # [B, T, 1]
        cont = self.gamma * (~tensordict.get(k.terminated).bool()).to(feat.dtype)
        boot = tensordict.get(k.bootstrap).detach()  # [B, T, 1]
        # time first for lambda_return: step t goes s_t -> s_{t+1}, earning r_{t+1} with discount c_{t+1}
        tf = lambda x: x.transpose(0, 1)  # noqa: E731
        step_reward, step_cont = reward[:, 1:], cont[:, 1:]
        is_init = tensordict.get(k.is_init, None)
        weight = None
        if is_init is not None:  # R_t = b_t where the slice enters a new episode at t + 1
            cut = is_init[:, 1:].bool()
            step_reward = torch.where(cut, boot[:, :-1], step_reward)
            step_cont = torch.where(cut, torch.zeros_like(step_cont), step_cont)
            weight = (~cut).to(feat.dtype)[..., 0]  # an episode's last row has no loss (the author's ~is_last)
        targets = lambda_return(tf(step_reward), tf(boot[:, :-1]), tf(step_cont), boot[:, -1], self.lambda_)
        out = critic_output(self.value, feat[:, :-1])
        loss = critic_nll(self.value, out, tf(targets))  # [B, T-1]
        if self.slow_reg:
            with torch.no_grad():
                slow = self.slow_value(feat[:, :-1])
            loss = loss + self.slow_reg * critic_nll(self.value, out, slow)
        if weight is not None:
            loss = loss * weight
        return TensorDict({"loss_repval": self.scale * loss.mean()}, batch_size=[])
