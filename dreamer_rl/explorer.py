"""The Plan2Explore half of an update: train the disagreement ensemble, then the exploration actor and critic.

Runs after the task update of :class:`~dreamer_rl.agent.Learner` on the same replayed rows and posterior states
(math in :mod:`dreamer_rl.losses.plan2explore`):

    1. ensemble:           L_ens on (feat_t, a_t) -> target_{t+1} pairs of the batch       (its own Adam, V2's expl_opt)
    2. exploration actor:  ActorLoss with r_k = intr_scale r^int + extr_scale rew           (imagined from the states)
    3. exploration critic: ValueLoss on those trajectories

Each has its own Adam (V2: the exploration behaviour is a second ActorCritic), whatever optimiser the task uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from dreamer_rl.losses import ActorLoss, ValueLoss


class ExplorationLearner(nn.Module):
    """Losses and optimisers of the agent's ``ensemble``, ``expl_actor`` and ``expl_value``."""

    def __init__(self, agent: nn.Module, recipe, actor_grad: str) -> None:
        super().__init__()
        b, t = recipe.behavior, recipe.train
        self.agent = agent
        self.actor_loss = ActorLoss(agent.world_model, agent.expl_actor, agent.expl_value, horizon=b.horizon,
                                    gamma=b.gamma, lambda_=b.lambda_, actor_grad=actor_grad,
                                    grad_mix=b.actor_grad_mix, entropy=b.actor_entropy,
                                    reward_model=agent.ensemble)
        self.value_loss = ValueLoss(agent.expl_value)
        self.ensemble_opt = torch.optim.Adam(agent.ensemble.parameters(), lr=b.expl_lr, eps=1e-5)
        self.actor_opt = torch.optim.Adam(agent.expl_actor.parameters(), lr=t.actor_lr, eps=t.adam_eps)
        self.value_opt = torch.optim.Adam(agent.expl_value.parameters(), lr=t.value_lr, eps=t.adam_eps)
        self.grad_clip = t.grad_clip

    def _step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, module: nn.Module) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip, foreach=True)
        opt.step()
        return norm

    def update(self, batch: TensorDictBase, states: TensorDictBase, keys,
               forward: Callable[..., Any] = lambda fn, *args: fn(*args)) -> dict[str, torch.Tensor]:
        """One exploration update; ``states``: the world-model loss's detached posterior states ``[B, T]``.

        ``forward(fn, *args)`` runs each forward pass (the task learner's precision, ``train.precision``)."""
        a = self.agent
        rssm = a.world_model.rssm
        deter, stoch = states.get(keys.posterior_deter), states.get(keys.posterior_stoch)
        feat = rssm.feat(stoch, deter)
        target = a.ensemble.select_target(stoch, deter)
        action = batch.get(keys.action).to(feat.dtype)
        ensemble_loss = forward(a.ensemble.loss, feat, action, target, batch.get(keys.is_init))
        self._step(ensemble_loss, self.ensemble_opt, a.ensemble)
        actor_losses, imagined = forward(self.actor_loss, states)
        self._step(actor_losses["loss_actor"], self.actor_opt, a.expl_actor)
        value_losses = forward(self.value_loss, imagined)
        self._step(sum(value_losses.values()), self.value_opt, a.expl_value)
        return {"train/loss/ensemble": ensemble_loss.detach(),
                "train/loss/expl_actor": actor_losses["loss_actor"].detach(),
                **{f"train/loss/expl_{k[5:]}": v.detach() for k, v in value_losses.items()},
                "train/expl_imagined_return": imagined["lambda_return"].mean()}

    def optim_state(self) -> dict[str, Any]:
        return {"ensemble": self.ensemble_opt.state_dict(), "actor": self.actor_opt.state_dict(),
                "value": self.value_opt.state_dict()}

    def load_optim_state(self, state: dict[str, Any]) -> None:
        self.ensemble_opt.load_state_dict(state["ensemble"])
        self.actor_opt.load_state_dict(state["actor"])
        self.value_opt.load_state_dict(state["value"])
