"""Does it learn? ``cartpole_balance`` from the state vector, return against env frames, beside a random policy.

    python -m benchmarks.learn                       # DreamerV1, 50k frames from the state vector; ~70 min on 2 cores
    python -m benchmarks.learn --preset dreamer_v3 --task dmc_cartpole_balance --frames 50000
    python -m benchmarks.learn --frames 20000 --pixels
    python -m benchmarks.learn --preset dreamer_v3 --task gym_CartPole-v1 --frames 20000   # discrete actions
    python -m benchmarks.learn --frames 100000 --runs-dir runs/learn   # checkpointed: rerun to resume or extend

Prints the eval return at every evaluation, then ``random_return=`` (mean over episodes of uniform random actions on
the same task) and ``final_return=`` (the mean of the last evaluation) last. With ``--runs-dir`` the run is checkpointed at
every evaluation and re-running the same command resumes it (a longer ``--frames`` extends it), so a long curve can
be built over several sittings; without it the run lives in a temporary directory. The recipe is ``--preset`` (an
algorithm: ``dreamer_v1`` by default, ``kl_balance``, ``dreamer_v2``, ``dreamer_v3``) with ``dmc_proprio`` (or
``dmc_vision`` with ``--pixels``), at the preset's own batch, train ratio and size unless ``--batch`` /
``--train-ratio`` say otherwise; DreamerV1 keeps the batch 16 and ratio 0.1 of its recorded CPU runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dreamer_rl.compile import COMPILE_MODES
from dreamer_rl.config import Recipe, deep_merge, known_fields
from dreamer_rl.training import MUTABLE_RUN_FIELDS, Run, default_env_fn
from recipes.presets import apply_presets


def random_return(recipe: Recipe, episodes: int, seed: int) -> float:
    """Mean return of uniform random actions over ``episodes`` episodes."""
    returns = []
    for i in range(episodes):
        env = default_env_fn(recipe, seed + i)
        td = env.rollout(recipe.env.max_episode_frames, break_when_any_done=True)
        returns.append(float(td.get(("next", "reward")).sum()))
        env.close()
    return float(np.mean(returns))


def learn_recipe(task: str = "dmc_cartpole_balance", frames: int = 50_000, batch: int | None = None,
                 train_ratio: float | None = None, eval_every: int = 5000, eval_episodes: int = 3,
                 pixels: bool = False, seed: int = 0, runs_dir: str = "runs", keep: bool = False,
                 preset: str = "dreamer_v1", precision: str = "fp32", compile: str = "none") -> Recipe:
    """The benchmark's recipe: ``preset`` + ``dmc_proprio`` (or ``dmc_vision``; ``gym`` for ``gym_`` tasks), no
    tracking.

    ``batch`` / ``train_ratio``: ``None`` keeps the preset's (DreamerV1: 16 and 0.1, its recorded CPU setting).
    ``keep``: checkpoint at every evaluation so that a rerun resumes (otherwise never checkpoint).
    ``precision``: ``train.precision`` (``bf16``: bfloat16 autocast), ``compile``: ``train.compile`` (a
    ``torch.compile`` mode for the world model's steps); neither is part of the run's name, so a resumed run may
    change them.
    """
    if preset == "dreamer_v1":
        batch, train_ratio = batch or 16, train_ratio or 0.1
    domain = "gym" if task.startswith("gym_") else "dmc_vision" if pixels else "dmc_proprio"
    base = apply_presets([preset, domain])
    train = {k: v for k, v in (("batch_size", batch), ("train_ratio", train_ratio)) if v is not None}
    train["precision"], train["compile"] = precision, compile
    recipe = Recipe.model_validate(deep_merge(base, {"env": {"task": task}, "train": train}))
    prefix = "learn" if preset == "dreamer_v1" else f"learn-{preset}"
    ratio = "" if train_ratio is None else f"-r{train_ratio:g}"
    return Recipe.model_validate(deep_merge(recipe.model_dump(), {
        "tracking": {"enabled": False},
        "run": {"steps": frames, "seed": seed, "eval_every": eval_every, "eval_episodes": eval_episodes,
                "runs_dir": runs_dir, "save_every": eval_every if keep else 10 ** 9,
                "name": f"{prefix}-{task}-{'pixels' if pixels else 'state'}-b{recipe.train.batch_size}{ratio}-s{seed}"},
    }))


def recorded_recipe(recipe: Recipe) -> Recipe:
    """The recipe a resumed benchmark run was started with (its ``recipe.json``), with this command's budget,
    clocks, precision and compile mode: a curve stays one recipe's even when a preset changes between sittings. ``recipe`` itself for a new run.

    Fields added to the recipe since the run started take their defaults (the old behaviour), fields removed since
    are dropped."""
    stored = Path(recipe.run.runs_dir) / recipe.run_name / "recipe.json"
    if not stored.exists():
        return recipe
    known = known_fields(json.loads(stored.read_text()))
    clocks = {k: v for k, v in recipe.run.model_dump().items() if k in MUTABLE_RUN_FIELDS | {"runs_dir"}}
    speed = {"precision": recipe.train.precision, "compile": recipe.train.compile}
    return Recipe.model_validate(deep_merge(known, {"run": clocks, "train": speed}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="dmc_cartpole_balance")
    p.add_argument("--frames", type=int, default=50_000, help="budget in env frames")
    p.add_argument("--preset", default="dreamer_v1", help="algorithm preset: dreamer_v1, kl_balance, dreamer_v2, "
                   "dreamer_v3")
    p.add_argument("--batch", type=int, default=None, help="sequences per batch (default: the preset's; V1: 16)")
    p.add_argument("--train-ratio", type=float, default=None,
                   help="updates per env frame (default: the preset's; V1: 0.1)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="train.precision of the updates (bf16: bfloat16 autocast, float32 weights)")
    p.add_argument("--compile", choices=COMPILE_MODES, default="none",
                   help="train.compile: torch.compile the world model's steps (none: eager)")
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=3)
    p.add_argument("--pixels", action="store_true", help="learn from pixels instead of the state vector")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", default=None, help="keep the run here (checkpoint every eval; rerun to resume)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("dreamer_rl.training").setLevel(logging.INFO)
    with contextlib.ExitStack() as stack:
        runs_dir = args.runs_dir or stack.enter_context(tempfile.TemporaryDirectory())
        recipe = learn_recipe(args.task, args.frames, args.batch, args.train_ratio, args.eval_every,
                              args.eval_episodes, args.pixels, args.seed, runs_dir, keep=args.runs_dir is not None,
                              preset=args.preset, precision=args.precision, compile=args.compile)
        recipe = recorded_recipe(recipe)
        if args.threads:
            torch.set_num_threads(args.threads)
        rand = random_return(recipe, args.eval_episodes * 3, seed=10_000 + args.seed)
        start = time.perf_counter()
        run = Run(recipe)
        try:
            summary = run.loop()
        finally:
            run.close()
        minutes = (time.perf_counter() - start) / 60
        t = recipe.train
        print(f"{args.preset} on {args.task} from {'pixels' if args.pixels else 'state'}, batch {t.batch_size}x"
              f"{t.seq_len}, train ratio {t.train_ratio}, {summary['updates']} updates, {minutes:.1f} min this sitting, "
              f"torch threads {torch.get_num_threads()}")
        print("frames  eval_return")
        for frames, ret in run.counters.evals:
            print(f"{frames:6d}  {ret:8.1f}")
    print(f"minutes={minutes:.1f}")
    print(f"random_return={rand:.1f}")
    print(f"final_return={run.counters.evals[-1][1]:.1f}")


if __name__ == "__main__":
    main()
