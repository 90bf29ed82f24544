"""Two runs with the same seed give the same agent; another seed gives another one."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamer_rl.config import Recipe
from dreamer_rl.training import Run
from recipes.presets import PRESETS


def run(tmp: Path, seed: int) -> tuple[dict[str, torch.Tensor], list]:
    recipe = Recipe.model_validate({
        **PRESETS["debug"],
        "env": {**PRESETS["debug"]["env"], "task": "dmc_cartpole_balance", "from_pixels": False},
        "tracking": {"enabled": False},
        "run": {**PRESETS["debug"]["run"], "steps": 500, "seed": seed, "runs_dir": str(tmp)},
    })
    r = Run(recipe)
    try:
        r.loop()
    finally:
        r.close()
    return r.agent.state_dict(), r.counters.evals


def test_same_seed_same_agent(tmp_path: Path) -> None:
    a, evals_a = run(tmp_path / "a", seed=3)
    b, evals_b = run(tmp_path / "b", seed=3)
    c, _ = run(tmp_path / "c", seed=4)
    assert evals_a == evals_b
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(a[k], c[k]) for k in a)
