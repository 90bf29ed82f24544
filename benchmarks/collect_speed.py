"""Collection speed with 1, 2 and 4 envs: env frames per second through the training loop's own collecting path.

    python -m benchmarks.collect_speed                                   # dmc_cartpole_balance from pixels
    python -m benchmarks.collect_speed --task gym_CartPole-v1 --state --envs 1 2 4

For each env count ``N`` it builds what :class:`dreamer_rl.training.Run` builds for ``--env.num_envs N`` (the env,
or ``N`` envs in TorchRL ``ParallelEnv`` worker processes, each with its own seed; the recurrent-state primer; the
acting :class:`~dreamer_rl.policy.DreamerPolicy` of the recipe's agent in ``explore`` mode; a TorchRL
``Collector``; the :class:`~dreamer_rl.replay.StepRowWriter` and the replay buffer), collects ``--warmup`` batches,
then times ``--batches`` batches of ``--frames-per-batch`` env frames (the agent steps times the action repeat),
writing every batch to the buffer as training does. Prints ``fps_envs<N>=`` per count and ``speedup_envs<N>=`` against
one env, all measured in the same process, one after the other. No updates run: this is the collecting side only.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torchrl.collectors import Collector

from dreamer_rl.config import Recipe
from dreamer_rl.training import Run
from recipes.cli import make_recipe


def collect_fps(recipe: Recipe, batches: int, warmup: int, runs_dir: str) -> float:
    """Env frames per second of the training loop's collector for ``recipe`` (``env.num_envs`` envs)."""
    run = Run(recipe)
    try:
        run.policy.mode = "explore"
        per_batch = recipe.env.num_envs * max(1, recipe.train.train_every // (run.repeat * recipe.env.num_envs))
        collector = Collector(run.env, run.policy, frames_per_batch=per_batch, total_frames=-1)
        frames, start = 0, time.perf_counter()
        try:
            for i, batch in enumerate(collector):
                run.buffer.extend(run.writer(batch))
                frames += batch.numel() * run.repeat
                if i + 1 == warmup:  # the clock starts after the warm-up batches (worker start-up included)
                    start, frames = time.perf_counter(), 0
                if i + 1 >= warmup + batches:
                    break
        finally:
            collector.shutdown()
        return frames / (time.perf_counter() - start)
    finally:
        run.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="dmc_cartpole_balance")
    p.add_argument("--state", action="store_true", help="observe the state vector instead of pixels")
    p.add_argument("--preset", nargs="+", default=["dreamer_v1"], help="recipe presets (the acting agent)")
    p.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--frames-per-batch", type=int, default=1000, help="env frames per collector batch")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as runs_dir:
        for n in args.envs:
            recipe = make_recipe(*args.preset, overrides={
                "env.task": args.task, "env.from_pixels": not args.state, "env.num_envs": n,
                "train.train_every": args.frames_per_batch, "train.replay_capacity": 100_000,
                "tracking.enabled": False, "run.runs_dir": runs_dir, "run.name": f"collect-{n}",
                "run.threads": args.threads})
            results[n] = collect_fps(recipe, args.batches, args.warmup, runs_dir)
            print(f"fps_envs{n}={results[n]:.1f}", flush=True)
    base = results.get(1)
    if base:
        for n, fps in results.items():
            if n != 1:
                print(f"speedup_envs{n}={fps / base:.2f}")


if __name__ == "__main__":
    main()
