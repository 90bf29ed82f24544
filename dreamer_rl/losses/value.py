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

from dreamer_rl.nets.heads import ScalarHead


class ValueLoss(LossModule):
    """Dreamer critic loss as a TorchRL ``LossModule``; ``forward(imagined) -> {"loss_value": scalar}``.

    :param value: a :class:`ScalarHead` (anything with ``loss(feat, target) -> [...]``).
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
        loss = self.value.loss(feat, target)  # [H, N]
        if self.slow_reg:
            with torch.no_grad():
                slow = self.slow_value(feat)
            loss = loss + self.slow_reg * self.value.loss(feat, slow)
        return TensorDict({"loss_value": (weight * loss).mean()}, batch_size=[])
