"""End-to-end debug runs of the DreamerV2 / V3 / KL-balance presets, from pixels and from the state vector, through
the DMC recipe as a user runs it: train, checkpoint, resume with a bigger budget, MLflow tagged with the algorithm."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dreamer_rl.checkpoint import load_checkpoint
from tests.helpers import figures, run_recipe_here

CASES = [
    ("dreamer_v3", "dmc_proprio", True),
    ("dreamer_v3", "dmc_vision", True),
    ("dreamer_v2", "dmc_proprio", True),
    ("dreamer_v2", "dmc_vision", False),
    ("kl_balance", "dmc_proprio", False),
]


@pytest.mark.parametrize("algo,domain,resume", CASES, ids=[f"{a}-{d}" for a, d, _ in CASES])
def test_preset_debug_run(tmp_path: Path, algo: str, domain: str, resume: bool) -> None:
    args = ["--task", "cartpole_balance", "--preset", algo, domain, "debug", "--run.name", "p",
            "--run.eval_every", "400", "--run.save_every", "300", "--tracking.video", "false",
            "--env.max_episode_frames", "100"]
    first = run_recipe_here(tmp_path, *args, "--run.steps", "400")
    assert first.returncode == 0, first.stderr[-3000:]
    out = figures(first.stdout)
    assert int(out["frames"]) == 400 and int(out["updates"]) == 2 + int(0.05 * 200)
    ckpt = load_checkpoint(tmp_path / "runs" / "p" / "checkpoints" / "latest.pt")
    assert ckpt["recipe"]["run"]["algo"] == algo
    assert ckpt["obs_key"] == ("pixels" if domain == "dmc_vision" else "observation")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("dreamer_rl").experiment_id])
    assert run.data.tags["algo"] == algo
    kl_keys = ("train/loss/dyn", "train/loss/rep") if algo == "dreamer_v3" else ("train/loss/kl",)
    for key in (*kl_keys, "train/loss/image", "train/loss/reward", "train/loss/actor", "train/loss/value",
                "eval/return"):
        assert key in run.data.metrics, key
    if not resume:
        return
    second = run_recipe_here(tmp_path, *args, "--run.steps", "500")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed p at 400 frames" in second.stderr
    out = figures(second.stdout)
    assert int(out["frames"]) == 500 and int(out["updates"]) == 2 + int(0.05 * 300)
    resumed = load_checkpoint(tmp_path / "runs" / "p" / "checkpoints" / "latest.pt")
    if algo == "dreamer_v3":  # the joint optimiser's state and the slow critic's schedule travel with the run
        assert set(resumed["optim"]) == {"all"}
        assert resumed["agent"]["slow_value._extra_state"]["count"] == int(out["updates"])
