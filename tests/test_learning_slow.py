"""Slow learning test (not in CI): DreamerV1 learns cartpole_balance from the state vector.

    python -m pytest -m slow tests/test_learning_slow.py      # ~45 min on a 2-core CPU

Same set-up as ``python -m benchmarks.learn`` (batch 16 x 50, paper defaults otherwise), 30k env frames; the final
greedy return must clearly beat a random policy's (random ~380, a balanced pole gives up to 1000).
"""

from __future__ import annotations

import pytest

from dreamer_rl.config import Recipe
from dreamer_rl.train import Run

pytestmark = pytest.mark.slow


def test_dreamer_v1_learns_cartpole_balance_from_state(tmp_path) -> None:
    from benchmarks.learn import random_return

    recipe = Recipe.model_validate({
        "env": {"task": "dmc_cartpole_balance", "from_pixels": False},
        "model": {"free_nats": 1.0},  # the dmc_proprio preset
        "train": {"batch_size": 16},
        "tracking": {"enabled": False},
        "run": {"steps": 30_000, "eval_every": 10_000, "eval_episodes": 3, "save_every": 10**9,
                "runs_dir": str(tmp_path)},
    })
    rand = random_return(recipe, 5, seed=10_000)
    run = Run(recipe)
    try:
        run.loop()
    finally:
        run.close()
    final = run.counters.evals[-1][1]
    assert final > max(1.8 * rand, 700), (final, rand, run.counters.evals)
