"""What every latent planner shares: candidate sampling, warm starts and the plan-return summary.

A planner maps filtered states to an action by search over action sequences ``[H, A]`` scored with
:func:`~dreamer_rl.planners.rollout.latent_returns`. Its search distribution (the *plan*) is ``[N, H, A]``: the mean
of a Gaussian over continuous actions, or the logits of one categorical per step and one-hot block for discrete
actions (``ActionSpace.sizes``).

Warm starts (the discrete-action fork's ``warm_start``): the next env step starts from the final plan shifted by one
step with a fresh last step (mean 0 / logits 0) appended; the std always restarts at ``init_std``:

    plan'[:, k] = plan[:, k + 1]  (k < H - 1),   plan'[:, H - 1] = 0,   plan' = 0 where an episode starts

(the fork never resets the plan between episodes; :meth:`LatentPlanner.shift` does, given ``is_init``).

Plan returns (``summarise_plan_returns``): the candidates' predicted returns of the first and the last iteration are
accumulated on the device (count, sum, sum of squares, max, min; no host sync) and read by :meth:`plan_summary`
when the training loop logs; the last plan's returns are kept for a histogram.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.runtime import compute_precision
from dreamer_rl.planners.rollout import Head, Objective, latent_returns


def sample_onehot(logits: torch.Tensor, sizes: tuple[int, ...], candidates: int) -> torch.Tensor:
    """``candidates`` one-hot samples per row: ``logits [N, H, A] -> [N, C, H, A]``, one categorical per block.

    Inverse-CDF sampling (one uniform per block and step), so there is no host sync and no Python loop over rows.
    """
    N, H, _ = logits.shape
    blocks, start = [], 0
    for n in sizes:
        probs = logits[..., start:start + n].softmax(-1)  # [N, H, n]
        u = torch.rand(N, candidates, H, 1, device=logits.device, dtype=probs.dtype)
        index = (probs.cumsum(-1)[:, None] < u).sum(-1, keepdim=True).clamp_(max=n - 1)  # [N, C, H, 1]
        blocks.append(torch.zeros(N, candidates, H, n, device=logits.device, dtype=logits.dtype)
                      .scatter_(-1, index, 1.0))
        start += n
    return torch.cat(blocks, -1)


def gather_candidates(actions: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``actions [N, C, H, A]``, ``index [N, k]`` -> the chosen candidates ``[N, k, H, A]``."""
    N, _, H, A = actions.shape
    return actions.gather(1, index[:, :, None, None].expand(N, index.shape[1], H, A))


