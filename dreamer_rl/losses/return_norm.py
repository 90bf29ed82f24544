"""DreamerV3's return normalisation: divide advantages by a running percentile range of the λ-returns.

With ``G`` the λ-returns of a batch of imagined trajectories (all ``[H, N]`` entries),

    lo <- (1 - r) lo + r · P_5(G),   hi <- (1 - r) hi + r · P_95(G)      (EMA, rate r = 0.01, from lo = hi = 0)
    S  = max(limit, hi - lo)                                             (limit 1)

and the actor uses ``(G - v) / S``. Large returns are scaled down to a range of about 1 while small ones are not
scaled up (the ``limit``), so the entropy bonus keeps the same meaning across reward scales (Hafner et al. 2023,
"Return normalization"; ``dreamerv3/configs.yaml`` ``retnorm: {impl: perc, rate: 0.01, limit: 1, perclo: 5,
perchi: 95}``). The percentiles are over the whole batch, the statistics live in buffers (checkpointed with the
agent), and nothing syncs with the host.

Example: first update with ``P_5 = -10``, ``P_95 = 190``: lo = -0.1, hi = 1.9, S = max(1, 2.0) = 2.0.
"""

from __future__ import annotations

import torch
from torch import nn


class PercentileReturnNorm(nn.Module):
    """Running ``[lo, hi]`` percentile range; ``forward(returns, update=True) -> S`` (a 0-d tensor)."""

    def __init__(self, decay: float = 0.01, limit: float = 1.0, low: float = 5.0, high: float = 95.0) -> None:
        super().__init__()
        self.decay, self.limit = decay, limit
        self.register_buffer("quantiles", torch.tensor([low / 100, high / 100]), persistent=False)
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> None:
        """Move ``lo``/``hi`` towards the 5th/95th percentiles of ``returns`` (any shape)."""
        lo, hi = torch.quantile(returns.detach().flatten().float(), self.quantiles.to(returns.device))
        self.lo.lerp_(lo, self.decay)
        self.hi.lerp_(hi, self.decay)

    def scale(self) -> torch.Tensor:
        """``S = max(limit, hi - lo)``."""
        return torch.clamp(self.hi - self.lo, min=self.limit)

    def forward(self, returns: torch.Tensor, update: bool = True) -> torch.Tensor:  # noqa: D102
        if update:
            self.update(returns)
        return self.scale()
