"""A run killed with SIGKILL mid-training resumes from its last checkpoint, losing at most the frames since then."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from dreamer_rl.checkpoint import load_checkpoint
from tests.helpers import figures, recipe_env, run_recipe_here

ARGS = ["--task", "cartpole_balance", "--preset", "dmc_proprio", "debug", "--run.name", "killed",
        "--run.save_every", "200", "--run.eval_every", "100000", "--run.steps", "3000"]


def test_sigkill_then_resume(tmp_path: Path) -> None:
    ckpt_path = tmp_path / "runs" / "killed" / "checkpoints" / "latest.pt"
    proc = subprocess.Popen([sys.executable, "-m", "recipes.dmc", *ARGS], cwd=tmp_path, env=recipe_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        saved = 0
        while time.time() < deadline:  # wait until training is under way and a few checkpoints were written
            if ckpt_path.exists():
                try:
                    saved = load_checkpoint(ckpt_path)["counters"]["frames"]
                except Exception:  # noqa: BLE001 - the rename is atomic, but be tolerant while polling
                    saved = 0
                if saved >= 800:
                    break
            time.sleep(0.2)
        assert saved >= 800, "the run did not reach 800 frames in time"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    at_kill = load_checkpoint(ckpt_path)  # the file survived the kill intact

    budget = max(1600, at_kill["counters"]["frames"] + 400)
    resumed = run_recipe_here(tmp_path, *ARGS[:-1], str(budget))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    frames = at_kill["counters"]["frames"]
    assert f"resumed killed at {frames} frames, {at_kill['counters']['updates']} updates" in resumed.stderr
    out = figures(resumed.stdout)
    assert int(out["frames"]) == budget
    # the train-ratio clock continued from the checkpoint, not from zero
    assert int(out["updates"]) == 2 + int((int(out["frames"]) - 200) * 0.05)
    final = load_checkpoint(ckpt_path)
    assert final["replay"] != at_kill["replay"]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dreamer_rl")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the same MLflow run, reopened


def test_killed_before_first_checkpoint_starts_over(tmp_path: Path) -> None:
    """Replay files without a checkpoint (a kill during the prefill) do not stop the run from starting again."""
    from dreamer_rl.config import Recipe
    from dreamer_rl.training import Run
    from recipes.presets import PRESETS

    recipe = Recipe.model_validate({
        **PRESETS["debug"],
        "env": {**PRESETS["debug"]["env"], "task": "dmc_cartpole_balance", "from_pixels": False},
        "tracking": {"enabled": False},
        "run": {**PRESETS["debug"]["run"], "steps": 300, "name": "early", "runs_dir": str(tmp_path)},
    })
    stale = tmp_path / "early" / "replay"
    stale.mkdir(parents=True)
    (stale / "observation.memmap").write_bytes(b"\0" * 4096)
    (stale / "meta.json").write_text("{}")
    run = Run(recipe)
    try:
        summary = run.loop()
    finally:
        run.close()
    assert summary["frames"] == 300 and (tmp_path / "early" / "checkpoints" / "latest.pt").exists()
