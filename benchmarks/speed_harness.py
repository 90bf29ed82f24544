"""Timing / peak-memory harness for full Dreamer updates.

Every implementation is registered by name in :data:`IMPLEMENTATIONS` as
``"module:builder"``; a builder takes the keyword arguments of a size entry
in :data:`SIZES` plus ``device``. DreamerV1 builders (``torchrl``, ``ours``)
have the signature of :func:`benchmarks.torchrl_reference.build_torchrl_update`::

    build(batch_size, seq_len, deter, stoch, hidden, depth, action_dim,
          horizon, device, precision, compile) -> (update(batch) -> None, make_batch() -> batch)

DreamerV3 builders (``torchrl_v3``, ``ours_v3``) that of
:func:`benchmarks.torchrl_v3_reference.build_torchrl_v3_update`::

    build(batch_size, seq_len, deter, hidden, stoch, classes, depth, units,
          blocks, action_dim, horizon, device, precision, compile) -> (update, make_batch)

``precision`` is ``"fp32"`` or ``"bf16"`` (bfloat16 autocast over float32 weights, each side its own way);
``compile`` is ``"none"`` (eager) or a ``torch.compile`` mode (ours: ``train.compile``; TorchRL's DreamerV3: its
stepper's ``compile_train_step`` / ``cudagraph``; TorchRL's DreamerV1 has no compiled path and stays eager).

:data:`ALGORITHMS` says which implementations and sizes belong together.

Command line (one implementation per process, so that peak RSS is not polluted
by another implementation's allocations)::

    python -m benchmarks.speed_harness --impl torchrl --size paper --warmup 1 --iters 3

prints one JSON line. ``--impl torchrl,ours`` (or ``--impl all``: every
implementation of the size's algorithm) spawns one subprocess per
implementation, sequentially, and prints one JSON line each.

Reported fields: ``sec_per_update`` (median over ``iters`` timed updates,
batch creation excluded), ``sec_per_update_mean`` / ``_min`` / ``_max``,
``times_s``, ``cpu_sec_per_update`` (median process CPU time, all threads;
steadier than wall time when the machine is shared),
``sys_cpu_sec_per_update`` / ``minor_page_faults_per_update`` (kernel time
and first-touch page faults of the update's allocations), ``peak_rss_mib`` (``resource.getrusage(RUSAGE_SELF).ru_maxrss``
at the end: process-lifetime high-water mark, includes the interpreter,
torch, the models and one batch), ``rss_before_first_update_mib`` (current RSS
from ``/proc/self/statm`` right before the first warmup update, i.e. after
model construction and the first ``make_batch()``),
``peak_rss_delta_mib`` (= the difference: what the updates themselves add at
their peak), ``torch_num_threads`` / ``torch_num_interop_threads``, and the
size configuration, and the 1-minute load average before/after (timings
on a shared machine are only meaningful when it is close to idle).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from dreamer_rl.compile import COMPILE_MODES

IMPLEMENTATIONS: dict[str, str] = {
    "torchrl": "benchmarks.torchrl_reference:build_torchrl_update",
    "ours": "benchmarks.ours_update:build_ours_update",
    "torchrl_v3": "benchmarks.torchrl_v3_reference:build_torchrl_v3_update",
    "ours_v3": "benchmarks.ours_v3_update:build_ours_v3_update",
}

SIZES: dict[str, dict[str, Any]] = {
    # DreamerV1 paper (cheetah): 50 sequences x 50 steps, 200/30 RSSM,
    # 400-unit MLPs, CNN depth 32, 64x64x3 pixels, 6-dim action, horizon 15.
    "paper": dict(
        batch_size=50, seq_len=50, deter=200, stoch=30, hidden=400, depth=32,
        action_dim=6, horizon=15,
    ),
    # quick checks: a couple of seconds per update at most
    "small": dict(
        batch_size=4, seq_len=8, deter=16, stoch=4, hidden=16, depth=4,
        action_dim=6, horizon=3,
    ),
    # DreamerV3 size12m (danijar/dreamerv3 configs): block GRU of 8 blocks
    # over a 2048 belief, 256-wide RSSM projections, 32 categoricals x 16
    # classes, CNN depth 16 (channels 32-48-64-64), 256-unit MLPs; batch
    # 16 x 64, 64x64x3 pixels, horizon 15.
    "size12m_v3": dict(
        batch_size=16, seq_len=64, deter=2048, hidden=256, stoch=32,
        classes=16, depth=16, units=256, blocks=8, action_dim=6, horizon=15,
    ),
    # quick checks of the V3 plumbing
    "small_v3": dict(
        batch_size=4, seq_len=8, deter=64, hidden=16, stoch=4, classes=4,
        depth=4, units=16, blocks=4, action_dim=6, horizon=3,
    ),
}

# algorithm -> (its implementations, its sizes); a size's keys are its
# builders' arguments, so an implementation only runs at its algorithm's sizes.
ALGORITHMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "dreamer_v1": (("torchrl", "ours"), ("paper", "small")),
    "dreamer_v3": (("torchrl_v3", "ours_v3"), ("size12m_v3", "small_v3")),
}


class ImplementationNotAvailable(RuntimeError):
    """The registered builder of an implementation cannot be imported."""


def algorithm_of_size(size: str) -> str:
    """The algorithm whose builders take ``SIZES[size]``."""
    for algo, (_, sizes) in ALGORITHMS.items():
        if size in sizes:
            return algo
    raise ValueError(f"unknown size {size!r}; known: {sorted(SIZES)}")


def check_pairing(impl: str, size: str) -> None:
    """Refuse an implementation at another algorithm's size (its builder would not take those arguments)."""
    algo = algorithm_of_size(size)
    impls = ALGORITHMS[algo][0]
    if impl not in impls:
        raise ImplementationNotAvailable(
            f"size {size!r} is a {algo} size; its implementations are "
            f"{list(impls)}, not {impl!r}"
        )


