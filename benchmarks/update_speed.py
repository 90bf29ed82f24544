"""Seconds per full Dreamer update, ours against TorchRL's own, for DreamerV1 and DreamerV3; and a trained checkpoint.

    python -m benchmarks.update_speed                       # DreamerV1, paper size, fp32, CPU (or --device cuda)
    python -m benchmarks.update_speed --iters 5
    python -m benchmarks.update_speed --algo dreamer_v3     # DreamerV3 size12m against TorchRL's DreamerV3
    python -m benchmarks.update_speed --checkpoint runs/<name>/checkpoints/latest.pt --iters 3
    python -m benchmarks.update_speed --algo dreamer_v3 --compile default   # both sides compiled

``--algo dreamer_v1`` (default). Update: world model + actor + value losses, their backward passes and the three Adam
steps, batch 50 x 50, deter 200, stoch 30, 400 units, CNN depth 32, 64x64x3 pixels, horizon 15, same precision (fp32)
for both; TorchRL's side is ``benchmarks.torchrl_reference`` (``DreamerModelLoss``, ``DreamerActorLoss``,
``DreamerValueLoss`` assembled as TorchRL's sota script does). Each implementation runs in its own subprocess
(``benchmarks.speed_harness``) so its peak memory is its own; both run in this one invocation, one after the other.
Ours runs as our trainer runs, with :mod:`dreamer_rl.runtime`'s settings (``keep_freed_memory``, ``flush_denormals``);
TorchRL is measured as it ships and, like for like, with the same allocator setting
(``speedup_vs_torchrl_same_allocator``). Collection: env frames per second of the bare pixel env (``dmc_cheetah_run``,
random actions) and of a TorchRL ``Collector`` stepping it with our acting policy at the paper size (posterior update
+ actor + noise per step). Prints the figures last as ``name=value`` lines, ending with ``speedup_vs_torchrl=``.

``--algo dreamer_v3``: one full DreamerV3 update (world model, actor and critic losses, backward, optimiser step) at
DreamerV3's size12m (deter 2048 in 8 GRU blocks, hidden 256, 32 latents x 16 classes, CNN depth 16, MLP units 256),
batch 16 x 64, 64x64x3 uint8 pixels, fp32, horizon 15. Ours is ``benchmarks.ours_v3_update`` (our ``Learner`` on the
``dreamer_v3`` + ``size12m`` presets, pixel MSE as ``dmc_vision`` sets); TorchRL's is
``benchmarks.torchrl_v3_reference`` (``DreamerV3Loss`` over TorchRL's DreamerV3 modules, ``DreamerV3Optimizer``
through ``DreamerV3OptimizationStepper``, eager). One subprocess each, in this invocation, and TorchRL again with our
allocator setting, like for like. Prints ``sec_per_update_torchrl=``, ``sec_per_update_ours=``,
``sec_per_update_torchrl_keep_freed_memory=``, ``speedup_vs_torchrl_same_allocator=``, ``peak_rss_mib_torchrl=``,
``peak_rss_mib_ours=``, then ``speedup_vs_torchrl=`` last. ``--size small_v3`` checks the plumbing in seconds.

``--compile MODE`` (``default``, ``reduce-overhead``, ``max-autotune``; ``none`` by default): ours with
``train.compile MODE`` (the world model's filter and imagination steps through ``torch.compile``,
:mod:`dreamer_rl.compile`), TorchRL's DreamerV3 with its stepper's ``compile_train_step`` (and ``cudagraph`` for
``reduce-overhead`` on CUDA); the first (warm-up) update of each side compiles. TorchRL's DreamerV1 has no compiled
path and stays eager. Prints ``compile=`` and ``torchrl_compile=``.

``--checkpoint PATH``: a checkpoint written by a training run (``dreamer_rl.training.Run.save``). The agent is rebuilt
from the recipe stored in it (pixels ``[3, 64, 64]`` when ``env.from_pixels``, else a vector whose size, like the
action size, is read off the stored weights) and ``Learner.update`` is timed on random batches of the recipe's
``[batch_size, seq_len]``, first with fresh weights, then with the stored weights and optimiser state. Prints
``sec_per_update_fresh=`` and ``sec_per_update_trained=``; ``--keep-denormals`` turns flushing of subnormal floats
back off after the Learner is built (see :func:`dreamer_rl.runtime.flush_denormals`) to measure what it saves.
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


def harness(impl: str, size: str, warmup: int, iters: int, device: str, keep_freed_memory: bool = False,
            threads: int | None = None, precision: str = "fp32", compile: str = "none") -> dict:
    """Time ``impl`` at ``size`` in a fresh interpreter (``benchmarks.speed_harness``); its JSON result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "benchmarks.speed_harness", "--impl", impl, "--size", size,
           "--warmup", str(warmup), "--iters", str(iters), "--device", device, "--precision", precision,
           "--compile", compile]
    cmd += (["--keep-freed-memory"] if keep_freed_memory else []) + (["--threads", str(threads)] if threads else [])
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{impl} at {size} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _report(impl: str, r: dict) -> None:
    print(f"{impl}: {r['sec_per_update']:.3f} s/update (times {[round(t, 3) for t in r['times_s']]}), "
          f"peak RSS {r['peak_rss_mib']:.0f} MiB (+{r['peak_rss_delta_mib']:.0f} MiB during updates), "
          f"threads {r['torch_num_threads']}, load {r['loadavg_1m_before']:.2f}")


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


