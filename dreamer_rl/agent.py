"""The Dreamer agent's networks and one full learning update.

:class:`Dreamer` holds the world model, the actor, the critic (and its slow copy and the return normaliser when the
recipe asks for them); :func:`build_dreamer` builds them from a :class:`~dreamer_rl.config.Recipe`. :class:`Learner`
owns the three losses and the optimiser(s) and performs one update:

    1. world model:  L_wm = L_image + L_reward + L_kl (+ L_pcont)
    2. actor:        L_actor from imagined λ-returns (:class:`~dreamer_rl.losses.ActorLoss`)
    3. critic:       L_value on the same imagined trajectories; then the slow critic follows

``train.optimizer = "adam"`` (V1, V2): one Adam per module, each stepped after its own loss, so the actor imagines
with the freshly updated model, each clipping its own gradient norm. ``"laprop"`` (V3): the three losses are summed
and one backward and one LaProp step (with adaptive gradient clipping and warm-up) update everything, as the JAX
original does; the stop-gradients of the losses keep each module trained only by its own terms.
``update`` returns detached scalar tensors (no host sync inside). ``train.precision bf16`` runs every forward pass
of an update under bfloat16 autocast (:meth:`Learner.autocast`); the backward passes and optimiser steps stay outside.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.config import Recipe
from dreamer_rl.errors import UserError
from dreamer_rl.losses import ActorLoss, ValueLoss, WorldModelLoss
from dreamer_rl.losses.value import ReplayValueLoss
from dreamer_rl.losses.return_norm import PercentileReturnNorm
from dreamer_rl.losses.slow_critic import SlowCritic
from dreamer_rl.nets.actors import make_actor
from dreamer_rl.nets.heads import ScalarHead
from dreamer_rl.nets.init import dreamer_v3_init
from dreamer_rl.compile import compile_steps
from dreamer_rl.explorer import ExplorationLearner
from dreamer_rl.losses.plan2explore import DisagreementEnsemble
from dreamer_rl.optim import LaProp
from dreamer_rl.planners import LatentPlanner, make_planner
from dreamer_rl.runtime import bf16_is_native, compute_precision, flush_denormals, keep_freed_memory
from dreamer_rl.world_model import WorldModel

log = logging.getLogger(__name__)


class Dreamer(nn.Module):
    """World model + actor + critic of one agent (+ slow critic and return normaliser when used)."""

    def __init__(self, world_model: WorldModel, actor: nn.Module | None, value: nn.Module | None,
                 slow_value: SlowCritic | None = None, return_norm: PercentileReturnNorm | None = None,
                 action_space: ActionSpace | None = None, planner: LatentPlanner | None = None,
                 ensemble: nn.Module | None = None, expl_actor: nn.Module | None = None,
                 expl_value: nn.Module | None = None) -> None:
        super().__init__()
        self.world_model, self.actor, self.value = world_model, actor, value
        self.slow_value, self.return_norm = slow_value, return_norm
        #: what the agent acts with (default: continuous actions of the world model's action width)
        self.action_space = action_space or ActionSpace("continuous", (world_model.rssm.action_dim,))
        #: acts by planning when set (it holds no parameters of its own)
        self.planner = planner
        #: Plan2Explore: the disagreement ensemble and the exploration actor-critic (collection only)
        self.ensemble, self.expl_actor, self.expl_value = ensemble, expl_actor, expl_value


def build_dreamer(recipe: Recipe, obs_shape: tuple[int, ...], actions: int | ActionSpace,
                  vector_dim: int = 0) -> Dreamer:
    """Networks for observations of ``obs_shape`` (``(3, 64, 64)`` pixels or ``(D,)``) and ``actions``.

    ``vector_dim``: the width of a vector observation beside the pixels (dict observations), 0 for none.

    ``actions``: an :class:`~dreamer_rl.action_space.ActionSpace` (a discrete one gets a one-hot categorical actor per
    sub-space whatever ``behavior.actor_dist`` says, since that field picks among continuous distributions), or an
    int ``A`` for continuous actions in [-1, 1].
    """
    m, b = recipe.model, recipe.behavior
    space = actions if isinstance(actions, ActionSpace) else ActionSpace("continuous", (int(actions),))
    action_dim = space.dim
    actor_dist = "onehot" if space.discrete else b.actor_dist
    if actor_dist == "onehot" and not space.discrete:
        raise UserError("behavior.actor_dist 'onehot' needs a discrete action space, but the env's actions are "
                        "continuous; use tanh_normal, trunc_normal or bounded_normal")
    wm = WorldModel(obs_shape, action_dim, stoch=m.stoch, deter=m.deter, hidden=m.hidden, units=m.units,
                    cnn_depth=m.cnn_depth, act=m.act, min_std=m.min_std, latent=m.latent, cell=m.cell,
                    classes=m.classes, unimix=m.unimix, norm=m.norm, prior_layers=m.prior_layers, blocks=m.blocks,
                    encoder_layers=m.mlp_layers, decoder_layers=m.mlp_layers, reward_layers=m.reward_layers,
                    pcont=m.pcont, pcont_layers=m.pcont_layers, obs_loss=m.obs_loss, reward_head=m.reward_head,
                    symlog_inputs=m.symlog_inputs, bins=m.bins, conv=m.conv, conv_strided=m.conv_strided,
                    vector_dim=vector_dim, transition=m.transition, mean_only=m.mean_only, ma_ppn=m.ma_ppn,
                    ma_alpha=m.ma_alpha, clock_periods=m.clock_periods, clock_deter=m.clock_deter,
                    clock_stoch=m.clock_stoch, cell_as_prior=m.cell_as_prior,
                    image_bits=m.image_bits, vector_embed=m.vector_embed)
    feat, units = wm.rssm.feat_dim, b.actor_units or m.units
    kw: dict[str, Any] = {}
    if actor_dist == "tanh_normal":
        kw = dict(init_std=b.actor_init_std, min_std=b.actor_min_std)
    elif actor_dist == "trunc_normal":
        kw = dict(min_std=b.actor_min_std)
    elif actor_dist == "bounded_normal":
        kw = dict(min_std=b.actor_min_std, max_std=b.actor_max_std)
    if actor_dist == "onehot":
        kw = dict(unimix=b.actor_unimix, sizes=space.sizes)
    actor = (make_actor(actor_dist, feat, action_dim, units=units, layers=b.actor_layers, act=m.act, norm=m.norm,
                        **kw) if b.action_head else None)
    value = (ScalarHead(feat, kind=b.critic_head, units=units, layers=b.value_layers, act=m.act, norm=m.norm,
                        bins=m.bins) if b.value_head else None)
    if m.init == "dreamer_v3":
        dreamer_v3_init(wm, value, policies=(actor,))
    slow = (SlowCritic(value, b.slow_critic, every=b.slow_critic_every, rate=b.slow_critic_rate)
            if b.slow_critic != "none" and value is not None else None)
    norm = (PercentileReturnNorm(decay=b.return_norm_decay, limit=b.return_norm_limit)
            if b.return_norm == "percentile" and actor is not None else None)
    p = recipe.planner
    planner = None
    if p.kind != "none":
        planner = make_planner(p.kind, wm.rssm, wm.reward, space, horizon=p.horizon, candidates=p.candidates,
                               iterations=p.iterations, top_k=p.top_k, objective=p.objective, gamma=b.gamma,
                               value=value, init_std=p.init_std, summarise=p.summarise_plan_returns,
                               temperature=p.temperature, momentum=p.momentum, min_std=p.min_std,
                               max_std=p.max_std, precision=p.precision)
    explore: dict[str, nn.Module] = {}
    if b.expl_behavior == "plan2explore":
        target_dim = {"stoch": wm.rssm.stoch, "deter": wm.rssm.deter}.get(b.disag_target, feat)
        explore = dict(
            ensemble=DisagreementEnsemble(feat, action_dim if b.disag_action_cond else 0, target_dim,
                                          members=b.disag_models, units=units, act=m.act, log=b.disag_log,
                                          intr_scale=b.expl_intr_scale, extr_scale=b.expl_extr_scale,
                                          target=b.disag_target),
            expl_actor=make_actor(actor_dist, feat, action_dim, units=units, layers=b.actor_layers, act=m.act,
                                  norm=m.norm, **kw),
            expl_value=ScalarHead(feat, kind=b.critic_head, units=units, layers=b.value_layers, act=m.act,
                                  norm=m.norm, bins=m.bins))
        if m.init == "dreamer_v3":
            dreamer_v3_init(explore["expl_value"], policies=(explore["expl_actor"],))
    return Dreamer(wm, actor, value, slow, norm, space, planner, **explore)


def resolve_actor_grad(actor_grad: str, space: ActionSpace) -> str:
    """``auto`` -> DreamerV2's choice: ``reinforce`` for discrete actions, ``dynamics`` for continuous ones."""
    if actor_grad == "auto":
        return "reinforce" if space.discrete else "dynamics"
    return actor_grad


