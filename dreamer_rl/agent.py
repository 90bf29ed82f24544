"""The Dreamer agent's networks and one full learning update.

:class:`Dreamer` holds the world model, the actor and the value net; :func:`build_dreamer` builds them from a
:class:`~dreamer_rl.config.Recipe`. :class:`Learner` owns the three losses and optimisers and performs one update:

    1. world model:  L_wm = L_image + L_reward + L_kl (+ L_pcont)   -> model optimiser
    2. actor:        L_actor from imagined λ-returns                -> actor optimiser
    3. value:        L_value on the same imagined trajectories      -> value optimiser

Each optimiser clips its own gradient norm. ``update`` returns detached scalar tensors (no host sync inside).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from dreamer_rl.config import Recipe
from dreamer_rl.losses import ActorLoss, ValueLoss, WorldModelLoss
from dreamer_rl.nets import MLP, TanhNormalActor
from dreamer_rl.runtime import flush_denormals, keep_freed_memory
from dreamer_rl.world_model import WorldModel


class Dreamer(nn.Module):
    """World model + actor + value of one agent."""

    def __init__(self, world_model: WorldModel, actor: TanhNormalActor, value: MLP) -> None:
        super().__init__()
        self.world_model, self.actor, self.value = world_model, actor, value


def build_dreamer(recipe: Recipe, obs_shape: tuple[int, ...], action_dim: int) -> Dreamer:
    """Networks for observations of ``obs_shape`` (``(3, 64, 64)`` pixels or ``(D,)``) and ``action_dim`` actions."""
    m, b = recipe.model, recipe.behavior
    wm = WorldModel(obs_shape, action_dim, stoch=m.stoch, deter=m.deter, hidden=m.hidden, units=m.units,
                    cnn_depth=m.cnn_depth, act=m.act, min_std=m.min_std, latent=m.latent, cell=m.cell, pcont=m.pcont)
    feat = wm.rssm.feat_dim
    actor = TanhNormalActor(feat, action_dim, units=m.units, layers=b.actor_layers, act=m.act,
                            init_std=b.actor_init_std, min_std=b.actor_min_std)
    value = MLP(feat, 1, units=m.units, layers=b.value_layers, act=m.act)
    return Dreamer(wm, actor, value)


class Learner(nn.Module):
    """Losses and optimisers of a :class:`Dreamer`; ``update(batch)`` is one full training step.

    :param obs_key: where the batch stores observations (``"pixels"`` or ``"observation"``).
    """

    def __init__(self, agent: Dreamer, recipe: Recipe, obs_key: str = "pixels") -> None:
        super().__init__()
        if recipe.train.keep_freed_memory:
            keep_freed_memory()
        flush_denormals()  # CPU: subnormals cost ~100x; they build up over a long run
        m, b, t = recipe.model, recipe.behavior, recipe.train
        self.agent = agent
        self.world_model_loss = WorldModelLoss(agent.world_model, kl_kind=m.kl, free_nats=m.free_nats,
                                               kl_scale=m.kl_scale, pcont_scale=m.pcont_scale, discount=b.gamma)
        self.world_model_loss.set_keys(observation=obs_key)
        self.actor_loss = ActorLoss(agent.world_model, agent.actor, agent.value, horizon=b.horizon, gamma=b.gamma,
                                    lambda_=b.lambda_)
        self.value_loss = ValueLoss(agent.value)
        adam = dict(eps=t.adam_eps)
        self.model_opt = torch.optim.Adam(agent.world_model.parameters(), lr=t.model_lr, **adam)
        self.actor_opt = torch.optim.Adam(agent.actor.parameters(), lr=t.actor_lr, **adam)
        self.value_opt = torch.optim.Adam(agent.value.parameters(), lr=t.value_lr, **adam)
        self.grad_clip = t.grad_clip

    def _step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, module: nn.Module) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip, foreach=True)
        opt.step()
        return norm

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """One update on stored rows ``[B, T]``; returns ``train/...`` metrics as detached 0-d tensors."""
        a = self.agent
        wm_losses, states = self.world_model_loss(batch)
        wm_total = sum(v for k, v in wm_losses.items() if k.startswith("loss_"))
        model_norm = self._step(wm_total, self.model_opt, a.world_model)
        actor_losses, imagined = self.actor_loss(states)
        actor_norm = self._step(actor_losses["loss_actor"], self.actor_opt, a.actor)
        value_losses = self.value_loss(imagined)
        value_norm = self._step(value_losses["loss_value"], self.value_opt, a.value)
        metrics = {f"train/loss/{k[5:]}": v.detach() for k, v in wm_losses.items() if k.startswith("loss_")}
        metrics.update({
            "train/kl": wm_losses["kl"], "train/loss/actor": actor_losses["loss_actor"].detach(),
            "train/loss/value": value_losses["loss_value"].detach(), "train/grad_norm/model": model_norm,
            "train/grad_norm/actor": actor_norm, "train/grad_norm/value": value_norm,
            "train/imagined_return": imagined["lambda_return"].mean(),
        })
        return metrics

    def optim_state(self) -> dict[str, Any]:
        return {"model": self.model_opt.state_dict(), "actor": self.actor_opt.state_dict(),
                "value": self.value_opt.state_dict()}

    def load_optim_state(self, state: dict[str, Any]) -> None:
        self.model_opt.load_state_dict(state["model"])
        self.actor_opt.load_state_dict(state["actor"])
        self.value_opt.load_state_dict(state["value"])
