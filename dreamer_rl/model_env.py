"""The learned world model as a TorchRL environment (``ModelBasedEnvBase``), for TorchRL's planners and anything
written against model-based envs.

State and observation: the latent ``("state", "belief") = (z, h)`` of :class:`~dreamer_rl.rssm.RSSM`
(``[*B, Z]``, ``[*B, D]``). One step imagines with the prior and predicts the reward:

    h' = f(h, z, a),   z' ~ p(z' | h'),   r = rew(feat(z', h'))        (the prior's mode with ``sample=False``)

written under ``("next", "state")``, ``("next", "belief")``, ``("next", "reward")``; the env never ends by itself
(``done`` stays false; planners cut the horizon). Reset keeps the ``state`` / ``belief`` given in the reset
TensorDict (e.g. posterior states filtered from real observations) and zeros the rest, so
``env.reset(TensorDict({"state": z, "belief": h}, [N]))`` starts imagination from a filtered state. The env is not
batch-locked: it steps any leading batch shape, which TorchRL's ``CEMPlanner`` / ``MPPIPlanner`` rely on when they
expand a state over their candidates.

>>> env = WorldModelEnv(agent.world_model, agent.action_space)               # doctest: +SKIP
>>> planner = torchrl.modules.planners.CEMPlanner(env, 12, 10, 1000, 100)   # doctest: +SKIP
>>> action = planner.planning(env.reset(TensorDict({"state": z, "belief": h}, [1])))
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Bounded, Composite, MultiOneHot, OneHot, Unbounded
from torchrl.envs.model_based import ModelBasedEnvBase

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.world_model import WorldModel

__all__ = ["WorldModelEnv", "LatentStep"]


class LatentStep(nn.Module):
    """``(z, h, a) -> (z', h', r)``: one imagined step and its predicted reward (see the module docstring)."""

    def __init__(self, world_model: WorldModel, sample: bool = True) -> None:
        super().__init__()
        self.world_model, self.sample = world_model, sample

    def forward(self, state: torch.Tensor, belief: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: D102
        rssm = self.world_model.rssm
        lead = belief.shape[:-1]
        belief, state, action = belief.reshape(-1, belief.shape[-1]), state.reshape(-1, state.shape[-1]), \
            action.reshape(-1, action.shape[-1])
        act_in = rssm.transition.action_input(action.to(belief.dtype))
        belief, state, feat = rssm.prior_step(belief, state, act_in, self.sample)  # the planners' step
        reward = self.world_model.reward(feat)
        return state.reshape(*lead, -1), belief.reshape(*lead, -1), reward.reshape(*lead, 1)


class WorldModelEnv(ModelBasedEnvBase):
    """A :class:`~dreamer_rl.world_model.WorldModel` stepped as a TorchRL env (see the module docstring).

    :param world_model: the model (its ``rssm`` and ``reward`` head are used).
    :param action_space: the agent's action space (continuous ``[-1, 1]`` or one-hot blocks).
    :param sample: imagine with prior samples (PlaNet) or the prior's mode.
    """

    def __init__(self, world_model: WorldModel, action_space: ActionSpace | None = None, *, sample: bool = True,
                 device: torch.device | str | None = None) -> None:
        device = device or next(world_model.parameters()).device
        module = TensorDictModule(LatentStep(world_model, sample), in_keys=["state", "belief", "action"],
                                  out_keys=["state", "belief", "reward"])
        super().__init__(module, device=device)
        rssm = world_model.rssm
        space = action_space or ActionSpace("continuous", (rssm.action_dim,))
        self.action_space = space
        latent = Composite(state=Unbounded((rssm.stoch,), device=self.device),
                           belief=Unbounded((rssm.deter,), device=self.device))
        self.observation_spec = latent.clone()
        self.state_spec = latent.clone()
        if not space.discrete:
            self.action_spec = Bounded(-1.0, 1.0, (space.dim,), device=self.device)
        elif len(space.sizes) == 1:
            self.action_spec = OneHot(space.dim, device=self.device, dtype=torch.float32)
        else:
            self.action_spec = MultiOneHot(list(space.sizes), device=self.device, dtype=torch.float32)
        self.reward_spec = Unbounded((1,), device=self.device)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        batch = tensordict.batch_size if tensordict is not None else self.batch_size
        rssm = self.world_model.module.world_model.rssm
        out = TensorDict({}, batch_size=batch, device=self.device)
        for key, width in (("state", rssm.stoch), ("belief", rssm.deter)):
            given = tensordict.get(key, None) if tensordict is not None else None
            out.set(key, given.clone() if given is not None else torch.zeros(*batch, width, device=self.device))
        return out