def load_builder(impl: str) -> Callable[..., tuple[Callable, Callable]]:
    """Resolve ``IMPLEMENTATIONS[impl]`` ("module:function") to the builder."""
    if impl not in IMPLEMENTATIONS:
        raise ImplementationNotAvailable(
            f"unknown implementation {impl!r}; registered: {sorted(IMPLEMENTATIONS)}"
        )
    target = IMPLEMENTATIONS[impl]
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise ImplementationNotAvailable(
                f"implementation {impl!r} is registered as {target!r} but module "
                f"{module_name!r} does not exist yet (write {module_name.replace('.', '/')}.py "
                f"defining {func_name}(**SIZES[size], device, precision) -> (update, make_batch))"
            ) from err
        raise
    try:
        return getattr(module, func_name)
    except AttributeError as err:
        raise ImplementationNotAvailable(
            f"module {module_name!r} has no builder {func_name!r} (registered for {impl!r})"
        ) from err


def current_rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):  # not Linux: fall back to the high-water mark
        return peak_rss_mib()


def peak_rss_mib() -> float:
    """``ru_maxrss`` of this process in MiB (KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10


def time_update(
    update: Callable[[Any], None],
    make_batch: Callable[[], Any],
    warmup: int,
    iters: int,
) -> dict[str, Any]:
    """Time ``update(make_batch())``; batch creation is outside the timed region.

    Runs ``warmup`` untimed updates then ``iters`` timed ones, each on a fresh
    batch (the previous batch is released before the next is made, so at most
    one batch is alive). Returns seconds per update (median, mean, min, max,
    all samples) and the RSS just before the first update / the peak RSS.
    """
    if iters < 1:
        raise ValueError("iters must be >= 1")
    batch = make_batch()
    rss_before = current_rss_mib()
    times: list[float] = []
    cpu_times: list[float] = []
    sys_times: list[float] = []
    faults: list[int] = []
    for i in range(warmup + iters):
        if i > 0:
            batch = None  # free the previous batch before allocating the next
            batch = make_batch()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        c0 = time.process_time()
        t0 = time.perf_counter()
        update(batch)
        dt = time.perf_counter() - t0
        dc = time.process_time() - c0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        if i >= warmup:
            times.append(dt)
            cpu_times.append(dc)
            sys_times.append(r1.ru_stime - r0.ru_stime)
            faults.append(r1.ru_minflt - r0.ru_minflt)
    batch = None
    # ru_maxrss is the kernel's high-water mark, which lags its per-thread RSS counters by a few pages: it can read a
    # hair below the statm reading taken before the updates, when the heap keeps what it freed and RSS stays flat
    peak = max(peak_rss_mib(), current_rss_mib(), rss_before)
    return {
        "sec_per_update": statistics.median(times),
        "sec_per_update_mean": statistics.fmean(times),
        "sec_per_update_min": min(times),
        "sec_per_update_max": max(times),
        "times_s": times,
        # process CPU seconds (all threads) per update: less sensitive than
        # wall time to other jobs on a shared machine
        "cpu_sec_per_update": statistics.median(cpu_times),
        # kernel time and minor page faults per update: large fresh tensors
        # are mmap'd / first-touched on every update by glibc malloc
        "sys_cpu_sec_per_update": statistics.median(sys_times),
        "minor_page_faults_per_update": int(statistics.median(faults)),
        "warmup": warmup,
        "iters": iters,
        "rss_before_first_update_mib": rss_before,
        "peak_rss_mib": peak,
        "peak_rss_delta_mib": peak - rss_before,
    }


def _loadavg_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def run_impl(
    impl: str, size: str, warmup: int, iters: int, device: str = "cpu",
    threads: int | None = None, seed: int = 0, precision: str = "fp32", compile: str = "none",
) -> dict[str, Any]:
    """Build ``impl`` at ``size`` in this process and time it."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    check_pairing(impl, size)
    builder = load_builder(impl)
    cfg = dict(SIZES[size])
    update, make_batch = builder(**cfg, device=device, precision=precision, compile=compile)
    result = {"impl": impl, "size": size, "device": device, "precision": precision, "compile": compile}
    load_before = _loadavg_1m()
    result.update(time_update(update, make_batch, warmup=warmup, iters=iters))
    result.update(
        # other processes on the machine skew the timings: keep a trace of it
        loadavg_1m_before=load_before,
        loadavg_1m_after=_loadavg_1m(),
        torch_num_threads=torch.get_num_threads(),
        torch_num_interop_threads=torch.get_num_interop_threads(),
        torch_version=torch.__version__,
        cpu_count=os.cpu_count(),
        machine=platform.machine(),
        config=cfg,
    )
    return result


