"""A slow (target) copy of the critic, as DreamerV2 and DreamerV3 keep one.

``hard`` (DreamerV2, ``slow_target_update: 100``, fraction 1): every ``every`` updates, ``θ_slow <- θ``.
``ema`` (DreamerV3, ``slowvalue: {rate: 0.02, every: 1}``): every ``every`` updates, ``θ_slow <- (1 - r) θ_slow + r θ``.

The copy starts equal to the critic and never receives gradients. V2 computes the λ-return targets from it; V3
computes them from the critic itself and instead regularises the critic towards the slow copy's predictions
(:class:`~dreamer_rl.losses.value.ValueLoss` ``slow_reg``).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

SlowKind = Literal["none", "hard", "ema"]


class SlowCritic(nn.Module):
    """``forward(feat)`` predicts with the slow copy; :meth:`update` follows the critic (call after its step)."""

    def __init__(self, critic: nn.Module, kind: Literal["hard", "ema"] = "ema", *, every: int = 1,
                 rate: float = 0.02) -> None:
        super().__init__()
        if kind not in ("hard", "ema"):
            raise ValueError(f"slow critic kind {kind!r}; available: 'hard', 'ema'")
        self.kind, self.every, self.rate = kind, every, rate
        self.copy = copy.deepcopy(critic).requires_grad_(False)
        self._critic = [critic]  # not a submodule: its parameters belong to the critic
        self.count = 0  # critic updates seen; a host int so the schedule needs no sync (checkpointed below)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.copy(feat)

    def get_extra_state(self) -> dict[str, int]:
        return {"count": self.count}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.count = int(state["count"])

    @torch.no_grad()
    def update(self) -> None:
        """Count one critic update; on every ``every``-th, copy (``hard``) or blend (``ema``) the weights."""
        self.count += 1
        if self.count % self.every:
            return
        slow, fast = list(self.copy.parameters()), list(self._critic[0].parameters())
        if self.kind == "hard":
            torch._foreach_copy_(slow, fast)
        else:
            torch._foreach_lerp_(slow, fast, self.rate)