def dreamer_v1(args: argparse.Namespace) -> None:
    results = {impl: harness(impl, args.size, args.warmup, args.iters, args.device, threads=args.threads,
                          precision=args.precision, compile=args.compile)
               for impl in ("torchrl", "ours")}
    # like for like: TorchRL with the allocator setting our trainer applies (dreamer_rl.runtime.keep_freed_memory)
    results["torchrl_keep_freed_memory"] = harness("torchrl", args.size, args.warmup, args.iters, args.device, True,
                                                   threads=args.threads, precision=args.precision,
                                                   compile=args.compile)
    for impl, r in results.items():
        _report(impl, r)
    bare, collect = collection_fps(args.collect_steps, args.device)
    ours, ref = results["ours"], results["torchrl"]
    print(f"device={args.device}")
    print(f"size={args.size}")
    print(f"precision={args.precision}")
    print(f"compile={args.compile}")
    print("torchrl_compile=none")  # TorchRL's DreamerV1 losses have no compiled path
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


def dreamer_v3(args: argparse.Namespace) -> None:
    results = {impl: harness(impl, args.size, args.warmup, args.iters, args.device, threads=args.threads,
                          precision=args.precision, compile=args.compile)
               for impl in ("torchrl_v3", "ours_v3")}
    # like for like, as for V1: TorchRL with the allocator setting our Learner applies
    results["torchrl_v3_keep_freed_memory"] = harness("torchrl_v3", args.size, args.warmup, args.iters, args.device,
                                                      True, threads=args.threads, precision=args.precision,
                                                      compile=args.compile)
    for impl, r in results.items():
        _report(impl, r)
    ours, ref, same = results["ours_v3"], results["torchrl_v3"], results["torchrl_v3_keep_freed_memory"]
    print(f"device={args.device}")
    print(f"size={args.size}")
    print(f"precision={args.precision}")
    # TorchRL's DreamerV3 stepper applies its mixed_precision (bfloat16 autocast) on CUDA only
    print(f"torchrl_precision={args.precision if args.device.startswith('cuda') else 'fp32'}")
    print(f"compile={args.compile}")
    print(f"torchrl_compile={args.compile}")
    print(f"sec_per_update_torchrl={ref['sec_per_update']:.3f}")
    print(f"sec_per_update_ours={ours['sec_per_update']:.3f}")
    print(f"sec_per_update_torchrl_keep_freed_memory={same['sec_per_update']:.3f}")
    print(f"speedup_vs_torchrl_same_allocator={same['sec_per_update'] / ours['sec_per_update']:.2f}")
    print(f"peak_rss_mib_torchrl={ref['peak_rss_mib']:.0f}")
    print(f"peak_rss_mib_ours={ours['peak_rss_mib']:.0f}")
    print(f"speedup_vs_torchrl={ref['sec_per_update'] / ours['sec_per_update']:.2f}")


def main() -> None:
    from benchmarks.speed_harness import ALGORITHMS
    from dreamer_rl.compile import COMPILE_MODES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="dreamer_v1", choices=sorted(ALGORITHMS))
    p.add_argument("--size", default=None, help="dreamer_v1: paper (default) or small; "
                                                "dreamer_v3: size12m_v3 (default) or small_v3")
    p.add_argument("--checkpoint", default=None, help="time Learner.update on this training checkpoint instead")
    p.add_argument("--keep-denormals", action="store_true", help="with --checkpoint: do not flush subnormals")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: ours with train.precision bf16, TorchRL with bfloat16 autocast (V1: around each loss "
                        "forward, as its sota script; V3: its stepper's mixed_precision, which TorchRL applies on "
                        "CUDA only)")
    p.add_argument("--compile", choices=COMPILE_MODES, default="none",
                   help="ours: train.compile (torch.compile of the world model's steps); TorchRL's DreamerV3: its "
                        "stepper's compile_train_step (+ cudagraph for reduce-overhead on CUDA); TorchRL's "
                        "DreamerV1 stays eager")
    p.add_argument("--collect-steps", type=int, default=200, help="agent steps per collection measurement")
    args = p.parse_args()
    if args.checkpoint is not None:
        from benchmarks.checkpoint_update import checkpoint_speed

        checkpoint_speed(Path(args.checkpoint), warmup=args.warmup, iters=args.iters, device=args.device,
                         threads=args.threads, keep_denormals=args.keep_denormals)
        return
    sizes = ALGORITHMS[args.algo][1]
    args.size = args.size or sizes[0]
    if args.size not in sizes:
        p.error(f"--size {args.size} is not a {args.algo} size; choose from {list(sizes)}")
    {"dreamer_v1": dreamer_v1, "dreamer_v3": dreamer_v3}[args.algo](args)


if __name__ == "__main__":
    main()
