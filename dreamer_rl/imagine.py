"""Latent imagination: roll the RSSM prior forward from posterior states with a policy.

    s_0 = start,   a_k = π(sg(feat(s_k))),   s_{k+1} = (h_{k+1}, z_{k+1} ~ p(. | h_{k+1})),   k = 0 .. H-1

Returns time-first tensors with the start state at index 0: ``deter [H+1, N, D]``, ``stoch [H+1, N, S]``,
``action [H, N, A]``. Gradients flow from every state back into the actions through the dynamics (the prior sample
is reparameterised), which is what Dreamer's actor loss differentiates; as in Dreamer V1, the policy's *input* is
stop-gradiented, so a state's gradient does not also flow back through the actor into earlier states.
Plain tensors inside the loop; no host syncs.
"""

from __future__ import annotations

from typing import Callable

import torch

from dreamer_rl.rssm import RSSM


def imagine(rssm: RSSM, policy: Callable[[torch.Tensor], torch.Tensor], deter: torch.Tensor, stoch: torch.Tensor,
            horizon: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Imagine ``horizon`` steps from ``deter [N, D]``, ``stoch [N, S]``; see the module docstring."""
    deters, stochs, actions = [deter], [stoch], []
    for _ in range(horizon):
        action = policy(rssm.feat(stoch, deter).detach())  # [N, A]
        deter, stoch = rssm.img_step(deter, stoch, action)
        deters.append(deter), stochs.append(stoch), actions.append(action)
    return torch.stack(deters), torch.stack(stochs), torch.stack(actions)
