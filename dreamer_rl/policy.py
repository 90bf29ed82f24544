"""Acting: posterior update + actor + exploration noise, as a TensorDict module carrying the recurrent state.

At every env step the policy reads the observation ``o_t``, ``is_init_t`` and the recurrent state left by the
previous step, filters the posterior and picks an action:

    (h_t, z_t) = obs_step(h_{t-1}, z_{t-1}, a_{t-1}, enc(o_t))     (zeroed first where is_init_t)
    a_t = π(feat_t) + ε,  ε ~ N(0, expl_amount²), clipped to [-1, 1]   (exploring, continuous)
    a_t = ε-greedy(one-hot sample of π(feat_t), expl_amount)           (exploring, discrete)
    a_t = mode π(feat_t)   (tanh of the mean; the one-hot argmax, ε-greedy with eval_noise)   (evaluating)
    a_t ~ π(feat_t)        (evaluating with ``eval_sample``, as DreamerV3's authors evaluate)

With a planner (:mod:`dreamer_rl.planners`, PlaNet's CEM or MPPI) the planner's action takes the place of ``π``'s
sample (exploring: plus the same noise / ε-greedy) and of its mode (evaluating). With ``warm_start`` the planner's
search distribution ``[H, A]`` travels with the recurrent state under ``("recurrent", "plan")`` (flattened to
``[H A]``), shifted one step after each plan and zero at episode starts (:meth:`LatentPlanner.shift`).

``expl_amount`` decays with the env frames of the run (:func:`~dreamer_rl.action_space.explore_amount`; the
collecting loop sets :attr:`DreamerPolicy.frames`). Action kinds come from the agent's
:class:`~dreamer_rl.action_space.ActionSpace`: uniform random actions are uniform in [-1, 1] or a uniform one-hot per
sub-space, and ε-greedy replaces an env's whole action with such a random one.

The recurrent state travels with the TensorDict under ``("recurrent", "deter" | "stoch" | "action")``: read at the
root, written to ``("next", "recurrent", ...)`` so TorchRL's ``step_mdp`` carries it to the next step, and primed
with zeros at reset by :meth:`DreamerPolicy.primer` (a ``TensorDictPrimer``); :func:`with_recurrent_state` adds it
to an env that lacks it. Without it the env's ``step_mdp`` drops the state between steps and the agent would act
from a single observation, so a missing state anywhere but at an episode start is an error. Modes: ``"random"`` (prefill: uniform
actions, the state is still filtered), ``"explore"`` (collection), ``"eval"``.
"""

from __future__ import annotations

from typing import Literal

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Unbounded
from torchrl.envs import EnvBase, TensorDictPrimer, TransformedEnv

from dreamer_rl.action_space import explore_amount
from dreamer_rl.agent import Dreamer

Mode = Literal["random", "explore", "eval"]
RECURRENT_KEYS = (("recurrent", "deter"), ("recurrent", "stoch"), ("recurrent", "action"))
PLAN_KEY = ("recurrent", "plan")


