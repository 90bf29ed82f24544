"""Process-level runtime settings: a Learner flushes subnormal floats to zero on every CPU thread it computes on.

Each check runs in a fresh interpreter: the floating-point mode is process state (per thread) that would leak into
other tests, and the point is what a Learner does to an OpenMP pool that is already running.
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO, recipe_env

# float32 subnormal (below 2**-126 ~ 1.18e-38); x * 1.0 stays subnormal unless FTZ/DAZ is on.
# The big tensor makes torch split the multiply over its OpenMP threads (the pool exists before the Learner).
PROBE = """
import torch
torch.set_num_threads(2)
big = torch.full((1 << 22,), 1e-39)

def survivors():
    return int(((big * 1.0) != 0).sum()), float(torch.tensor(1e-39) * 1.0)

assert survivors() == (1 << 22, float(torch.tensor(1e-39))), survivors()  # subnormals survive by default
{setup}
print("survivors", *survivors())
"""

LEARNER = """
from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe
from recipes.presets import PRESETS
recipe = Recipe.model_validate({k: v for k, v in PRESETS["debug"].items() if k in ("model", "behavior", "train")})
Learner(build_dreamer(recipe, (5,), 2), recipe, obs_key="observation")
"""


def _survivors(setup: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], cwd=REPO, env=recipe_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    _, big, small = out.stdout.split()
    return int(big), float(small)


def test_learner_flushes_subnormals_on_all_threads() -> None:
    assert _survivors(LEARNER) == (0, 0.0)


def test_set_flush_denormal_alone_misses_a_running_openmp_pool() -> None:
    """Why flush_denormals restarts the pool: torch's switch only reaches the calling thread."""
    big, small = _survivors("torch.set_flush_denormal(True)")
    assert small == 0.0 and big > 0


# Large blocks allocated and freed in a loop, as an update does with its activations; minor page faults per round.
ALLOCATIONS = """
import resource, torch
torch.set_num_threads(1)
{setup}
a, b = torch.randn(1 << 23), torch.randn(1 << 23)  # 32 MiB each: far above glibc's default mmap threshold
faults = []
for _ in range(14):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c = a * b
    d = c + a
    float(d.sum())
    del c, d
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def _faults_per_round(setup: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", ALLOCATIONS.format(setup=setup)], cwd=REPO, env=recipe_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return [int(n) for n in out.stdout.split()]


def test_keep_freed_memory_reuses_large_blocks_without_page_faults() -> None:
    """After the heap has grown to the loop's working set, a round reuses the freed blocks: no page is faulted in
    again. Without the setting each round faults both 32 MiB blocks in (~16k pages); with a trim threshold of 0 (what
    an untyped ``2**62`` became through ctypes) every other round does."""
    default = _faults_per_round("")
    kept = _faults_per_round("from dreamer_rl.runtime import keep_freed_memory\nassert keep_freed_memory()")
    assert min(default[-6:]) > 8000, default
    assert sum(kept[-6:]) < 200, kept
