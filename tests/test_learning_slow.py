"""Slow learning test (not in CI): DreamerV1 learns cartpole_balance from the state vector.

    python -m pytest -m slow tests/test_learning_slow.py      # ~70 min on a 2-core CPU

The recipe of ``python -m benchmarks.learn`` (``dmc_proprio``, batch 16 x 50, paper defaults otherwise, greedy
evaluation over 3 episodes every 5000 frames), 50k env frames. Measured with it (benchmarks/RESULTS.md): greedy
return 508.8 at 50k frames (582.3 at 100k) against 321.7 for uniform random actions. The test asks for 1.25 x random.
"""

from __future__ import annotations

import pytest

from dreamer_rl.training import Run

pytestmark = pytest.mark.slow


def test_dreamer_v1_learns_cartpole_balance_from_state(tmp_path) -> None:
    from benchmarks.learn import learn_recipe, random_return

    recipe = learn_recipe(frames=50_000, runs_dir=str(tmp_path))
    rand = random_return(recipe, 9, seed=10_000)
    run = Run(recipe)
    try:
        run.loop()
    finally:
        run.close()
    final = run.counters.evals[-1][1]
    assert final > 1.25 * rand, (final, rand, run.counters.evals)
