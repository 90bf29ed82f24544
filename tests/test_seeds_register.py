"""Bad ``--run.seed`` input, and the model registry: ``--tracking.register true`` registers the final agent, and
``--eval --checkpoint models:/<name>/<version>`` loads it back. (Seed sweeps: ``test_research_workflow.py``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import figures

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


def test_register_evaluate_and_load_the_registered_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The command line registers the final agent; ``--eval`` of ``models:/...`` gives the checkpoint's return;
    ``mlflow.pyfunc.load_model`` gives the agent, whose ``predict`` filters an observation sequence to actions."""
    import mlflow.pyfunc

    from recipes.dmc import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main([*BASE, "--run.name", "reg", "--tracking.register", "true"]) == 0
    uri = figures(capsys.readouterr().out)["registered_model"]
    assert uri == "models:/dreamer_v1-dmc_cartpole_balance/1"
    client = _client(tmp_path)
    version = client.get_model_version("dreamer_v1-dmc_cartpole_balance", "1")
    run = client.get_run(version.run_id)
    assert run.info.run_name == "reg" and run.data.tags["registered_model"] == uri
    assert version.tags["task"] == "dmc_cartpole_balance"

    assert main(["--eval", "--checkpoint", uri]) == 0
    from_model = figures(capsys.readouterr().out)
    assert main(["--eval", "--checkpoint", "runs/reg/checkpoints/latest.pt"]) == 0
    assert from_model["eval_return"] == figures(capsys.readouterr().out)["eval_return"]

    with pytest.raises(SystemExit) as exit_info:
        main(["--eval", "--checkpoint", "models:/nope/1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot load the MLflow model models:/nope/1"), err

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    try:
        model = mlflow.pyfunc.load_model(uri)
    finally:
        mlflow.set_tracking_uri(None)
    observations = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    actions = model.predict({"observation": observations})
    assert actions.shape == (7, 1) and np.all(np.abs(actions) <= 1)
    agent = model.unwrap_python_model().agent
    assert type(agent).__name__ == "Dreamer" and not agent.training
