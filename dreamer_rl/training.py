"""The training loop: one plain function driven by clocks, and ``train(recipe)`` around it.

Clocks (all in env frames, i.e. environment steps after action repeat):

- collect: the TorchRL collector yields ``train_every / action_repeat`` agent steps at a time;
- prefill: random actions (or the untrained agent, ``train.prefill_policy agent``) until ``train.prefill`` frames
  are stored, then ``train.pretrain`` updates;
- train ratio: after each batch, run the updates owed so that updates = ``train_ratio`` x frames since prefill;
- log / eval / save: every ``run.log_every`` / ``run.eval_every`` / ``run.save_every`` frames.

A run lives in ``<runs_dir>/<run name>/``: ``recipe.json``, ``checkpoints/latest.pt`` and ``replay/`` (the memmap
storage); with ``tracking.collect_latents`` and tracking off, also ``latents/`` (see :meth:`Run._save_latents`).
Starting a run whose folder holds a checkpoint resumes it: model, optimisers, counters, RNG, replay buffer and the
same MLflow run.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.envs import EnvBase
from tqdm import tqdm

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.agent import Dreamer, Learner, build_dreamer
from dreamer_rl.checkpoint import (load_agent_weights, load_checkpoint, rng_state, save_checkpoint, seed_everything,
                                   set_rng_state)
from dreamer_rl.config import Recipe, known_fields
from dreamer_rl.errors import UserError
from dreamer_rl.policy import DreamerPolicy, with_recurrent_state
from dreamer_rl.provenance import provenance_tags
from dreamer_rl.replay import (StepRowWriter, make_replay_buffer, replay_state, restore_replay, sample_sequences,
                               write_context)
from dreamer_rl.replay_online import OnlineQueue
from dreamer_rl.tracking import Tracker
from dreamer_rl.video import openloop_frames, to_hwc_uint8

log = logging.getLogger(__name__)
EnvFn = Callable[[Recipe, int], EnvBase]
#: The true physical state a ``tracking.collect_latents`` run stores beside each observation (DMC's qpos, qvel).
PHYSICS_KEYS = ("position", "velocity")
# Fields a resumed run may change: the budget, the clocks and where it runs.
#: recipe fields a resumed run may change: its budget, its clocks, and where and in what precision it computes
MUTABLE_FIELDS = frozenset({f"run.{k}" for k in ("steps", "log_every", "eval_every", "save_every", "device", "threads")}
                           | {"train.precision", "train.compile", "planner.precision"})
MUTABLE_RUN_FIELDS = frozenset(k[4:] for k in MUTABLE_FIELDS if k.startswith("run."))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device is 'cuda' but no CUDA device is available; use --run.device cpu or auto")
    return torch.device(name)


def default_env_fn(recipe: Recipe, seed: int) -> EnvBase:
    """The registered env of ``recipe.env`` seeded with ``seed``."""
    from envs import make_env

    e = recipe.env
    options = {}
    if e.task.startswith("atari_"):
        options = dict(sticky_actions=e.sticky_actions, noop_max=e.noop_max, grayscale=e.grayscale,
                       full_action_space=e.full_action_space, life_loss=e.life_loss)
    elif e.task.startswith("dmc_") and recipe.tracking.collect_latents:
        options = dict(physics_state=True)
    return make_env(e.task, from_pixels=e.from_pixels, action_repeat=e.action_repeat, image_size=e.image_size,
                    max_episode_frames=e.max_episode_frames, seed=seed, **options)


def action_repeat_of(env: EnvBase, recipe: Recipe) -> int:
    """Frames per agent step: the env's own ``action_repeat`` attribute when it has one, else the recipe's int."""
    repeat = getattr(env, "action_repeat", None)
    if repeat is None and hasattr(env, "base_env"):
        repeat = getattr(env.base_env, "action_repeat", None)
    if repeat is None:
        repeat = recipe.env.action_repeat if isinstance(recipe.env.action_repeat, int) else 1
    return int(repeat)


@dataclass
class Counters:
    """Progress of a run; frames are env frames (after action repeat)."""

    frames: int = 0
    updates: int = 0
    episodes: int = 0
    pretrained: bool = False
    last_log: int = 0
    last_eval: int = 0
    last_save: int = 0
    last_return: float = float("nan")
    episode_return: float = 0.0
    env_returns: list[float] = field(default_factory=list)  # running return of each parallel env's episode
    evals: list[tuple[int, float]] = field(default_factory=list)  # (frames, mean eval return)
    # (frames at its end, return, length in frames) of each episode finished since the last metric log
    unlogged_episodes: list[tuple[int, float, int]] = field(default_factory=list)
    env_lengths: list[int] = field(default_factory=list)  # running length in frames of each env's episode


def evaluate(env: EnvBase, policy: DreamerPolicy, episodes: int, max_steps: int) -> tuple[list[float], np.ndarray | None]:
    """Run ``episodes`` greedy episodes; returns their returns and the first episode's frames ``[T, H, W, 3]``.

    The env gets the policy's primer if it lacks it, so the recurrent state is carried from step to step.
    """
    env = with_recurrent_state(env, policy)
    mode, policy.mode = policy.mode, "eval"
    returns, video = [], None
    try:
        for i in range(episodes):
            td = env.rollout(max_steps, policy, break_when_any_done=True)
            returns.append(float(td.get(("next", "reward")).sum()))
            if i == 0 and "pixels" in td.keys():
                first = td.get("pixels")[:1]
                video = to_hwc_uint8(torch.cat([first, td.get(("next", "pixels"))], 0)).numpy()
    finally:
        policy.mode = mode
    return returns, video


class Run:
    """Everything of one training run, built from a recipe; :meth:`loop` trains, :meth:`save` checkpoints."""

    def __init__(self, recipe: Recipe, env_fn: EnvFn | None = None) -> None:
        self.recipe = recipe
        r = recipe.run
        self.dir = Path(r.runs_dir) / recipe.run_name
        self.ckpt_path = self.dir / "checkpoints" / "latest.pt"
        self.env_fn = env_fn or default_env_fn
        self.device = resolve_device(r.device)
        if r.threads:
            torch.set_num_threads(r.threads)
        resume_state = None
        if self.ckpt_path.exists():
            resume_state = load_checkpoint(self.ckpt_path, map_location=self.device)
            self._check_same_recipe(resume_state["recipe"])
        seed_everything(r.seed)
        self.counters = Counters()
        if resume_state is not None:
            known = set(Counters.__dataclass_fields__)
            self.counters = Counters(**{k: v for k, v in resume_state["counters"].items() if k in known})
            self.counters.episode_return = 0.0  # the env starts a new episode
            self.counters.env_returns, self.counters.env_lengths = [], []
            self.counters.unlogged_episodes = []  # frames after the checkpoint are redone, their episodes too
        # env and networks first: a bad env, action space or size fails here, before anything is written
        self.env = self._make_train_env(r.seed + 1000 * self.counters.episodes)
        try:
            spec_keys = self.env.observation_spec.keys()
            self.obs_key = "pixels" if "pixels" in spec_keys else "observation"
            # a dict observation: pixels and a vector beside them, both encoded
            self.obs_keys = ("pixels", "observation") if {"pixels", "observation"} <= set(spec_keys) else \
                (self.obs_key,)
            vector_dim = (int(self.env.observation_spec["observation"].shape[-1]) if len(self.obs_keys) == 2
                          else 0)
            if recipe.env.num_envs == 1:
                self.repeat = action_repeat_of(self.env, recipe)
            obs_shape = tuple(self.env.observation_spec[self.obs_key].shape[self.env.batch_dims:])
            self.action_space = ActionSpace.from_spec(self.env.action_spec_unbatched, where=recipe.env.task)
            if recipe.tracking.collect_latents and not set(PHYSICS_KEYS) <= set(spec_keys):
                raise UserError(f"tracking.collect_latents needs the true physics state (position, velocity), which "
                                f"only dmc_ tasks emit; {recipe.env.task} has none: use a dmc_ task or "
                                f"--tracking.collect_latents false")
            self.agent: Dreamer = build_dreamer(recipe, obs_shape, self.action_space, vector_dim).to(self.device)
        except BaseException:
            self.env.close()
            raise
        self.learner = Learner(self.agent, recipe, obs_key=self.obs_key)
        self.policy = self._policy("random" if self.recipe.train.prefill_policy == "random" else "explore")
        self.env = with_recurrent_state(self.env, self.policy)
        self.tracker: Tracker | None = None
        if recipe.tracking.enabled:
            # ``group``: the run name without its seed, shared by the runs of one ``--run.seed 0 1 2`` sweep
            group = re.sub(rf"-s{r.seed}$", "", recipe.run_name)
            tags = {"algo": r.algo, "task": recipe.env.task, "seed": str(r.seed), "group": group,
                    **provenance_tags()}
            self.tracker = Tracker(experiment=recipe.tracking.experiment, run_name=recipe.run_name, tags=tags)
            self.tracker.start()
            log.info("%s", self.tracker.ui_hint())
            params = recipe.flat()
            if resume_state is not None:  # budget, clocks and precision may change between sessions of one run
                params = {k: v for k, v in params.items() if k not in MUTABLE_FIELDS}
            self.tracker.log_params(params)
            if resume_state is None:
                self.tracker.log_text(recipe.model_dump_json(indent=2), "recipe.json")
        self.dir.mkdir(parents=True, exist_ok=True)
        stale = self.dir / "replay"
        if resume_state is None and stale.exists():
            # killed before its first checkpoint: without the checkpoint's cursor the rows cannot be trusted
            log.warning("%s has replay files but no checkpoint; starting the run over", self.dir)
            shutil.rmtree(stale)
        (self.dir / "recipe.json").write_text(recipe.model_dump_json(indent=2))
        t = recipe.train
        self.buffer = make_replay_buffer(capacity=t.replay_capacity, seq_len=t.seq_len, batch_size=t.batch_size,
                                         scratch_dir=self.dir / "replay", fragmented=recipe.env.num_envs > 1,
                                         slices=t.replay_slices)
        self.writer = StepRowWriter(obs_keys=self.obs_keys, reward_clip=recipe.env.reward_clip,
                                    streams=t.replay_slices == "stream",
                                    extra_keys=PHYSICS_KEYS if recipe.tracking.collect_latents else (),
                                    context=t.replay_context > 0)
        self.online = OnlineQueue(t.seq_len) if t.replay_online else None  # in memory: empty after a resume
        if resume_state is not None:
            load_agent_weights(self.agent, resume_state["agent"], f"the checkpoint of run {self.dir}")
            self.learner.load_optim_state(resume_state["optim"])
            restore_replay(self.buffer, resume_state["replay"])
            self.writer.load_state_dict(resume_state["writer"])
            set_rng_state(resume_state["rng"])
            log.info("resumed %s at %d frames, %d updates", recipe.run_name, self.counters.frames,
                     self.counters.updates)
        self.resumed = resume_state is not None

    def _make_train_env(self, seed: int) -> EnvBase:
        """The collecting env: ``env_fn(recipe, seed)``, or ``env.num_envs`` of them in TorchRL worker processes.

        Worker ``i`` is built with seed ``seed + 1_000_003 · i`` (distinct from every other worker's and from the
        evaluation seeds), so each env of a parallel run sees its own episodes.
        """
        n = self.recipe.env.num_envs
        if n == 1:
            return self.env_fn(self.recipe, seed)
        if self.env_fn is not default_env_fn and not getattr(self.env_fn, "picklable_factory", False):
            raise UserError("env.num_envs > 1 needs envs that worker processes can build: pass a registered task "
                            "name or a callable building the env, not an env instance")
        from torchrl.envs import ParallelEnv

        probe = self.env_fn(self.recipe, seed)  # the workers' envs answer no attribute questions
        self.repeat = action_repeat_of(probe, self.recipe)
        probe.close()
        makers = [functools.partial(self.env_fn, self.recipe, seed + 1_000_003 * i) for i in range(n)]
        return ParallelEnv(n, makers, mp_start_method="spawn")

    def _policy(self, mode: str) -> DreamerPolicy:
        b = self.recipe.behavior
        return DreamerPolicy(self.agent, obs_key=self.obs_key, expl=b.expl, expl_amount=b.expl_amount,
                             expl_decay=b.expl_decay, expl_min=b.expl_min, eval_noise=b.eval_noise, mode=mode,
                             eval_sample=b.eval_sample, warm_start=self.recipe.planner.warm_start)

    def _plan_returns(self, step: int) -> dict[str, float]:
        """With ``planner.summarise_plan_returns``: the candidates' returns since the last log (metrics) and a
        histogram of the last plan's (``plan/returns_<frames>.json``: bin edges and counts per iteration kind)."""
        planner = self.agent.planner
        if planner is None or not planner.summarise:
            return {}
        summary = planner.plan_summary()
        if self.tracker and planner.last_returns is not None:
            counts, edges = np.histogram(planner.last_returns.cpu().numpy().ravel(), bins=30)
            self.tracker.log_text(json.dumps({"frames": step, "edges": edges.tolist(), "counts": counts.tolist()}),
                                  f"plan/returns_{step:09d}.json")
        return summary

    def _check_same_recipe(self, stored: dict[str, Any]) -> None:
        """A resumed run must use the same recipe (the frame budget and clocks may change).

        The stored recipe is read as this version reads recipes: a field added since takes its default (which keeps
        the old behaviour), a field removed since is ignored, so a library upgrade alone does not strand a run.
        """
        try:
            old = Recipe.model_validate(known_fields(stored)).model_dump(mode="json")
        except ValueError:
            old = stored
        new = self.recipe.model_dump(mode="json")
        diffs = [f"{s}.{k}" for s, sec in new.items() for k, v in sec.items()
                 if f"{s}.{k}" not in MUTABLE_FIELDS and old.get(s, {}).get(k) != v]
        if diffs:
            raise UserError(f"run '{self.recipe.run_name}' exists in {self.dir} with a different recipe "
                            f"({', '.join(diffs[:5])}); pick another --run.name to start a new run")

    # ------------------------------------------------------------------ clocks
    def save(self) -> None:
        """Atomic checkpoint of everything needed to resume; also logged to MLflow."""
        c = self.counters
        c.last_save = c.frames
        save_checkpoint(self.ckpt_path, {
            "recipe": self.recipe.model_dump(mode="json"), "agent": self.agent.state_dict(),
            "optim": self.learner.optim_state(), "counters": asdict(c), "rng": rng_state(),
            "replay": replay_state(self.buffer), "writer": self.writer.state_dict(),
            "obs_key": self.obs_key, "action_repeat": self.repeat,
            "mlflow_run_id": self.tracker.run_id if self.tracker else None,
        })
        if self.tracker:
            self.tracker.log_artifact(self.ckpt_path, "checkpoints")

    def _record_episodes(self, batch: TensorDictBase, frames_before: int) -> list[float]:
        """Returns of the episodes that ended in ``batch`` (``[T]`` or ``[E, T]``), env by env, in order.

        Each is also queued in ``counters.unlogged_episodes`` with the frame count at its end: the batch's step
        ``t`` (0-based) of ``E`` envs ends at ``frames_before + (t + 1) · E · action_repeat`` frames.
        """
        c = self.counters
        rewards = batch.get(("next", "reward")).reshape(*batch.shape).reshape(-1, batch.shape[-1]).tolist()
        dones = batch.get(("next", "done")).reshape(*batch.shape).reshape(-1, batch.shape[-1]).tolist()
        n_envs = len(rewards)
        if len(c.env_returns) != n_envs:
            c.env_returns = [c.episode_return] + [0.0] * (n_envs - 1)
        if len(c.env_lengths) != n_envs:
            c.env_lengths = [0] * n_envs
        finished = []
        for env, (env_rewards, env_dones) in enumerate(zip(rewards, dones)):
            for t, (reward, done) in enumerate(zip(env_rewards, env_dones)):
                c.env_returns[env] += reward
                c.env_lengths[env] += self.repeat
                if done:
                    finished.append(c.env_returns[env])
                    c.unlogged_episodes.append((frames_before + (t + 1) * n_envs * self.repeat,
                                                c.env_returns[env], c.env_lengths[env]))
                    c.episodes += 1
                    c.last_return = c.env_returns[env]
                    c.env_returns[env], c.env_lengths[env] = 0.0, 0
        c.episode_return = c.env_returns[0]
        return finished

    def _log_episodes(self) -> None:
        """Every training episode finished since the last call: ``train/return`` and ``train/length`` (env frames)
        at the frame count where it ended."""
        c = self.counters
        if self.tracker and c.unlogged_episodes:
            ends = sorted(c.unlogged_episodes)
            self.tracker.log_series("train/return", [(f, ret) for f, ret, _ in ends])
            self.tracker.log_series("train/length", [(f, length) for f, _, length in ends])
        c.unlogged_episodes = []

    def _train(self, updates: int) -> dict[str, float]:
        sums: dict[str, torch.Tensor] = {}
        t = self.recipe.train
        for _ in range(updates):
            batch = sample_sequences(self.buffer, t.batch_size, t.seq_len, self.device)
            if self.online is not None:
                batch = self.online.fill(self.buffer, batch)
            for k, v in self.learner.update(batch).items():
                sums[k] = sums.get(k, 0) + v
            if t.replay_context:  # the states just filtered become the context of the rows after them
                states, keys = self.learner.last_states, self.learner.world_model_loss.tensor_keys
                write_context(self.buffer, batch.get("index"), states.get(keys.posterior_deter),
                              states.get(keys.posterior_stoch))
            tr = self.recipe.tracking
            if tr.collect_latents and self.counters.updates % tr.collect_latents_every == 0:
                self._save_latents(batch, self.counters.updates)
            self.counters.updates += 1
        return {k: float(v) / updates for k, v in sums.items()}  # one host sync per burst

    def _save_latents(self, batch: TensorDictBase, update: int) -> None:
        """``tracking.collect_latents``: update ``update``'s batch as ``latents/<update:09d>.npz`` (compressed).

        Keys (float32, one row per stored row of the ``[B, T]`` batch, batch-major): ``sample`` ``[B·T, S]`` (the
        posterior sample z of the world-model loss, zero steps of open-loop prediction), ``belief`` ``[B·T, D]``
        (the deterministic state h), ``position`` ``[B·T, P]`` and ``velocity`` ``[B·T, V]`` (the physics' qpos and
        qvel when that row's observation was taken). Logged to the MLflow run under ``latents/``, or written to
        ``<run dir>/latents/`` when tracking is off. Reads the states the update computed (no second forward pass);
        the copy to the host is the only sync.
        """
        states, keys = self.learner.last_states, self.learner.world_model_loss.tensor_keys
        rows = batch.shape[0] * batch.shape[1]
        arrays = {"sample": states.get(keys.posterior_stoch), "belief": states.get(keys.posterior_deter),
                  **{k: batch.get(k) for k in PHYSICS_KEYS}}
        arrays = {k: v.reshape(rows, -1).to("cpu", torch.float32).numpy() for k, v in arrays.items()}
        name = f"{update:09d}.npz"
        if self.tracker is None:
            folder = self.dir / "latents"
            folder.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(folder / name, **arrays)
            return
        with tempfile.TemporaryDirectory(prefix="dreamer_rl_latents_") as tmp:
            np.savez_compressed(Path(tmp) / name, **arrays)
            self.tracker.log_artifact(Path(tmp) / name, "latents")

    def _eval_and_log(self, step: int, fps: float = float("nan")) -> list[float]:
        """Evaluate, log ``eval/*`` at ``step`` and print one summary line: frames, return, frames/s (this
        session's collection and training together) and the time left at that speed."""
        r, max_steps = self.recipe, self.recipe.env.max_episode_frames // self.repeat
        eval_env = self.env_fn(r, r.run.seed + 10_000 + step)
        eval_policy = self._policy("eval")
        returns, video = evaluate(eval_env, eval_policy, r.run.eval_episodes, max_steps)
        eval_env.close()
        self.counters.evals.append((step, float(np.mean(returns))))
        log.info("%s", eval_summary(step, r.run.steps, float(np.mean(returns)), len(returns), fps))
        if self.tracker:
            figures = {"eval/return": float(np.mean(returns))}
            if r.env.task.startswith("atari_"):  # as the Atari papers report: (score - random) / (human - random)
                from envs.atari import human_normalized

                figures["eval/human_normalized"] = human_normalized(r.env.task, figures["eval/return"])
            self.tracker.log_metrics(figures, step)
            if r.tracking.video and video is not None:
                self.tracker.log_video("eval/episode", video, step)
            if r.tracking.video and self.obs_key == "pixels" and len(self.buffer) > 0:
                batch = sample_sequences(self.buffer, min(6, r.train.batch_size), r.train.seq_len, self.device)
                frames = openloop_frames(self.agent.world_model, batch, obs_key=self.obs_key,
                                         context=r.tracking.openloop_context)
                self.tracker.log_video("eval/openloop", frames.cpu().numpy(), step)
        return returns

    def loop(self) -> dict[str, float]:
        """Collect, train, log, evaluate and save until ``run.steps`` frames; returns the last figures."""
        r, t, c = self.recipe.run, self.recipe.train, self.counters
        n_envs = self.recipe.env.num_envs  # the collector counts steps of all envs together
        steps_per_batch = n_envs * max(1, t.train_every // (self.repeat * n_envs))
        self.policy.frames = c.frames
        collector = Collector(self.env, self.policy, frames_per_batch=steps_per_batch, total_frames=-1)
        if c.frames >= t.prefill:
            self.policy.mode = "explore"
        # the bar is for terminals; a log file gets the one-line eval summaries instead of carriage returns
        bar = tqdm(total=r.steps, initial=min(c.frames, r.steps), unit="frame", dynamic_ncols=True,
                   desc=self.recipe.run_name, smoothing=0.1, disable=not sys.stderr.isatty())
        start, start_frames = time.perf_counter(), c.frames
        metrics: dict[str, float] = {}
        eval_returns: list[float] = []
        try:
            for batch in collector:
                if c.frames >= r.steps:
                    break
                rows = self.writer(batch)
                slots = self.buffer.extend(rows)
                if self.online is not None:
                    self.online.note(rows, slots)
                new_frames = batch.numel() * self.repeat
                self._record_episodes(batch, c.frames)
                c.frames += new_frames
                self.policy.frames = c.frames
                if c.frames >= t.prefill:
                    self.policy.mode = "explore"
                    if not c.pretrained:
                        c.pretrained = True
                        metrics = self._train(t.pretrain) if t.pretrain else metrics
                    owed = int((c.frames - t.prefill) * t.train_ratio) - (c.updates - t.pretrain)
                    if owed > 0:
                        metrics = self._train(owed)
                fps = (c.frames - start_frames) / max(time.perf_counter() - start, 1e-9)
                bar.update(min(new_frames, r.steps - bar.n))
                bar.set_postfix(fps=f"{fps:.0f}", ret=f"{c.last_return:.1f}", upd=c.updates, refresh=False)
                if self.tracker and (c.frames - c.last_log >= r.log_every or c.frames >= r.steps):
                    c.last_log = c.frames
                    out = dict(metrics)
                    out.update({"train/fps": fps, "train/updates": c.updates, "train/episodes": c.episodes})
                    out.update(self._plan_returns(c.frames))
                    self._log_episodes()
                    self.tracker.log_metrics(out, c.frames)
                if c.frames - c.last_eval >= r.eval_every or c.frames >= r.steps:
                    c.last_eval = c.frames
                    self._log_episodes()
                    eval_returns = self._eval_and_log(c.frames, fps)
                if c.frames - c.last_save >= r.save_every or c.frames >= r.steps:
                    self._log_episodes()  # a checkpoint never holds episodes the tracker has not seen
                    self.save()
                if c.frames >= r.steps:
                    break
        finally:
            bar.close()
            collector.shutdown()
        return {"frames": c.frames, "updates": c.updates, "episodes": c.episodes,
                "train_return": c.last_return, "eval_return": float(np.mean(eval_returns)) if eval_returns else
                float("nan")}

    def close(self, status: str = "FINISHED") -> None:
        if self.tracker:
            self.tracker.end(status)
        if not getattr(self.env, "is_closed", False):  # the collector's shutdown closes worker envs itself
            self.env.close(raise_if_closed=False)


def eval_summary(frames: int, budget: int, mean_return: float, episodes: int, fps: float) -> str:
    """``eval at 10000/100000 frames: return 204.7 over 1 episodes, 6.2 frames/s, ETA 4:01:51`` (ETA: the frames
    left at this session's speed; ``?`` before the speed is known)."""
    eta = "?"
    if math.isfinite(fps) and fps > 0:
        left = int(max(budget - frames, 0) / fps)
        eta = f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"
    return (f"eval at {frames}/{budget} frames: return {mean_return:.1f} over {episodes} episodes, "
            f"{fps:.1f} frames/s, ETA {eta}")


def train(env: Any, recipe: Recipe | EnvFn | None = None, env_fn: EnvFn | None = None) -> dict[str, float]:
    """Train (or resume) a run until ``recipe.run.steps`` env frames; returns the CLI's summary.

    ``train(env, recipe)``: ``env`` is a ``gymnasium.Env``, a TorchRL ``EnvBase``, a registered task name
    (``"gym_CartPole-v1"``, ``"atari_pong"``) or a callable building one; evaluation runs on a fresh instance of
    the same env (:mod:`dreamer_rl.env_source`). The run is tracked in MLflow and checkpointed as on the command
    line; its task name (run name, tags) is the given name or ``gym_<spec id>`` when there is one.
    ``train(recipe)`` / ``train(recipe, env_fn)``: the registered env of ``recipe.env.task``, or
    ``env_fn(recipe, seed) -> EnvBase``.

    Returns ``{"frames", "updates", "episodes", "train_return", "eval_return"}``, plus ``"registered_model"``
    (``models:/<name>/<version>``) with ``tracking.register``.

    >>> import gymnasium
    >>> from recipes import make_recipe
    >>> train(gymnasium.make("CartPole-v1"), make_recipe("dreamer_v3", "debug", overrides={"run.steps": 600}))
    ... # doctest: +SKIP
    """
    if isinstance(env, Recipe):
        if recipe is not None and not callable(recipe):
            raise UserError("train(recipe, env_fn): the second argument must be an env_fn(recipe, seed)")
        recipe, env_fn = env, env_fn or recipe  # type: ignore[assignment]
    else:
        if not isinstance(recipe, Recipe):
            raise UserError(f"train(env, recipe) needs a Recipe as its second argument (recipes.make_recipe(...)), "
                            f"got {type(recipe).__name__}")
        from dreamer_rl.env_source import env_source, task_name_of

        name = task_name_of(env)
        if name is not None and name != recipe.env.task:
            recipe = recipe.model_copy(update={"env": recipe.env.model_copy(update={"task": name})})
        env_fn = env_source(env)
    run = Run(recipe, env_fn)  # type: ignore[arg-type]
    status = "FAILED"
    try:
        summary: dict[str, Any] = run.loop()
        if recipe.tracking.register and run.tracker is not None:
            from dreamer_rl.registry import register_agent, slim_state

            name = recipe.tracking.registered_name or f"{recipe.run.algo}-{recipe.env.task}"
            summary["registered_model"] = register_agent(run.tracker, slim_state(run), name)
            log.info("registered the agent as %s", summary["registered_model"])
        status = "FINISHED"
        return summary
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        run.close(status)


def summary_json(summary: dict[str, float]) -> str:
    return json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()})
