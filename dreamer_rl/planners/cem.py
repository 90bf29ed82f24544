"""Cross-entropy method in latent space (PlaNet, Hafner et al. 2019; the discrete-action fork for one-hot actions).

Continuous actions (PlaNet, ``planet/control/planning.py``): per env, a diagonal Gaussian over the action sequence
``[H, A]``, mean 0 (or the warm start) and std ``init_std`` = 1; each of ``I`` iterations

    a^c ~ clip(N(μ, σ²), -1, 1),  c = 1 .. C          (C = 1000 candidates)
    R^c = latent_returns(s, a^c)                       (H = 12 steps of the prior; sum of predicted rewards)
    E   = the top_k (100) candidates by R
    μ   = mean_{c∈E} a^c,   σ = sqrt(var_{c∈E} a^c + 1e-6)      (population variance, no smoothing)

and the env executes ``μ[0]`` of the final mean (plus exploration noise while collecting, added by the policy).

Discrete actions (the fork's discrete CEM): per env, logits ``[H, A]`` of one categorical per step and one-hot block,
0 at the start (uniform); each iteration draws ``C`` one-hot sequences, keeps the top_k and refits

    logits = log(freq_E + 1e-6),   freq_E[h, a] = share of the elites taking action a at step h

and the env executes the first action of the single best candidate of the final iteration (the fork's choice).

Everything is one batched tensor program per plan: ``N`` envs × ``C`` candidates roll out together; ``topk`` and
``gather`` pick the elites on the device; the loop is over the ``I`` iterations only, with no host sync inside, so
the planner runs on the GPU when the model does.
"""

from __future__ import annotations

import torch

from dreamer_rl.planners.base import LatentPlanner, gather_candidates


class CEMPlanner(LatentPlanner):
    """CEM over action sequences (see the module docstring); arguments of :class:`LatentPlanner`."""

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, plan: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(deter [N, D], stoch [N, Z], plan [N, H, A] | None) -> (action [N, A], final plan [N, H, A])``."""
        N = deter.shape[0]
        plan = self.initial_plan(N, deter.device, deter.dtype) if plan is None else plan.to(deter.dtype)
        std = torch.full_like(plan, self.init_std)
        best = None
        for i in range(self.iterations):
            actions = self.sample(plan, std)  # [N, C, H, A]
            returns = self.returns(deter, stoch, actions)  # [N, C]
            if i == 0:
                self._record("first", returns)
            top = returns.topk(self.top_k, dim=1).indices  # [N, k], best first
            elite = gather_candidates(actions, top)  # [N, k, H, A]
            if self.space.discrete:
                plan = torch.log(elite.mean(1) + 1e-6)
                best = elite[:, 0, 0]  # [N, A]
            else:
                plan = elite.mean(1)
                std = (elite.var(1, unbiased=False) + 1e-6).sqrt()
        self._record("last", returns)
        action = best if self.space.discrete else plan[:, 0]
        return action, plan
