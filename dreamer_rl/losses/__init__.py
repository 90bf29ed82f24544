"""TorchRL ``LossModule`` subclasses: world model, actor and value losses, plus the pure helpers they use."""

from __future__ import annotations

from dreamer_rl.losses.actor import ActorLoss
from dreamer_rl.losses.kl import gaussian_kl, kl_loss
from dreamer_rl.losses.returns import discount_weights, lambda_return
from dreamer_rl.losses.value import ValueLoss
from dreamer_rl.losses.world_model import WorldModelLoss

__all__ = ["ActorLoss", "ValueLoss", "WorldModelLoss", "discount_weights", "gaussian_kl", "kl_loss",
           "lambda_return"]
