"""Value loss: regress V(s_k) on the λ-returns of imagined states (Dreamer V1, eq. 8).

    L_value = mean_{k,n} w_k * (-log N(sg(R_k) | V(sg(feat_k)), 1))

Inputs come from :class:`~dreamer_rl.losses.actor.ActorLoss` (features, returns and weights, all detached), so
only the value network receives gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.objectives.common import LossModule

from dreamer_rl.nets.distributions import gaussian_log_prob


class ValueLoss(LossModule):
    """Dreamer V1 value loss as a TorchRL ``LossModule``; ``forward(imagined) -> {"loss_value": scalar}``.

    Example::

        >>> value_loss = ValueLoss(value)
        >>> value_loss(imagined)["loss_value"].backward()   # imagined: the second output of ActorLoss
    """

    @dataclass
    class _AcceptedKeys:
        """Keys of the imagined TensorDict ``[H-1, N]``: ``feat [.., F]``, ``lambda_return [.., 1]``, ``weight [.., 1]``."""

        feat: NestedKey = "feat"
        lambda_return: NestedKey = "lambda_return"
        weight: NestedKey = "weight"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys

    def __init__(self, value: nn.Module) -> None:
        super().__init__()
        self.value = value

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    def forward(self, tensordict: TensorDictBase) -> TensorDict:  # noqa: D102
        keys = self.tensor_keys
        feat = tensordict.get(keys.feat).detach()
        target = tensordict.get(keys.lambda_return).detach()
        weight = tensordict.get(keys.weight).detach()
        nll = -gaussian_log_prob(target, self.value(feat), 1)  # [H-1, N]
        return TensorDict({"loss_value": (weight[..., 0] * nll).mean()}, batch_size=[])
