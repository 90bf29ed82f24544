"""Process-level settings for training speed.

:func:`keep_freed_memory`: a Dreamer update allocates and frees gigabytes of short-lived activations (at the paper
size, ~6 GB of tensors larger than glibc's mmap threshold). By default glibc returns each of them to the OS on free
and the next update page-faults the memory back in, which the kernel zeroes page by page: measured here as ~1.5 M
page faults and ~2.4 s of kernel CPU time per update. Telling glibc to serve large blocks from the heap and never
trim it keeps the freed memory for the next update (peak RSS stays at the working set of one update).

:func:`flush_denormals`: float32 numbers below 2**-126 ~ 1.18e-38 are *subnormal* (denormal): exponent field zero, no
implicit leading 1, precision falling gradually down to 2**-149 ~ 1.4e-45. x86 CPUs handle them in microcode, and an
arithmetic instruction that reads or writes one costs tens to a hundred cycles instead of one (vector instructions
included). In a long training run some gradients, activations and optimiser moments drift into that range (products of
small factors through saturated units, moments decaying where gradients have become tiny). Measured on a DreamerV1
checkpoint after ~1,500 CPU updates: 2.6-5.7 s per update on one thread (85% of it in the actor's backward), 1.5-1.6 s
with subnormals flushed. The CPU's MXCSR register has two bits for this: FTZ (flush to zero: a subnormal *result* is
written as 0) and DAZ (denormals are zero: a subnormal *input* is read as 0); ``torch.set_flush_denormal(True)`` sets
both (on ARM, FPCR.FZ). Nothing a Dreamer learns lives below 1e-38, so flushing changes no result that matters. The
mode is per thread: it reaches the calling thread and the threads it creates afterwards, not an OpenMP pool already
running, so the pool is released and recreated by the next parallel op (see :func:`_restart_openmp_pool`). CUDA is not
concerned.

:func:`bf16_is_native`: whether ``train.precision bf16`` runs on bfloat16 hardware (a GPU, or a CPU with AVX512-BF16
or AMX, which oneDNN uses: 2.4x fp32's matmul rate on this project's AMD EPYC); elsewhere bfloat16 is emulated and
slower than float32, which the learner warns about.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys

import torch

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# mallopt's value is a C int: the largest one, 2 GiB of free memory at the heap's top before glibc trims it. (A Python
# int passed to ctypes without a type is cut to its low 32 bits: 2**62 became 0, "trim at every free", which returned
# every large block to the OS and page-faulted it back in: ~170k faults and ~1 s of kernel time per V3 size12m update.)
_TRIM_NEVER = ctypes.c_int(2**31 - 1)
_done = False
_OMP_PAUSE_HARD = 2  # omp_pause_resource_t: free the OpenMP runtime's threads
_OPENMP_LIBS = ("libgomp", "libomp", "libiomp")


def keep_freed_memory() -> bool:
    """Make glibc keep freed large blocks for reuse (Linux/glibc only; a no-op elsewhere). Returns whether it applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER) == 1
    except (OSError, AttributeError):
        return False
    if ok:
        _done = True
        log.debug("glibc: large blocks from the heap, no trimming")
    return ok


def flush_denormals(on: bool = True) -> bool:
    """Flush subnormal floats to zero on CPU (FTZ + DAZ) for this thread and torch's OpenMP threads.

    ``on=False`` restores IEEE subnormals (to measure what flushing saves). Returns whether the CPU supports it
    (``torch.set_flush_denormal``); safe to call again. Threads that already exist and are not this thread's
    OpenMP pool (another Python thread's pool, say) keep their own mode.
    """
    if not torch.set_flush_denormal(on):
        return False
    _restart_openmp_pool()
    log.debug("subnormal floats %s", "flushed to zero (FTZ/DAZ)" if on else "kept (IEEE)")
    return True


def _restart_openmp_pool() -> bool:
    """Free this thread's OpenMP worker threads so that the next parallel op creates new ones.

    A new thread starts with a copy of its creator's floating-point control state, so the new workers inherit the
    mode just set; the old ones would not (measured: with 4 threads, 3/4 of an elementwise op on subnormals stayed
    slow). ``omp_pause_resource_all(omp_pause_hard)`` (OpenMP 5.0; libgomp, LLVM libomp) releases the pool.
    Linux only (the library is found in ``/proc/self/maps``, the copy torch loaded); returns whether it applied.
    """
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if any(name in line for name in _OPENMP_LIBS)}
    except OSError:
        return False
    ok = False
    for path in sorted(lib for lib in libs if lib.startswith("/")):
        try:
            ok |= ctypes.CDLL(path).omp_pause_resource_all(_OMP_PAUSE_HARD) == 0
        except (OSError, AttributeError):
            continue
    return ok


def compute_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context of a forward pass in ``precision``: bfloat16 autocast on ``device`` for ``bf16``, else nothing."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def bf16_is_native(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively on ``device`` (CUDA, or a CPU whose oneDNN has bfloat16 kernels)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return True
