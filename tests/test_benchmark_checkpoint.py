"""``python -m benchmarks.update_speed --checkpoint PATH`` times updates on a checkpoint made by a debug run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, figures, recipe_env, run_recipe


@pytest.mark.parametrize("algo", ["dreamer_v1", "dreamer_v3"])
def test_update_speed_on_a_debug_checkpoint(tmp_path: Path, algo: str) -> None:
    run = run_recipe(tmp_path, "--task", "cartpole_balance", "--preset", algo, "dmc_proprio", "debug",
                     "--run.name", "ck", "--run.steps", "300", "--run.runs_dir", str(tmp_path / "runs"),
                     "--tracking.enabled", "false")
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = tmp_path / "runs" / "ck" / "checkpoints" / "latest.pt"

    out = subprocess.run([sys.executable, "-m", "benchmarks.update_speed", "--checkpoint", str(ckpt),
                          "--warmup", "0", "--iters", "1"], cwd=REPO, env=recipe_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = figures(out.stdout)
    assert float(got["sec_per_update_fresh"]) > 0 and float(got["sec_per_update_trained"]) > 0
    # cartpole from the state vector: 5 observation dims, 1 action, read off the stored weights
    assert got["obs_shape"] == "5" and got["action_dim"] == "1" and got["batch"] == "4x10"
    assert int(got["trained_updates"]) > 0 and got["algo"] == algo