class LatentPlanner(nn.Module):
    """Base of :class:`~dreamer_rl.planners.CEMPlanner` and :class:`~dreamer_rl.planners.MPPIPlanner` (each defines
    ``forward``; the base holds what they share).

    ``forward(deter [N, D], stoch [N, Z], plan [N, H, A] | None) -> (action [N, A], plan [N, H, A])``: the action to
    execute now and the final search distribution (feed :meth:`shift` of it back as the next warm start).

    :param rssm: the world model's transition model. :param reward: ``feat -> [..., 1]`` (the reward head).
    :param space: the action space (continuous in [-1, 1], or one-hot blocks).
    :param horizon: ``H``. :param candidates: ``C``. :param iterations: refits per plan. :param top_k: elites.
    :param objective: ``sum``, ``discounted`` or ``value`` (see :mod:`dreamer_rl.planners.rollout`).
    :param value: the critic for objective ``value``. :param init_std: std of the first iteration (continuous).
    :param summarise: accumulate plan-return statistics (see the module docstring).
    :param precision: ``bf16`` rolls the candidates out under bfloat16 autocast: the matmuls in bfloat16, the
        recurrent states, the predicted returns and everything the refit reads in float32 (the networks cast their
        outputs back); ``fp32`` everywhere otherwise.
    """

    def __init__(self, rssm: nn.Module, reward: Head, space: ActionSpace, *, horizon: int = 12,
                 candidates: int = 1000, iterations: int = 10, top_k: int = 100, objective: Objective = "sum",
                 gamma: float = 0.99, value: Head | None = None, init_std: float = 1.0,
                 summarise: bool = False, precision: str = "fp32") -> None:
        super().__init__()
        if top_k > candidates:
            raise ValueError(f"planner top_k {top_k} exceeds candidates {candidates}")
        if objective == "value" and value is None:
            raise ValueError("planner objective 'value' needs a value head")
        # the model and heads belong to the agent: kept unregistered so they are neither copied into this module's
        # state_dict nor counted twice among parameters
        object.__setattr__(self, "rssm", rssm)
        object.__setattr__(self, "_reward", reward)
        object.__setattr__(self, "_value", value)
        self.space = space
        self.horizon, self.candidates, self.iterations, self.top_k = horizon, candidates, iterations, top_k
        self.objective, self.gamma, self.init_std = objective, gamma, init_std
        self.summarise = summarise
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"planner precision {precision!r}; available: 'fp32', 'bf16'")
        self.precision = precision
        self._stats: dict[str, torch.Tensor] = {}
        self.last_returns: torch.Tensor | None = None

    # ------------------------------------------------------------------ pieces
    def returns(self, deter: torch.Tensor, stoch: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[N, C]`` predicted returns of ``actions [N, C, H, A]`` from ``(deter, stoch)``, float32."""
        with compute_precision(self.precision, deter.device):
            return latent_returns(self.rssm, self._reward, deter, stoch, actions, objective=self.objective,
                                  gamma=self.gamma, value=self._value)

    def initial_plan(self, n: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The cold-start plan ``[N, H, A]``: mean 0 (continuous) or uniform logits 0 (discrete)."""
        return torch.zeros(n, self.horizon, self.space.dim, device=device, dtype=dtype)

    @staticmethod
    def shift(plan: torch.Tensor, is_init: torch.Tensor | None = None) -> torch.Tensor:
        """The warm start of the next step: ``plan [N, H, A]`` shifted one step, 0 appended, 0 where ``is_init``."""
        shifted = torch.cat([plan[:, 1:], torch.zeros_like(plan[:, :1])], 1)
        if is_init is not None:
            shifted = shifted * (~is_init.reshape(-1, 1, 1).bool()).to(plan.dtype)
        return shifted

    def sample(self, plan: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """``C`` candidates ``[N, C, H, A]`` from the plan: Gaussian clipped to [-1, 1], or one-hot samples."""
        if self.space.discrete:
            return sample_onehot(plan, self.space.sizes, self.candidates)
        N, H, A = plan.shape
        noise = torch.randn(N, self.candidates, H, A, device=plan.device, dtype=plan.dtype)
        return (plan[:, None] + std[:, None] * noise).clamp(-1, 1)

    # ------------------------------------------------------------------ plan-return summary
    def _record(self, which: str, returns: torch.Tensor) -> None:
        if not self.summarise:
            return
        r = returns.detach().float()
        count = torch.full((), r.numel(), dtype=r.dtype, device=r.device)  # a fill, not a host-to-device copy
        parts = torch.stack([count, r.sum(), r.square().sum(), r.max(), r.min()])
        old = self._stats.get(which)
        if old is None:
            self._stats[which] = parts
        else:
            self._stats[which] = torch.stack([old[0] + parts[0], old[1] + parts[1], old[2] + parts[2],
                                              torch.maximum(old[3], parts[3]), torch.minimum(old[4], parts[4])])
        if which == "last":
            self.last_returns = r

    def plan_summary(self, reset: bool = True) -> dict[str, float]:
        """``plan/return_{first,last}_{mean,std,max,min}`` over every plan since the last call (host sync here)."""
        out: dict[str, float] = {}
        for which, s in self._stats.items():
            n, total, sq, hi, lo = s.tolist()
            mean = total / n
            out.update({f"plan/return_{which}_mean": mean, f"plan/return_{which}_std": max(sq / n - mean ** 2, 0.0) ** 0.5,
                        f"plan/return_{which}_max": hi, f"plan/return_{which}_min": lo})
        if reset:
            self._stats = {}
        return out



PlannerFactory = Callable[..., LatentPlanner]
