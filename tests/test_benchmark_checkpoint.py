"""Benchmarks on saved runs: ``benchmarks.update_speed --checkpoint PATH`` times updates on a checkpoint made by a
debug run; ``benchmarks.learn`` resumes a run with the recipe it recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, figures, recipe_env, run_recipe_here


@pytest.mark.parametrize("algo", ["dreamer_v1", "dreamer_v3"])
def test_update_speed_on_a_debug_checkpoint(tmp_path: Path, algo: str) -> None:
    run = run_recipe_here(tmp_path, "--task", "cartpole_balance", "--preset", algo, "dmc_proprio", "debug",
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


def test_learn_resumes_the_recorded_recipe(tmp_path) -> None:
    """A benchmark run keeps the recipe it was started with when a preset changes between sittings."""
    import json

    from benchmarks.learn import learn_recipe, recorded_recipe

    recipe = learn_recipe("dmc_cartpole_swingup", 20_000, None, None, 5000, 1, False, 0, str(tmp_path), keep=True,
                          preset="planet")
    assert recorded_recipe(recipe) is recipe  # a new run
    stored = recipe.model_dump(mode="json")
    stored["model"]["image_bits"] = 8  # as recorded before the preset changed
    del stored["model"]["transition"]  # a field this version has and the recorded one lacked
    (tmp_path / recipe.run_name).mkdir()
    (tmp_path / recipe.run_name / "recipe.json").write_text(json.dumps(stored))
    longer = learn_recipe("dmc_cartpole_swingup", 50_000, None, None, 5000, 1, False, 0, str(tmp_path), keep=True,
                          preset="planet")
    resumed = recorded_recipe(longer)
    assert resumed.model.image_bits == 8 and resumed.model.transition == "rssm"
    assert resumed.run.steps == 50_000 and resumed.run_name == recipe.run_name
    # the speed settings are this command's, not the recorded ones (no part of the curve's recipe)
    faster = recorded_recipe(learn_recipe("dmc_cartpole_swingup", 50_000, None, None, 5000, 1, False, 0,
                                          str(tmp_path), keep=True, preset="planet", precision="bf16",
                                          compile="default"))
    assert faster.train.precision == "bf16" and faster.train.compile == "default"
    assert faster.model.image_bits == 8 and faster.run_name == recipe.run_name