def _linear_ramp(updates: int):
    """PlaNet's ``tools.schedule.linear``: the factor ``min(k / updates, 1)`` of update ``k = 0, 1, ...``."""
    return lambda k: min(k / updates, 1.0)


def _resume_ramp(sched: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Put a fresh ramp at the loaded optimiser's update count (Adam's ``step``) and set its learning rates."""
    steps = [int(s["step"]) for s in sched.optimizer.state.values() if "step" in s]
    sched.last_epoch = max(steps, default=0)
    for group, base, fn in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
        group["lr"] = base * fn(sched.last_epoch)
    sched._last_lr = [group["lr"] for group in sched.optimizer.param_groups]


class Learner(nn.Module):
    """Losses and optimisers of a :class:`Dreamer`; ``update(batch)`` is one full training step.

    :param obs_key: where the batch stores observations (``"pixels"`` or ``"observation"``).
    """

    def __init__(self, agent: Dreamer, recipe: Recipe, obs_key: str = "pixels") -> None:
        super().__init__()
        flush_denormals()
        if recipe.train.keep_freed_memory:
            keep_freed_memory()
        m, b, t = recipe.model, recipe.behavior, recipe.train
        self.agent = agent
        self.world_model_loss = WorldModelLoss(agent.world_model, kl_kind=m.kl, free_nats=m.free_nats,
                                               kl_scale=m.kl_scale, pcont_scale=m.pcont_scale, discount=b.gamma,
                                               kl_balance=m.kl_balance, free_avg=m.free_avg,
                                               dyn_scale=m.dyn_scale, rep_scale=m.rep_scale,
                                               image_scale=m.image_scale, reward_scale=m.reward_scale,
                                               overshooting=m.overshooting, overshooting_scale=m.overshooting_scale,
                                               global_kl_scale=m.global_kl_scale, tap_scale=m.tap_scale,
                                               tap_horizon=m.tap_horizon,
                                               overshooting_reward_scale=m.overshooting_reward_scale,
                                               replay_context=t.replay_context > 0)
        self.world_model_loss.set_keys(observation=obs_key)
        # without an actor (PlaNet) only the world model learns; without a critic (``actor``) the actor maximises
        # imagined returns without a bootstrap
        self.actor_loss = (ActorLoss(agent.world_model, agent.actor, agent.value, horizon=b.horizon, gamma=b.gamma,
                                     lambda_=b.lambda_,
                                     actor_grad=resolve_actor_grad(b.actor_grad, agent.action_space),
                                     grad_mix=b.actor_grad_mix, entropy=b.actor_entropy, slow_value=agent.slow_value,
                                     slow_target=b.slow_critic_target, return_norm=agent.return_norm)
                           if agent.actor is not None else None)
        self.value_loss = (ValueLoss(agent.value, slow_value=agent.slow_value, slow_reg=b.slow_critic_reg)
                           if agent.value is not None and agent.actor is not None else None)
        self.repval_loss = (ReplayValueLoss(agent.value, gamma=b.gamma, lambda_=b.lambda_, scale=b.repval_scale,
                                            slow_value=agent.slow_value, slow_reg=b.slow_critic_reg,
                                            feat_grad=b.repval_grad)
                            if b.repval_scale > 0 and self.value_loss is not None else None)
        self.joint = t.optimizer == "laprop"
        self.slice_start_reset = t.slice_start_reset
        if self.repval_loss is not None and b.repval_grad:
            if not self.joint:  # separate optimisers free the world model's graph before the critic's step
                raise UserError("behavior.repval_grad true needs the joint optimiser (train.optimizer laprop); "
                                "set behavior.repval_grad false with train.optimizer adam")
            self.world_model_loss.feat_graph = True
        if self.joint:
            params = [p for mod in (agent.world_model, agent.actor, agent.value) if mod is not None
                      for p in mod.parameters()]
            self.opt = LaProp(params, lr=t.lr, eps=t.laprop_eps, agc=t.agc, warmup=t.warmup)
        else:
            adam = dict(eps=t.adam_eps)
            self.model_opt = torch.optim.Adam(agent.world_model.parameters(), lr=t.model_lr, **adam)
            self.actor_opt = (torch.optim.Adam(agent.actor.parameters(), lr=t.actor_lr, **adam)
                              if self.actor_loss is not None else None)
            self.value_opt = (torch.optim.Adam(agent.value.parameters(), lr=t.value_lr, **adam)
                              if self.value_loss is not None else None)
        self.grad_clip = t.grad_clip
        #: ``train.precision``: the forward passes' compute dtype (:meth:`autocast`)
        self.precision = t.precision
        self.device = next(agent.world_model.parameters()).device  # the agent's, read again at each update
        if self.precision == "bf16" and not bf16_is_native(self.device):
            log.warning("train.precision bf16: this %s has no native bfloat16 matmuls, so updates will be slower "
                        "than in fp32; use --train.precision fp32", self.device.type)
        #: ``train.compile``: the world model's sequential steps, compiled in place (:mod:`dreamer_rl.compile`)
        self.compiled = compile_steps(agent.world_model.rssm, t.compile)
        self.explorer = (ExplorationLearner(agent, recipe, resolve_actor_grad(b.actor_grad, agent.action_space))
                         if agent.ensemble is not None else None)
        #: the last update's posterior states ``[B, T]`` (detached ``("posterior", "deter"/"stoch")``, no copy)
        self.last_states: TensorDictBase | None = None
        #: PlaNet's learning-rate ramp of each Adam, stepped after its optimiser (``train.lr_ramp``)
        self.lr_schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        if t.lr_ramp > 0 and not self.joint:
            for key, opt in (("model", self.model_opt), ("actor", self.actor_opt), ("value", self.value_opt)):
                if opt is not None:
                    self.lr_schedulers[key] = torch.optim.lr_scheduler.LambdaLR(opt, _linear_ramp(t.lr_ramp))

    def _step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, module: nn.Module) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip, foreach=True)
        opt.step()
        for sched in self.lr_schedulers.values():
            if sched.optimizer is opt:
                sched.step()
        return norm

    def _critic_losses(self, batch: TensorDictBase, states: TensorDictBase, imagined: TensorDictBase
                       ) -> dict[str, torch.Tensor]:
        """The critic's loss on imagined states, plus V3's replay-value loss when enabled."""
        losses = dict(self.value_loss(imagined).items())
        if self.repval_loss is not None:
            keys = self.world_model_loss.tensor_keys
            B, T = batch.shape[:2]
            replay = TensorDict({
                "feat": states.get(keys.posterior_feat),  # the world model's own features, no second concatenation
                "reward": batch.get(keys.reward), "terminated": batch.get(keys.terminated),
                "is_init": batch.get(keys.is_init),
                "bootstrap": imagined["lambda_return"][0].reshape(B, T, 1),  # G_0 of imagination from each state
            }, batch_size=[B, T])
            losses.update(self.repval_loss(replay).items())
        return losses

    def prepare(self, batch: TensorDictBase) -> TensorDictBase:
        """The batch as the losses see it: with ``train.slice_start_reset`` each slice's first row is marked an
        episode start (the model starts it from the zero state and zero previous action); the input is not changed."""
        if not self.slice_start_reset:
            return batch
        key = self.world_model_loss.tensor_keys.is_init
        is_init = batch.get(key).clone()
        is_init[:, 0] = True
        return batch.clone(recurse=False).set(key, is_init)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward passes' precision (``train.precision``): bfloat16 autocast on the agent's device, or nothing.

        Under it, matmuls and convolutions run in bfloat16 on float32 weights (DreamerV3's ``compute_dtype``); the
        networks cast every distribution's parameters back to float32 where they hand them out, and the recurrent
        state stays float32, so the losses, the λ-returns and the optimiser see float32 only. Backward passes run
        outside it, as autocast asks.
        """
        return compute_precision(self.precision, self.device)

    def _forward(self, fn, *args):
        """``fn(*args)`` in the update's precision (:meth:`autocast`)."""
        with self.autocast():
            return fn(*args)

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """One update on stored rows ``[B, T]``; returns ``train/...`` metrics as detached 0-d tensors."""
        self.device = next(self.agent.world_model.parameters()).device
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # reduce-overhead: a new update, earlier graphs' outputs free
        a = self.agent
        batch = self.prepare(batch)
        wm_losses, states = self._forward(self.world_model_loss, batch)
        self.last_states = states  # read by tracking.collect_latents, without a second forward pass
        wm_total = sum(v for k, v in wm_losses.items() if k.startswith("loss_"))
        norms: dict[str, torch.Tensor] = {}
        metrics = {f"train/loss/{k[5:]}": v.detach() for k, v in wm_losses.items() if k.startswith("loss_")}
        metrics["train/kl"] = wm_losses["kl"]
        if self.actor_loss is None:  # the world model alone (PlaNet)
            if self.joint:
                self.opt.zero_grad(set_to_none=True)
                wm_total.backward()
                self.opt.step()
                norms["all"] = self.opt.last_grad_norm
            else:
                norms["model"] = self._step(wm_total, self.model_opt, a.world_model)
            metrics.update({f"train/grad_norm/{k}": v for k, v in norms.items() if v is not None})
            return metrics
        value_losses: dict[str, torch.Tensor] = {}
        if self.joint:
            actor_losses, imagined = self._forward(self.actor_loss, states)
            if self.value_loss is not None:
                value_losses = self._forward(self._critic_losses, batch, states, imagined)
            self.opt.zero_grad(set_to_none=True)
            (wm_total + actor_losses["loss_actor"] + sum(value_losses.values())).backward()
            self.opt.step()
            norms["all"] = self.opt.last_grad_norm
        else:
            norms["model"] = self._step(wm_total, self.model_opt, a.world_model)
            actor_losses, imagined = self._forward(self.actor_loss, states)
            norms["actor"] = self._step(actor_losses["loss_actor"], self.actor_opt, a.actor)
            if self.value_loss is not None:
                value_losses = self._forward(self._critic_losses, batch, states, imagined)
                norms["value"] = self._step(sum(value_losses.values()), self.value_opt, a.value)
        if a.slow_value is not None:
            a.slow_value.update()
        metrics.update({
            "train/loss/actor": actor_losses["loss_actor"].detach(),
            **{f"train/loss/{k[5:]}": v.detach() for k, v in value_losses.items()},
            "train/imagined_return": imagined["lambda_return"].mean(),
            "train/actor_entropy": actor_losses["actor_entropy"], "train/return_scale": actor_losses["return_scale"],
        })
        metrics.update({f"train/grad_norm/{k}": v for k, v in norms.items() if v is not None})
        if self.explorer is not None:
            metrics.update(self.explorer.update(batch, states, self.world_model_loss.tensor_keys,
                                                forward=self._forward))
        return metrics

    def optim_state(self) -> dict[str, Any]:
        explore = {"explore": self.explorer.optim_state()} if self.explorer is not None else {}
        if self.joint:
            return {"all": self.opt.state_dict(), **explore}
        opts = {"model": self.model_opt, "actor": self.actor_opt, "value": self.value_opt}
        state = {k: opt.state_dict() for k, opt in opts.items() if opt is not None}
        if self.lr_schedulers:
            state["lr_schedulers"] = {k: sched.state_dict() for k, sched in self.lr_schedulers.items()}
        return {**state, **explore}

    def load_optim_state(self, state: dict[str, Any]) -> None:
        if self.explorer is not None:
            self.explorer.load_optim_state(state["explore"])
        if self.joint:
            self.opt.load_state_dict(state["all"])
            return
        for key, opt in (("model", self.model_opt), ("actor", self.actor_opt), ("value", self.value_opt)):
            if opt is not None:
                opt.load_state_dict(state[key])
        saved = state.get("lr_schedulers", {})
        for key, sched in self.lr_schedulers.items():
            if key in saved:
                sched.load_state_dict(saved[key])
            else:  # a checkpoint from before the ramp: continue it from the optimiser's update count
                _resume_ramp(sched)
