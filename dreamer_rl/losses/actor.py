"""Actor loss: λ-returns of imagined trajectories, with the Dreamer family's three actor gradients.

From every posterior state of the batch (``N = B * T`` starts, detached), imagine ``H`` steps with the actor
(:func:`dreamer_rl.imagine.imagine`): states ``s_0 .. s_H`` (``s_0`` the start), actions ``a_0 .. a_{H-1}``. In
TorchRL's transition layout, step ``k`` goes ``s_k --a_k--> s_{k+1}`` and earns ``("next", "reward")``:

    r_k = rew(s_{k+1}),   d_k = γ  (or cont(s_{k+1}) with a continuation head, trained towards γ(1 - terminated))
    v_k = V(s_k),  k = 0 .. H   (V's slow copy when ``slow_target``)
    G_k = r_k + d_k ((1 - λ) v_{k+1} + λ G_{k+1}),   G_H = v_H           (TD(λ), :func:`lambda_return`)
    w_k = c_0 prod_{j<k} d_j,  c_0 = cont(s_0) (1 without a continuation head)   (:func:`discount_weights`; V3's
          cumprod of cont over s_0 .. s_k: a start the model deems terminal weighs ~0)
    S   = 1, or DreamerV3's percentile range of G  (:class:`~dreamer_rl.losses.return_norm.PercentileReturnNorm`)

The objective per step, by ``actor_grad``:

    dynamics  (V1, V2 continuous):  G_k / S, differentiated through the learned dynamics into the actions
    reinforce (V2 discrete, V3):    log π(a_k | s_k) · sg((G_k - v_k) / S)
    both      (V2's mix ρ):         ρ · dynamics + (1 - ρ) · reinforce

    L_actor = -mean_{k,n} w_k (objective_k + η H[π(· | s_k)])        (η = ``entropy``)

Only the actor receives gradients: world-model and critic parameters are held out (``requires_grad`` off) during the
rollout, so their weight gradients are never computed, while gradients still flow *through* them into the actions.
The actor's distribution at each imagined state is built once, during the rollout, and kept for the loss
(log-probability, entropy); with ``reinforce`` alone actions are plain samples, so no graph reaches the model. The imagined states ``s_0 .. s_{H-1}``, returns
and weights are returned detached for :class:`~dreamer_rl.losses.value.ValueLoss` (with ``reinforce`` alone also the
critic's raw output on them, ``critic_out``, still attached to the critic, so the critic loss needs no second pass).

The λ-return estimator can be swapped the TorchRL way: ``loss.make_value_estimator(ValueEstimators.TDLambda,
gamma=0.99, lmbda=0.95)`` (or ``TD0``, ``TD1``) computes ``G`` with TorchRL's estimator from a TensorDict in its
layout (``("next", "reward")``, ``("next", "state_value")``, ``[N, H]``, time last). TorchRL's estimators take one
constant γ, so with a continuation head the per-step ``d_k`` of the default estimator is replaced by that γ.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Literal

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.objectives.common import LossModule
from torchrl.objectives.utils import ValueEstimators, dispatch_value_estimator

from dreamer_rl.imagine import imagine
from dreamer_rl.losses.return_norm import PercentileReturnNorm
from dreamer_rl.losses.returns import discount_weights, lambda_return
from dreamer_rl.nets.heads import ScalarHead
from dreamer_rl.world_model import WorldModel

ActorGrad = Literal["dynamics", "reinforce", "both"]


@contextlib.contextmanager
def held_out(*modules: nn.Module | None) -> Iterator[None]:
    """Turn ``requires_grad`` off for the parameters of ``modules`` inside the block, restoring it after."""
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class ActorLoss(LossModule):
    """Dreamer actor loss (V1, V2, V3 by options) as a TorchRL ``LossModule``.

    ``forward(td)`` reads posterior states ``[..., D]`` / ``[..., Z]`` and returns ``(losses, imagined)``:
    ``losses["loss_actor"]`` (scalar; plus ``actor_entropy`` and ``return_scale`` for logging) and ``imagined``, a
    TensorDict ``[H, N]`` with ``feat`` ``[H, N, F]`` (states ``s_0 .. s_{H-1}``), ``lambda_return`` ``[H, N, 1]``
    and ``weight`` ``[H, N, 1]``, all detached.

    :param value: the critic, ``feat -> [..., 1]``, or ``None``: no value head (the TF1 seed's ``value_head:
        False``), ``v = 0`` and ``λ = 1``, so ``G_k = Σ_{j≥k} (Π d) r_j`` without a bootstrap. :param slow_value: its slow copy (targets when
        ``slow_target``). :param return_norm: V3's percentile normaliser, or ``None`` (``S = 1``).

    Example::

        >>> actor_loss = ActorLoss(world_model, actor, value, horizon=15, actor_grad="reinforce", entropy=3e-4)
        >>> losses, imagined = actor_loss(states)       # states: the second output of WorldModelLoss
        >>> losses["loss_actor"].backward()
    """

    @dataclass
    class _AcceptedKeys:
        """Keys read from the input (the posterior start states ``[..., D]`` and ``[..., Z]``) and the keys of the
        TorchRL-layout TensorDict given to a TorchRL value estimator (``reward``, ``value``, ``done``,
        ``terminated``, under ``"next"``)."""

        posterior_deter: NestedKey = ("posterior", "deter")
        posterior_stoch: NestedKey = ("posterior", "stoch")
        reward: NestedKey = "reward"
        value: NestedKey = "state_value"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    default_value_estimator = ValueEstimators.TDLambda
    SUPPORTED_VALUE_ESTIMATORS = (ValueEstimators.TD0, ValueEstimators.TD1, ValueEstimators.TDLambda)
    out_keys = ["loss_actor", "actor_entropy", "return_scale"]

    def __init__(self, world_model: WorldModel, actor: nn.Module, value: nn.Module | None, *, horizon: int = 15,
                 gamma: float = 0.99, lambda_: float = 0.95, actor_grad: ActorGrad = "dynamics",
                 grad_mix: float = 0.1, entropy: float = 0.0, slow_value: nn.Module | None = None,
                 slow_target: bool = False, return_norm: PercentileReturnNorm | None = None,
                 reward_model: nn.Module | None = None) -> None:
        super().__init__()
        if actor_grad not in ("dynamics", "reinforce", "both"):
            raise ValueError(f"actor_grad {actor_grad!r}; available: 'dynamics', 'reinforce', 'both'")
        self.world_model, self.actor, self.value = world_model, actor, value
        self.slow_value = slow_value
        self.horizon, self.gamma, self.lambda_ = horizon, gamma, lambda_
        self.actor_grad, self.grad_mix, self.entropy = actor_grad, grad_mix, entropy
        self.slow_target = slow_target and slow_value is not None
        self.return_norm = return_norm
        self._value_estimator = None  # our own lambda_return until make_value_estimator is called
        #: replaces the reward: ``reward_model.reward(feat_k, a_k, rew(feat_{k+1}))`` (Plan2Explore's disagreement)
        self.reward_model = reward_model

    @property
    def in_keys(self) -> list[NestedKey]:  # noqa: D102
        return [self.tensor_keys.posterior_deter, self.tensor_keys.posterior_stoch]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        if self._value_estimator is not None:
            self._value_estimator.set_keys(value=self.tensor_keys.value, reward=self.tensor_keys.reward,
                                           done=self.tensor_keys.done, terminated=self.tensor_keys.terminated)

    def make_value_estimator(self, value_type: ValueEstimators | None = None, **hyperparams) -> None:
        """Use TorchRL's ``TD0`` / ``TD1`` / ``TDLambda`` estimator for ``G`` (``gamma``, ``lmbda`` keywords)."""
        value_type = value_type or self.default_value_estimator
        if value_type == ValueEstimators.TDLambda:
            hyperparams.setdefault("lmbda", self.lambda_)
        dispatch_value_estimator(self, value_type, supported=self.SUPPORTED_VALUE_ESTIMATORS,
                                 tensor_keys={"value": self.tensor_keys.value, "reward": self.tensor_keys.reward,
                                              "done": self.tensor_keys.done,
                                              "terminated": self.tensor_keys.terminated},
                                 value_network=None, **hyperparams)

    def returns(self, reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
        """``G [H, N, 1]`` from ``r_k``, ``d_k`` ``[H, N, 1]`` and ``v_0 .. v_H`` ``[H+1, N, 1]``."""
        if self._value_estimator is None:
            # without a critic (v = 0) the return is the discounted reward sum: λ = 1, no bootstrap
            return lambda_return(reward, value[:-1], discount, value[-1], self.lambda_ if self.value is not None
                                 else 1.0)
        keys = self.tensor_keys
        done = torch.zeros(reward.shape, dtype=torch.bool, device=reward.device)
        td = TensorDict({("next", keys.reward): reward.transpose(0, 1),  # TorchRL: time is the last batch dim
                         ("next", keys.value): value[1:].transpose(0, 1),
                         ("next", keys.done): done.transpose(0, 1), ("next", keys.terminated): done.transpose(0, 1),
                         keys.value: value[:-1].transpose(0, 1)}, batch_size=reward.shape[1::-1])
        return self._value_estimator.value_estimate(td).transpose(0, 1)

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDict]:  # noqa: D102
        wm, H = self.world_model, self.horizon
        deter = tensordict.get(self.tensor_keys.posterior_deter).detach()
        stoch = tensordict.get(self.tensor_keys.posterior_stoch).detach()
        deter, stoch = deter.reshape(-1, deter.shape[-1]), stoch.reshape(-1, stoch.shape[-1])  # [N, D], [N, Z]
        dynamics = self.actor_grad != "reinforce"
        reinforce = self.actor_grad != "dynamics"
        logps, entropies = [], []

        def policy(feat: torch.Tensor) -> torch.Tensor:
            """The actor at an imagined state, keeping what the loss needs so it never runs twice per state."""
            dist = self.actor.dist(feat)  # feat is detached: a graph through the actor's parameters only
            action = dist.rsample() if dynamics else dist.sample().detach()
            if reinforce:
                logps.append(dist.log_prob(action.detach()))
            if self.entropy:
                entropies.append(dist.entropy())
            return action

        plain = dynamics and not reinforce and not self.entropy  # V1: the actor's own forward (tanh(mean + std ε))
        with held_out(wm, self.value, self.slow_value, self.reward_model):
            # with reinforce alone no imagined state carries a graph: actions are samples, the model is held out
            deters, stochs, actions = imagine(wm.rssm, self.actor if plain else policy, deter, stoch, H)
            feat = wm.rssm.feat(stochs, deters)  # [H+1, N, F]  states s_0 .. s_H
            reward = wm.reward(feat[1:])  # [H, N, 1]  r_k, earned on reaching s_{k+1}
            if self.reward_model is not None:
                reward = self.reward_model.reward(feat[:-1], actions, reward)
            start_cont = None
            if wm.pcont is not None:
                cont = torch.sigmoid(wm.pcont(feat))  # [H+1, N, 1], trained towards γ (1 - terminated)
                discount, start_cont = cont[1:], cont[:1].detach()
            else:
                discount = torch.full_like(reward, self.gamma)
            critic = self.slow_value if self.slow_target else self.value
            share = not dynamics and not self.slow_target and isinstance(self.value, ScalarHead)
            if critic is None:  # no value head (the TF1 seed's value_head False)
                value = torch.zeros_like(feat[..., :1])
            elif not share:
                value = critic(feat)  # [H+1, N, 1]
        critic_out = None
        if share:
            # without the dynamics gradient the critic's values enter the actor loss detached, so its forward can
            # run with autograd once and serve the critic loss too (one pass over [H+1, N] states instead of two)
            critic_out = self.value.net(feat.detach())  # [H+1, N, K]
            value = self.value.predict(critic_out)
        if not dynamics:
            reward, discount, value = reward.detach(), discount.detach(), value.detach()
        returns = self.returns(reward, value, discount)  # [H, N, 1]
        weight = discount_weights(discount)  # [H, N, 1]
        if start_cont is not None:  # a start state the model deems terminal weighs ~0 (V3: cumprod over s_0 .. s_k)
            weight = weight * start_cont
        scale = self.return_norm(returns) if self.return_norm is not None else returns.new_ones(())
        objective = returns / scale if dynamics else returns.new_zeros(())
        state = feat[:-1].detach()
        entropy = torch.stack(entropies)[..., None] if entropies else returns.new_zeros(())  # [H, N, 1]
        if reinforce:
            advantage = ((returns - value[:-1]) / scale).detach()
            pg = torch.stack(logps)[..., None] * advantage  # [H, N, 1]
            objective = pg if not dynamics else self.grad_mix * objective + (1 - self.grad_mix) * pg
        loss = -(weight * (objective + self.entropy * entropy)).mean()
        imagined = TensorDict({"feat": state, "lambda_return": returns.detach(), "weight": weight},
                              batch_size=list(returns.shape[:2]))
        if critic_out is not None:
            imagined["critic_out"] = critic_out[:-1]  # the critic's raw output at s_0 .. s_{H-1}, with its graph
        losses = TensorDict({"loss_actor": loss, "actor_entropy": entropy.detach().mean(),
                             "return_scale": scale.detach()}, batch_size=[])
        return losses, imagined
