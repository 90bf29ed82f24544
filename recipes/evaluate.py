"""Evaluate a saved agent: ``python -m recipes.dmc --eval --checkpoint PATH [--video OUT.mp4]`` (any recipe module).

Rebuilds the env and the agent from the recipe stored in the checkpoint, runs greedy episodes (actor mode, no
exploration noise), prints ``eval_return=<mean>`` and writes the first episode's video.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.agent import build_dreamer
from dreamer_rl.checkpoint import load_agent_weights, load_checkpoint, seed_everything
from dreamer_rl.config import Recipe
from dreamer_rl.policy import DreamerPolicy
from dreamer_rl.training import default_env_fn, evaluate, resolve_device
from dreamer_rl.video import write_video

log = logging.getLogger(__name__)


def evaluate_checkpoint(path: Path, video: str | None = None, episodes: int | None = None,
                        device: str = "auto", eval_sample: bool | None = None, eval_noise: float | None = None
                        ) -> float:
    """Evaluate the agent in checkpoint ``path``; returns the mean return.

    ``episodes`` defaults to the stored recipe's ``run.eval_episodes``; ``eval_sample`` (sample the actor instead of
    its mode) and ``eval_noise`` (test-time ε for one-hot actions) to the stored ``behavior.eval_sample`` /
    ``behavior.eval_noise``. ``device`` (auto, cpu or cuda) is where the
    agent runs now, whatever device trained it: the checkpoint is read onto the CPU first, so a GPU-trained agent
    evaluates on a CPU-only machine.
    """
    state = load_checkpoint(path)
    recipe = Recipe.model_validate(state["recipe"])
    seed_everything(recipe.run.seed)
    device = resolve_device(device)
    env = default_env_fn(recipe, recipe.run.seed + 20_000)
    obs_key = state["obs_key"]
    obs_shape = tuple(env.observation_spec[obs_key].shape)
    space = ActionSpace.from_spec(env.action_spec_unbatched, where=recipe.env.task)
    spec_keys = set(env.observation_spec.keys())
    vector_dim = (int(env.observation_spec["observation"].shape[-1]) if obs_key == "pixels" and "observation" in
                  spec_keys else 0)
    agent = build_dreamer(recipe, obs_shape, space, vector_dim).to(device)
    load_agent_weights(agent, state["agent"], f"checkpoint {path}")
    b = recipe.behavior
    policy = DreamerPolicy(agent, obs_key=obs_key, mode="eval",
                           eval_noise=b.eval_noise if eval_noise is None else eval_noise,
                           eval_sample=b.eval_sample if eval_sample is None else eval_sample)
    n = episodes if episodes is not None else recipe.run.eval_episodes
    max_steps = recipe.env.max_episode_frames // int(state["action_repeat"])
    returns, frames = evaluate(env, policy, n, max_steps)
    env.close()
    mean = float(np.mean(returns))
    if frames is not None:
        out = Path(video) if video else path.with_name(f"eval_{state['counters']['frames']:09d}.mp4")
        written = write_video(out, frames)
        print(f"video={written}")
    print(f"episodes={n}")
    print(f"eval_return={mean}")
    return mean
