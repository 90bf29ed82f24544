"""Does DreamerV1 learn? ``cartpole_balance`` from the state vector, return against env frames, beside a random policy.

    python -m benchmarks.learn                       # 50k frames from the state vector; ~70 min on a 2-core CPU
    python -m benchmarks.learn --frames 20000 --pixels
    python -m benchmarks.learn --frames 100000 --runs-dir runs/learn   # checkpointed: rerun to resume or extend

Prints the eval return at every evaluation, then ``random_return=`` (mean over episodes of uniform random actions on
the same task) and ``final_return=`` (the mean of the last evaluation) last. With ``--runs-dir`` the run is checkpointed at
every evaluation and re-running the same command resumes it (a longer ``--frames`` extends it), so a long curve can
be built over several sittings; without it the run lives in a temporary directory. The recipe is the ``dmc_proprio`` preset
(or ``dmc_vision`` with ``--pixels``) with a smaller batch (``--batch``) so that it fits the CPU budget.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time

import numpy as np
import torch

from dreamer_rl.config import Recipe, deep_merge
from dreamer_rl.train import Run, default_env_fn
from recipes.presets import PRESETS


def random_return(recipe: Recipe, episodes: int, seed: int) -> float:
    """Mean return of uniform random actions over ``episodes`` episodes."""
    returns = []
    for i in range(episodes):
        env = default_env_fn(recipe, seed + i)
        td = env.rollout(recipe.env.max_episode_frames, break_when_any_done=True)
        returns.append(float(td.get(("next", "reward")).sum()))
        env.close()
    return float(np.mean(returns))


def learn_recipe(task: str = "dmc_cartpole_balance", frames: int = 50_000, batch: int = 16, train_ratio: float = 0.1,
                 eval_every: int = 5000, eval_episodes: int = 3, pixels: bool = False, seed: int = 0,
                 runs_dir: str = "runs", keep: bool = False) -> Recipe:
    """The benchmark's recipe: ``dmc_proprio`` (or ``dmc_vision``) with a smaller batch, no tracking.

    ``keep``: checkpoint at every evaluation so that a rerun resumes (otherwise never checkpoint).
    """
    preset = PRESETS["dmc_vision" if pixels else "dmc_proprio"]
    return Recipe.model_validate(deep_merge(preset, {
        "env": {"task": task},
        "train": {"batch_size": batch, "train_ratio": train_ratio},
        "tracking": {"enabled": False},
        "run": {"steps": frames, "seed": seed, "eval_every": eval_every, "eval_episodes": eval_episodes,
                "runs_dir": runs_dir, "save_every": eval_every if keep else 10 ** 9,
                "name": f"learn-{task}-{'pixels' if pixels else 'state'}-b{batch}-s{seed}"},
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="dmc_cartpole_balance")
    p.add_argument("--frames", type=int, default=50_000, help="budget in env frames")
    p.add_argument("--batch", type=int, default=16, help="sequences per batch (paper: 50)")
    p.add_argument("--train-ratio", type=float, default=0.1, help="updates per env frame (paper: 0.1)")
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=3)
    p.add_argument("--pixels", action="store_true", help="learn from pixels instead of the state vector")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", default=None, help="keep the run here (checkpoint every eval; rerun to resume)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("dreamer_rl.train").setLevel(logging.INFO)
    with contextlib.ExitStack() as stack:
        runs_dir = args.runs_dir or stack.enter_context(tempfile.TemporaryDirectory())
        recipe = learn_recipe(args.task, args.frames, args.batch, args.train_ratio, args.eval_every,
                              args.eval_episodes, args.pixels, args.seed, runs_dir, keep=args.runs_dir is not None)
        rand = random_return(recipe, args.eval_episodes * 3, seed=10_000 + args.seed)
        start = time.perf_counter()
        run = Run(recipe)
        try:
            summary = run.loop()
        finally:
            run.close()
        minutes = (time.perf_counter() - start) / 60
        print(f"task {args.task} from {'pixels' if args.pixels else 'state'}, batch {args.batch}x50, "
              f"train ratio {args.train_ratio}, {summary['updates']} updates, {minutes:.1f} min this sitting, "
              f"torch threads {torch.get_num_threads()}")
        print("frames  eval_return")
        for frames, ret in run.counters.evals:
            print(f"{frames:6d}  {ret:8.1f}")
    print(f"minutes={minutes:.1f}")
    print(f"random_return={rand:.1f}")
    print(f"final_return={run.counters.evals[-1][1]:.1f}")


if __name__ == "__main__":
    main()
