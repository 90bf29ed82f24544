"""Actor loss: λ-returns of imagined trajectories, backpropagated through the learned dynamics (Dreamer V1, eq. 7).

From every posterior state of the batch (``N = B * T`` starts, detached), imagine ``H`` steps with the actor
(:func:`dreamer_rl.imagine.imagine`) and score the imagined states ``s_1 .. s_H``:

    r_k = rew(feat_k),  v_k = V(feat_k),  d_k = γ  (or γ σ(cont(feat_k)) with a continuation head)
    R_k = λ-return over k = 1 .. H-1 with bootstrap v_H         (:func:`dreamer_rl.losses.returns.lambda_return`)
    w_k = prod_{j<k} d_j                                        (:func:`discount_weights`)
    L_actor = -mean_{k,n} w_k R_k

Only the actor receives gradients: world-model and value parameters are held out (``requires_grad`` off) during the
rollout, so their weight gradients are never computed, while gradients still flow *through* them into the actions.
The imagined features, returns and weights are returned detached for :class:`~dreamer_rl.losses.value.ValueLoss`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.objectives.common import LossModule

from dreamer_rl.imagine import imagine
from dreamer_rl.losses.returns import discount_weights, lambda_return
from dreamer_rl.world_model import WorldModel


@contextlib.contextmanager
def held_out(*modules: nn.Module) -> Iterator[None]:
    """Turn ``requires_grad`` off for the parameters of ``modules`` inside the block, restoring it after."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class ActorLoss(LossModule):
    """Dreamer V1 actor loss as a TorchRL ``LossModule``.

    ``forward(td)`` reads posterior states ``[B, T, D]`` / ``[B, T, S]`` and returns ``(losses, imagined)``:
    ``losses["loss_actor"]`` (scalar) and ``imagined``, a TensorDict of batch size ``[H-1, N]`` with ``feat``
    ``[H-1, N, F]`` (states ``s_1 .. s_{H-1}``), ``lambda_return`` ``[H-1, N, 1]`` and ``weight`` ``[H-1, N, 1]``,
    all detached.

    Example::

        >>> actor_loss = ActorLoss(world_model, actor, value, horizon=15)
        >>> losses, imagined = actor_loss(states)       # states: the second output of WorldModelLoss
        >>> losses["loss_actor"].backward()
    """

    @dataclass
    class _AcceptedKeys:
        """Keys read from the input: the posterior start states ``[..., D]`` and ``[..., S]``."""

        posterior_deter: NestedKey = ("posterior", "deter")
        posterior_stoch: NestedKey = ("posterior", "stoch")

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys

    def __init__(self, world_model: WorldModel, actor: nn.Module, value: nn.Module, *, horizon: int = 15,
                 gamma: float = 0.99, lambda_: float = 0.95) -> None:
        super().__init__()
        self.world_model, self.actor, self.value = world_model, actor, value
        self.horizon, self.gamma, self.lambda_ = horizon, gamma, lambda_

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDict]:  # noqa: D102
        wm, H = self.world_model, self.horizon
        deter = tensordict.get(self.tensor_keys.posterior_deter).detach()
        stoch = tensordict.get(self.tensor_keys.posterior_stoch).detach()
        deter, stoch = deter.reshape(-1, deter.shape[-1]), stoch.reshape(-1, stoch.shape[-1])  # [N, D], [N, S]
        with held_out(wm, self.value):
            deters, stochs, _ = imagine(wm.rssm, self.actor, deter, stoch, H)
            feat = wm.rssm.feat(stochs[1:], deters[1:])  # [H, N, F]  states s_1 .. s_H
            reward = wm.reward(feat[:-1])  # [H-1, N, 1]  (the last state only bootstraps)
            value = self.value(feat)  # [H, N, 1]
            if wm.pcont is not None:
                discount = torch.sigmoid(wm.pcont(feat[:-1]))  # trained towards γ (1 - terminated)
            else:
                discount = torch.full_like(reward, self.gamma)
        returns = lambda_return(reward, value[:-1], discount, value[-1], self.lambda_)  # [H-1, N, 1]
        weight = discount_weights(discount)  # [H-1, N, 1]
        loss = -(weight * returns).mean()
        imagined = TensorDict({"feat": feat[:-1].detach(), "lambda_return": returns.detach(), "weight": weight},
                              batch_size=list(returns.shape[:2]))
        return TensorDict({"loss_actor": loss}, batch_size=[]), imagined
