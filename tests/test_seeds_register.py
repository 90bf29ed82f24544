"""Bad ``--run.seed`` input, and the model registry: ``--tracking.register true`` registers the final agent, and
``--eval --checkpoint models:/<name>/<version>`` loads it back. (Seed sweeps: ``test_research_workflow.py``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import figures, run_recipe

BASE = ["--task", "cartpole_balance", "--preset", "dmc_proprio", "debug", "--run.steps", "400",
        "--tracking.video", "false"]


def _client(cwd: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{cwd / 'mlflow' / 'mlflow.db'}")


def test_bad_seed_messages(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    from recipes.dmc import main

    monkeypatch.chdir(tmp_path)
    for args, message in [(["--run.seed", "0", "0"], "--run.seed lists a seed twice (0 0); give each seed once"),
                          (["--run.seed", "1", "x"], "bad value for run.seed: 'x' (seeds are integers"),
                          (["--run.seed", "0", "1", "--seeds-parallel", "0"],
                           "--seeds-parallel must be at least 1, got 0")]:
        with pytest.raises(SystemExit):
            main([*BASE, *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {message}"), err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow").exists()


def test_register_and_evaluate_the_registered_agent(tmp_path: Path) -> None:
    out = run_recipe(tmp_path, *BASE, "--run.name", "reg", "--tracking.register", "true")
    assert out.returncode == 0, out.stderr[-3000:]
    uri = figures(out.stdout)["registered_model"]
    assert uri == "models:/dreamer_v1-dmc_cartpole_balance/1"
    client = _client(tmp_path)
    version = client.get_model_version("dreamer_v1-dmc_cartpole_balance", "1")
    run = client.get_run(version.run_id)
    assert run.info.run_name == "reg" and run.data.tags["registered_model"] == uri
    assert version.tags["task"] == "dmc_cartpole_balance"

    from_model = run_recipe(tmp_path, "--eval", "--checkpoint", uri)
    assert from_model.returncode == 0, from_model.stderr[-3000:]
    from_file = run_recipe(tmp_path, "--eval", "--checkpoint", "runs/reg/checkpoints/latest.pt")
    assert figures(from_model.stdout)["eval_return"] == figures(from_file.stdout)["eval_return"]
    assert "Traceback" not in from_model.stderr

    missing = run_recipe(tmp_path, "--eval", "--checkpoint", "models:/nope/1")
    assert missing.returncode == 2
    lines = missing.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot load the MLflow model models:/nope/1") and "Traceback" not in missing.stderr


def test_registered_model_loads_as_pyfunc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mlflow.pyfunc.load_model`` gives the agent; ``predict`` filters an observation sequence to actions."""
    import mlflow.pyfunc

    from dreamer_rl.training import train
    from recipes import make_recipe

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    recipe = make_recipe("dmc_proprio", "debug", overrides={
        "env.task": "dmc_cartpole_balance", "run.steps": 200, "run.runs_dir": str(tmp_path / "runs"),
        "tracking.video": False, "tracking.register": True, "tracking.registered_name": "cartpole-agent"})
    summary = train(recipe)
    assert summary["registered_model"] == "models:/cartpole-agent/1"
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/cartpole-agent/1")
    finally:
        mlflow.set_tracking_uri(None)
    observations = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    actions = model.predict({"observation": observations})
    assert actions.shape == (7, 1) and np.all(np.abs(actions) <= 1)
    agent = model.unwrap_python_model().agent
    assert type(agent).__name__ == "Dreamer" and not agent.training
