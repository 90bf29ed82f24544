"""λ-returns and discount weights over imagined trajectories (Dreamer, Hafner et al. 2020, eq. 6).

With rewards ``r_t``, values ``v_t = V(s_t)`` and discounts ``d_t`` (``γ``, or ``γ`` times the continuation
probability) along a trajectory ``t = 0 .. H-1``, and ``bootstrap = V(s_H)``:

    R_t = r_t + d_t ((1 - λ) v_{t+1} + λ R_{t+1}),     v_H = R_H = bootstrap

Example (λ = 0.5, d = 0.9, r = [1, 2], v = [0, 4], bootstrap 10)::

    R_1 = 2 + 0.9 (0.5 * 10 + 0.5 * 10)  = 11
    R_0 = 1 + 0.9 (0.5 * 4  + 0.5 * 11)  = 7.75

Shapes: time first, ``[H, N, 1]`` (``N`` = imagined trajectories).
"""

from __future__ import annotations

import torch


def lambda_return(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor, bootstrap: torch.Tensor,
                  lambda_: float) -> torch.Tensor:
    """``R_t`` for ``t = 0 .. H-1`` from ``reward, value, discount`` ``[H, N, 1]`` and ``bootstrap`` ``[N, 1]``."""
    assert reward.shape == value.shape == discount.shape, (
        f"lambda_return: reward {tuple(reward.shape)}, value {tuple(value.shape)}, discount {tuple(discount.shape)}")
    next_value = torch.cat([value[1:], bootstrap[None]], 0)
    inputs = reward + discount * next_value * (1 - lambda_)  # [H, N, 1]
    returns = []
    last = bootstrap
    for t in reversed(range(reward.shape[0])):
        last = inputs[t] + discount[t] * lambda_ * last
        returns.append(last)
    return torch.stack(returns[::-1], 0)


def discount_weights(discount: torch.Tensor) -> torch.Tensor:
    """Weights ``w_t = prod_{k<t} d_k`` (``w_0 = 1``) for losses over imagined steps: ``[H, N, 1] -> [H, N, 1]``.

    A state reached after the model predicts termination counts less. Never differentiated.
    """
    ones = torch.ones_like(discount[:1])
    return torch.cumprod(torch.cat([ones, discount[:-1]], 0), 0).detach()