class DreamerPolicy(TensorDictModuleBase):
    """TensorDict acting policy over a :class:`~dreamer_rl.agent.Dreamer` (see the module docstring)."""

    def __init__(self, agent: Dreamer, *, obs_key: str = "pixels", expl_amount: float = 0.3,
                 expl: Literal["additive_gaussian", "epsilon_greedy", "random", "none"] = "additive_gaussian",
                 mode: Mode = "explore", expl_decay: float = 0.0, expl_min: float = 0.0,
                 eval_noise: float = 0.0, eval_sample: bool = False, warm_start: bool = False) -> None:
        super().__init__()
        self.agent = agent
        self.obs_key, self.expl_amount, self.expl = obs_key, expl_amount, expl
        self.expl_decay, self.expl_min, self.eval_noise = expl_decay, expl_min, eval_noise
        self.eval_sample = eval_sample
        self.mode: Mode = mode
        #: env frames collected so far (drives the exploration schedule)
        self.frames = 0
        extra = ["observation"] if agent.world_model.vector_dim and obs_key != "observation" else []
        self.planner, self.warm_start = agent.planner, warm_start and agent.planner is not None
        self.recurrent_keys = RECURRENT_KEYS + ((PLAN_KEY,) if self.warm_start else ())
        self.in_keys = [obs_key, *extra, "is_init", *self.recurrent_keys]
        self.out_keys = ["action", *[("next", *k) for k in self.recurrent_keys]]

    def primer(self) -> TensorDictPrimer:
        """Env transform adding zero recurrent state at reset (shapes ``[D]``, ``[S]``, ``[A]``)."""
        rssm = self.agent.world_model.rssm
        specs = {
            ("recurrent", "deter"): Unbounded(shape=(rssm.deter,)),
            ("recurrent", "stoch"): Unbounded(shape=(rssm.stoch,)),
            ("recurrent", "action"): Unbounded(shape=(rssm.action_dim,)),
        }
        if self.warm_start:
            specs[PLAN_KEY] = Unbounded(shape=(self.planner.horizon * rssm.action_dim,))
        return TensorDictPrimer(specs, default_value=0.0, reset_key="_reset", expand_specs=True)

    @torch.no_grad()
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:  # noqa: D102
        wm = self.agent.world_model
        rssm = wm.rssm
        obs = tensordict.get(self.obs_key)
        batch = obs.shape[: obs.dim() - len(wm.obs_shape)]
        device = next(self.agent.parameters()).device

        is_init = tensordict.get("is_init", torch.zeros(*batch, 1, dtype=torch.bool)).to(device)

        def recurrent(key: tuple[str, str], width: int) -> torch.Tensor:
            value = tensordict.get(key, None)
            if value is not None:
                return value.to(device)
            if not bool(is_init.all()):
                raise ValueError("DreamerPolicy: the recurrent state is missing mid-episode, so the env does not "
                                 "carry it between steps; add policy.primer() to the env "
                                 "(dreamer_rl.policy.with_recurrent_state(env, policy))")
            return torch.zeros(*batch, width, device=device)

        deter = recurrent(RECURRENT_KEYS[0], rssm.deter)
        stoch = recurrent(RECURRENT_KEYS[1], rssm.stoch)
        prev_action = recurrent(RECURRENT_KEYS[2], rssm.action_dim)
        vector = tensordict.get("observation").to(device) if wm.vector_dim else None
        embed = wm.embed(obs.to(device), vector=vector)
        deter, stoch = rssm.obs_step(deter, stoch, prev_action, embed, is_init)
        feat = rssm.feat(stoch, deter)
        plan = None
        if self.warm_start:
            plan = recurrent(PLAN_KEY, self.planner.horizon * rssm.action_dim)
            plan = plan.reshape(-1, self.planner.horizon, rssm.action_dim)
            plan = self.planner.shift(plan, is_init.reshape(-1, 1))
        action, plan = self._act(feat, batch, device, deter, stoch, plan)
        out_device = obs.device
        tensordict.set("action", action.to(out_device))
        if self.warm_start:
            tensordict.set(("next", *PLAN_KEY), plan.reshape(*batch, -1).to(out_device))
        tensordict.set(("next", "recurrent", "deter"), deter.to(out_device))
        tensordict.set(("next", "recurrent", "stoch"), stoch.to(out_device))
        tensordict.set(("next", "recurrent", "action"), action.to(out_device))
        return tensordict

    def exploration(self) -> float:
        """The exploration amount now: ``expl_amount`` decayed over :attr:`frames`."""
        return explore_amount(self.expl_amount, self.frames, self.expl_decay, self.expl_min)

    def _plan(self, deter: torch.Tensor, stoch: torch.Tensor, plan: torch.Tensor | None, batch: torch.Size
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The planner's action ``[*batch, A]`` and its final plan ``[N, H, A]`` (batch dims flattened to ``N``)."""
        flat_deter, flat_stoch = deter.reshape(-1, deter.shape[-1]), stoch.reshape(-1, stoch.shape[-1])
        action, plan = self.planner(flat_deter, flat_stoch, plan)
        return action.reshape(*batch, -1), plan

    def _act(self, feat: torch.Tensor, batch: torch.Size, device: torch.device, deter: torch.Tensor,
             stoch: torch.Tensor, plan: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(action [*batch, A], the planner's final plan or the warm start as it came)``."""
        space = self.agent.action_space
        if self.mode == "random" or (self.mode == "explore" and self.expl == "random"):
            return space.random(*batch, device=device), plan
        planning = self.planner is not None
        if self.mode == "eval":
            if planning:
                action, plan = self._plan(deter, stoch, plan, batch)
            else:
                action = self.agent.actor(feat, sample=self.eval_sample)
            if space.discrete:
                return space.epsilon_greedy(action, self.eval_noise), plan
            return action.clamp(-1, 1), plan  # a sample may leave the range (V3's bounded normal); a mode does not
        if planning:
            action, plan = self._plan(deter, stoch, plan, batch)
        else:  # Plan2Explore collects with its exploration actor
            actor = self.agent.expl_actor if self.agent.expl_actor is not None else self.agent.actor
            action = actor(feat, sample=True)
        amount = self.exploration()
        if self.expl == "epsilon_greedy" or (space.discrete and self.expl == "additive_gaussian"):
            action = space.epsilon_greedy(action, amount)
        elif self.expl == "additive_gaussian":
            action = action + amount * torch.randn_like(action)
        # the env's range: V3's bounded-normal samples are unbounded (its authors clip in the env wrapper)
        return (action if space.discrete else action.clamp(-1, 1)), plan


def with_recurrent_state(env: EnvBase, policy: DreamerPolicy) -> EnvBase:
    """``env`` carrying ``policy``'s recurrent state between steps: its primer appended unless already there."""
    if RECURRENT_KEYS[0] in env.observation_spec.keys(True, True):
        return env
    if isinstance(env, TransformedEnv):
        env.append_transform(policy.primer())
        return env
    return TransformedEnv(env, policy.primer())
