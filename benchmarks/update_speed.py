"""Seconds per full DreamerV1 update at the paper size, ours against TorchRL's own Dreamer V1, and collection speed.

    python -m benchmarks.update_speed                 # paper size, fp32, CPU (or --device cuda)
    python -m benchmarks.update_speed --iters 5

Update: world model + actor + value losses, their backward passes and the three Adam steps, batch 50 x 50,
deter 200, stoch 30, 400 units, CNN depth 32, 64x64x3 pixels, horizon 15, same precision (fp32) for both; TorchRL's
side is ``benchmarks.torchrl_reference`` (``DreamerModelLoss``, ``DreamerActorLoss``, ``DreamerValueLoss`` assembled
as TorchRL's sota script does). Each implementation runs in its own subprocess (``benchmarks.speed_harness``) so its
peak memory is its own; both run in this one invocation, one after the other.

Ours runs as our trainer runs, with :func:`dreamer_rl.runtime.keep_freed_memory`; TorchRL is measured as it ships
and, like for like, with the same allocator setting (``speedup_vs_torchrl_same_allocator``).

Collection: env frames per second of the bare pixel env (``dmc_cheetah_run``, random actions) and of a TorchRL
``Collector`` stepping it with our acting policy at the paper size (posterior update + actor + noise per step).

Prints the figures last as ``name=value`` lines, ending with ``speedup_vs_torchrl=``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def harness(impl: str, size: str, warmup: int, iters: int, device: str, keep_freed_memory: bool = False) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "benchmarks.speed_harness", "--impl", impl, "--size", size,
           "--warmup", str(warmup), "--iters", str(iters), "--device", device]
    out = subprocess.run(cmd + (["--keep-freed-memory"] if keep_freed_memory else []),
                         cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def collection_fps(steps: int, device: str) -> tuple[float, float]:
    """(bare env frames/s, collector + our policy frames/s) on pixel cheetah_run, action repeat 2."""
    from torchrl.collectors import Collector

    from dreamer_rl.agent import build_dreamer
    from dreamer_rl.config import Recipe
    from dreamer_rl.policy import DreamerPolicy
    from envs import make_env

    env = make_env("dmc_cheetah_run", seed=0)
    repeat = 2
    env.rollout(10)
    start = time.perf_counter()
    td = env.rollout(steps, break_when_any_done=False)
    bare = td.numel() * repeat / (time.perf_counter() - start)

    agent = build_dreamer(Recipe(), (3, 64, 64), env.action_spec.shape[-1]).to(device)
    policy = DreamerPolicy(agent, obs_key="pixels", mode="explore")
    env.append_transform(policy.primer())
    collector = Collector(env, policy, frames_per_batch=steps, total_frames=-1)
    it = iter(collector)
    next(it)  # warm-up batch
    start = time.perf_counter()
    batch = next(it)
    collect = batch.numel() * repeat / (time.perf_counter() - start)
    collector.shutdown()
    return bare, collect


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="paper", choices=["paper", "small"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--collect-steps", type=int, default=200, help="agent steps per collection measurement")
    args = p.parse_args()
    results = {impl: harness(impl, args.size, args.warmup, args.iters, args.device) for impl in ("torchrl", "ours")}
    # like for like: TorchRL with the allocator setting our trainer applies (dreamer_rl.runtime.keep_freed_memory)
    results["torchrl_keep_freed_memory"] = harness("torchrl", args.size, args.warmup, args.iters, args.device, True)
    for impl, r in results.items():
        print(f"{impl}: {r['sec_per_update']:.3f} s/update (times {[round(t, 3) for t in r['times_s']]}), "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB (+{r['peak_rss_delta_mib']:.0f} MiB during updates), "
              f"threads {r['torch_num_threads']}, load {r['loadavg_1m_before']:.2f}")
    bare, collect = collection_fps(args.collect_steps, args.device)
    ours, ref = results["ours"], results["torchrl"]
    print(f"device={args.device}")
    print(f"size={args.size}")
    print(f"sec_per_update_torchrl={ref['sec_per_update']:.3f}")
    print(f"sec_per_update_ours={ours['sec_per_update']:.3f}")
    same = results["torchrl_keep_freed_memory"]
    print(f"sec_per_update_torchrl_keep_freed_memory={same['sec_per_update']:.3f}")
    print(f"speedup_vs_torchrl_same_allocator={same['sec_per_update'] / ours['sec_per_update']:.2f}")
    print(f"peak_rss_mib_torchrl={ref['peak_rss_mib']:.0f}")
    print(f"peak_rss_mib_ours={ours['peak_rss_mib']:.0f}")
    print(f"env_fps_bare={bare:.1f}")
    print(f"env_fps_collect={collect:.1f}")
    print(f"speedup_vs_torchrl={ref['sec_per_update'] / ours['sec_per_update']:.2f}")


if __name__ == "__main__":
    main()