def run_in_subprocess(
    impl: str, size: str, warmup: int, iters: int, device: str = "cpu",
    threads: int | None = None, precision: str = "fp32", compile: str = "none",
) -> dict[str, Any]:
    """Run one implementation in a fresh interpreter and parse its JSON line."""
    cmd = [
        sys.executable, "-m", "benchmarks.speed_harness", "--impl", impl,
        "--size", size, "--warmup", str(warmup), "--iters", str(iters),
        "--device", device, "--precision", precision, "--compile", compile,
    ]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = repo_root + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo_root, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"impl": impl, "size": size, "error": (proc.stderr or proc.stdout)[-2000:]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--impl", default="torchrl",
        help=f"one of {sorted(IMPLEMENTATIONS)}, a comma list, or 'all' "
        "(several -> one subprocess each)",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: the builders' bfloat16 autocast (float32 weights)")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="none",
                        help="torch.compile mode of the builders' compiled path (none: eager)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="apply dreamer_rl.runtime.keep_freed_memory() first (ours applies it itself)")
    args = parser.parse_args(argv)
    if args.keep_freed_memory:
        from dreamer_rl.runtime import keep_freed_memory

        keep_freed_memory()

    impls = (list(ALGORITHMS[algorithm_of_size(args.size)][0]) if args.impl == "all"
             else args.impl.split(","))
    if len(impls) > 1:
        rc = 0
        for impl in impls:
            res = run_in_subprocess(impl, args.size, args.warmup, args.iters,
                                    args.device, args.threads, args.precision, args.compile)
            rc |= int("error" in res)
            print(json.dumps(res), flush=True)
        return rc

    try:
        res = run_impl(impls[0], args.size, args.warmup, args.iters, args.device,
                       args.threads, precision=args.precision, compile=args.compile)
    except ImplementationNotAvailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
