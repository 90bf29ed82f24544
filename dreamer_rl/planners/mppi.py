"""Model-predictive path integral planning in latent space, as TD-MPC (Hansen et al. 2022) plans.

Like CEM (:mod:`dreamer_rl.planners.cem`), but the elites are weighted by their returns instead of counted equally.
Per env and iteration, with the top_k elites ``E`` of ``C`` candidates and temperature ``τ``:

    w_c = exp(τ (R^c - max_E R)) / Σ_{c'∈E} exp(τ (R^{c'} - max_E R))          (c ∈ E)
    μ'  = Σ_c w_c a^c,    σ = clamp(sqrt(Σ_c w_c (a^c - μ')²), min_std, max_std)
    μ   = momentum · μ + (1 - momentum) · μ'

Discrete actions refit the logits to ``log(Σ_c w_c onehot(a^c) + 1e-6)``. After the last iteration one elite is
drawn with probabilities ``w`` and its first action is executed (TD-MPC's choice; exploration noise is the
policy's). One batched tensor program per plan, no host sync inside (the draw is ``torch.multinomial`` on the device).
"""

from __future__ import annotations

import torch

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.planners.base import LatentPlanner, gather_candidates
from dreamer_rl.planners.rollout import Head


class MPPIPlanner(LatentPlanner):
    """MPPI (see the module docstring). Extra arguments: ``temperature`` τ (0.5), ``momentum`` (0.1), ``min_std``
    (0.05), ``max_std`` (2.0); the rest are :class:`~dreamer_rl.planners.base.LatentPlanner`'s."""

    def __init__(self, rssm, reward: Head, space: ActionSpace, *, temperature: float = 0.5, momentum: float = 0.1,
                 min_std: float = 0.05, max_std: float = 2.0, **kwargs) -> None:
        super().__init__(rssm, reward, space, **kwargs)
        self.temperature, self.momentum, self.min_std, self.max_std = temperature, momentum, min_std, max_std

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, plan: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(deter [N, D], stoch [N, Z], plan [N, H, A] | None) -> (action [N, A], final plan [N, H, A])``."""
        N = deter.shape[0]
        plan = self.initial_plan(N, deter.device, deter.dtype) if plan is None else plan.to(deter.dtype)
        std = torch.full_like(plan, self.init_std)
        for i in range(self.iterations):
            actions = self.sample(plan, std)  # [N, C, H, A]
            returns = self.returns(deter, stoch, actions)  # [N, C]
            if i == 0:
                self._record("first", returns)
            top_returns, top = returns.topk(self.top_k, dim=1)  # [N, k]
            elite = gather_candidates(actions, top)  # [N, k, H, A]
            weight = (self.temperature * (top_returns - top_returns[:, :1])).softmax(1)[:, :, None, None]
            mean = (weight * elite).sum(1)  # [N, H, A]
            if self.space.discrete:
                plan = torch.log(mean + 1e-6)
            else:
                std = (weight * (elite - mean[:, None]).square()).sum(1).sqrt().clamp(self.min_std, self.max_std)
                plan = self.momentum * plan + (1 - self.momentum) * mean
        self._record("last", returns)
        pick = torch.multinomial(weight[:, :, 0, 0], 1)  # [N, 1]: one elite per env, drawn by weight
        action = elite.gather(1, pick[:, :, None, None].expand(N, 1, *elite.shape[2:]))[:, 0, 0]
        return action, plan
