"""The research workflow on real debug runs: ``--run.seed 0 1`` makes one MLflow run per seed, then
``recipes.plot`` bins and averages them and ``recipes.scores`` reports them, checked against the runs' own metric
histories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import figures, run_recipe, run_recipe_here

ARGS = ["--task", "cartpole_balance", "--preset", "dmc_proprio", "debug", "--run.steps", "600",
        "--tracking.video", "false", "--run.seed", "0", "1", "--run.name", "sweep"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with two seeds of a debug run in ./mlflow."""
    cwd = tmp_path_factory.mktemp("sweep")
    out = run_recipe_here(cwd, *ARGS)
    assert out.returncode == 0, out.stderr[-3000:]
    figs = figures(out.stdout)
    assert figs["runs"] == "2" and figs["seeds"] == "0,1" and figs["frames"] == "600"
    assert float(figs["eval_return_std"]) >= 0
    return cwd


def _runs(cwd: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dreamer_rl")
    return client, sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.info.run_name)


def test_one_run_per_seed(sweep: Path) -> None:
    client, runs = _runs(sweep)
    assert [r.info.run_name for r in runs] == ["sweep-s0", "sweep-s1"]
    assert [r.data.tags["seed"] for r in runs] == ["0", "1"]
    assert {r.data.tags["group"] for r in runs} == {"sweep"}
    assert [r.data.params["run.seed"] for r in runs] == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # the seeds really differ: their training episodes are not the same
    first = [client.get_metric_history(r.info.run_id, "train/return")[0].value for r in runs]
    assert first[0] != first[1]
    assert (sweep / "runs" / "sweep-s1" / "checkpoints" / "latest.pt").exists()


def test_plot_matches_a_hand_computation(sweep: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from recipes.plot import main

    monkeypatch.chdir(sweep)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["--metric", "train/return", "--bins", "400", "--out", "plots"]) == 0
    out = figures(capsys.readouterr().out)
    assert out["runs"] == "2" and out["tasks"] == "1" and out["methods"] == "1"
    for suffix in ("png", "pdf", "json"):
        assert (sweep / "plots" / f"curves.{suffix}").stat().st_size > 1000
    (curve,) = json.loads((sweep / "plots" / "curves.json").read_text())["curves"]
    assert curve["task"] == "dmc_cartpole_balance" and curve["method"] == "dreamer_v1"

    # by hand: episodes end at 200, 400, 600 frames; bins (0, 400] and (400, 800]; a run's bin is the mean of its
    # points there, the curve the mean over the seeds
    client, runs = _runs(sweep)
    per_run = []
    for run in runs:
        points = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/return")}
        assert sorted(points) == [200, 400, 600]
        per_run.append([(points[200] + points[400]) / 2, points[600]])
    expected = np.mean(per_run, axis=0)
    assert curve["x"] == [400, 800]
    np.testing.assert_allclose(curve["mean"], expected, rtol=1e-9)
    np.testing.assert_allclose(curve["std"], np.std(per_run, axis=0), rtol=1e-9)
    assert curve["count"] == [2, 2]


def test_scores_of_the_sweep(sweep: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from recipes.scores import main

    monkeypatch.chdir(sweep)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["--out", "scores.json"]) == 0
    assert figures(capsys.readouterr().out)["runs"] == "2"
    payload = json.loads((sweep / "scores.json").read_text())
    client, runs = _runs(sweep)
    by_name = {r["run_name"]: r for r in payload["runs"]}
    for run in runs:
        evals = [m.value for m in client.get_metric_history(run.info.run_id, "eval/return")]
        row = by_name[run.info.run_name]
        assert row["final"] == pytest.approx(evals[-1]) and row["best"] == pytest.approx(max(evals))
        assert row["task"] == "dmc_cartpole_balance" and row["algo"] == "dreamer_v1" and row["frames"] == 600
        assert row["seed"] in ("0", "1", 0, 1)
    (summary,) = payload["summary"]
    finals = [by_name[n]["final"] for n in ("sweep-s0", "sweep-s1")]
    assert summary["seeds"] == 2
    assert summary["final_mean"] == pytest.approx(np.mean(finals))


def test_plot_through_a_tracking_server(sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``MLFLOW_TRACKING_URI=http://...``: the same curves as from the local store, read through a real server.

    The server is a real ``mlflow server`` process; ``recipes.plot`` runs in this process, as in the tests above."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from recipes.plot import main as plot

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{sweep / 'mlflow' / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "the MLflow server did not start"
                time.sleep(0.5)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        assert plot(["--metric", "train/return", "--bins", "400", "--out", str(tmp_path / "served")]) == 0
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    served = json.loads((tmp_path / "served" / "curves.json").read_text())
    assert served["tracking_uri"] == url
    monkeypatch.chdir(sweep)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert plot(["--metric", "train/return", "--bins", "400", "--out", str(tmp_path / "local")]) == 0
    assert served["curves"] == json.loads((tmp_path / "local" / "curves.json").read_text())["curves"]


def test_seeds_in_parallel_processes(tmp_path: Path) -> None:
    """``--seeds-parallel 2``: both seeds train at once in worker processes, each logging to its own train.log."""
    out = run_recipe(tmp_path, "--task", "cartpole_balance", "--preset", "dmc_proprio", "debug", "--run.steps", "200",
                     "--tracking.video", "false", "--run.seed", "3", "4", "--seeds-parallel", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert figures(out.stdout)["seeds"] == "3,4"
    client, runs = _runs(tmp_path)
    assert [r.info.run_name for r in runs] == ["dreamer_v1-dmc_cartpole_balance-s3", "dreamer_v1-dmc_cartpole_balance-s4"]
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        log = (tmp_path / "runs" / run.info.run_name / "train.log").read_text()
        assert "eval at 200/200 frames" in log
        assert run.data.tags["command"].endswith("--seeds-parallel 2")
