"""Score action sequences in latent space: roll the learned prior forward and sum predicted rewards.

For ``N`` start states (the filtered posterior of each env) and ``C`` candidate action sequences per state:

    s_0 = (h, z) tiled C times,   h_{k+1} = f(h_k, z_k, a_k),   z_{k+1} ~ p(z | h_{k+1}),   k = 0 .. H-1
    r_k = rew(feat(s_{k+1}))
    R   = Σ_k r_k                                    objective ``sum``        (PlaNet camera-ready)
    R   = Σ_k γ^k r_k                                objective ``discounted`` (PlaNet paper, γ = 0.99)
    R   = Σ_k γ^k r_k + γ^H V(feat(s_H))             objective ``value``      (bootstrapped with a critic)

Shapes: ``deter [N, D]``, ``stoch [N, Z]``, ``actions [N, C, H, A]`` -> ``returns [N, C]``. The whole batch of
``N · C`` rollouts is one tensor program: the action projection of all ``H`` steps is one matmul, the reward (and
value) head runs once over ``[N · C, H, F]`` after the loop; no host sync, no Python branching on values.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

Objective = Literal["sum", "discounted", "value"]
Head = Callable[[torch.Tensor], torch.Tensor]


def latent_returns(rssm, reward: Head, deter: torch.Tensor, stoch: torch.Tensor, actions: torch.Tensor, *,
                   objective: Objective = "sum", gamma: float = 0.99, value: Head | None = None,
                   sample: bool = True) -> torch.Tensor:
    """Predicted return of every candidate sequence, ``[N, C]`` (see the module docstring).

    :param rssm: the world model's transition model (``transition.action_input``, ``prior_step``).
    :param reward: ``feat [..., F] -> [..., 1]``, the reward head's prediction.
    :param value: ``feat [..., F] -> [..., 1]`` for objective ``value``.
    :param sample: roll with prior samples (PlaNet) or the prior's mode.
    """
    N, C, H, A = actions.shape
    d = deter[:, None].expand(N, C, deter.shape[-1]).reshape(N * C, -1)
    s = stoch[:, None].expand(N, C, stoch.shape[-1]).reshape(N * C, -1)
    act_in = rssm.transition.action_input(actions.reshape(N * C, H, A).to(d.dtype)).unbind(1)
    feats = []
    for k in range(H):
        d, s, feat_k = rssm.prior_step(d, s, act_in[k], sample)
        feats.append(feat_k)
    feat = torch.stack(feats, 1)  # [N C, H, F]
    rewards = reward(feat)[..., 0]  # [N C, H]
    if objective == "sum":
        total = rewards.sum(1)
    elif objective in ("discounted", "value"):
        discounts = gamma ** torch.arange(H, device=rewards.device, dtype=rewards.dtype)
        total = (rewards * discounts).sum(1)
        if objective == "value":
            if value is None:
                raise ValueError("planner objective 'value' needs a value head")
            total = total + gamma ** H * value(feat[:, -1])[..., 0]
    else:
        raise ValueError(f"planner objective {objective!r}; available: 'sum', 'discounted', 'value'")
    return total.reshape(N, C)
