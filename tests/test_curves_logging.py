"""Curves that are right: every training episode is logged at the frame it ended, a resumed run never logs a step a
second time, runs carry their provenance, and long runs print a one-line summary at every evaluation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dreamer_rl.training import Run, eval_summary
from recipes import make_recipe


def _recipe(tmp_path: Path, steps: int):
    return make_recipe("dmc_proprio", "debug", overrides={
        "env.task": "dmc_cartpole_balance", "run.steps": steps, "run.name": "curves", "run.log_every": 600,
        "run.save_every": 400, "run.runs_dir": str(tmp_path / "runs"), "tracking.video": False})


def _train(recipe, status: str = "FINISHED") -> None:
    run = Run(recipe)
    try:
        run.loop()
    finally:
        run.close(status)


def test_every_episode_logged_once_across_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    real_save = Run.save
    # the first session's last checkpoint is at 400 frames, but it logged up to 1000: as if killed after logging
    monkeypatch.setattr(Run, "save", lambda self: real_save(self) if self.counters.frames <= 400 else None)
    _train(_recipe(tmp_path, 1000), "KILLED")
    monkeypatch.setattr(Run, "save", real_save)
    with caplog.at_level(logging.INFO, logger="dreamer_rl.training"):
        _train(_recipe(tmp_path, 1400))  # resumes at 400 frames and redoes 400..1000

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("dreamer_rl")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([experiment.experiment_id])
    # debug episodes are 200 frames (100 steps at action repeat 2); the log clock (600 frames) does not matter
    returns = client.get_metric_history(run.info.run_id, "train/return")
    assert [m.step for m in returns] == [200, 400, 600, 800, 1000, 1200, 1400]
    lengths = client.get_metric_history(run.info.run_id, "train/length")
    assert {m.value for m in lengths} == {200.0}
    for key in run.data.metrics:  # no curve steps back or repeats a step after the resume
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == sorted(set(steps)), (key, steps)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/return")] == [500, 1000, 1400]

    tags = run.data.tags
    assert tags["group"] == "curves" and tags["seed"] == "0" and tags["algo"] == "dreamer_v1"
    assert len(tags["mlflow.source.git.commit"]) == 40 and tags["git_dirty"] in ("true", "false")
    assert "pytest" in tags["command"] or "python" in tags["command"]
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("eval at")]
    assert summaries and summaries[-1].startswith("eval at 1400/1400 frames: return ")
    assert "frames/s, ETA 0:00:00" in summaries[-1]


def test_eval_summary_line() -> None:
    line = eval_summary(10_000, 100_000, 204.71, 1, 6.25)
    assert line == "eval at 10000/100000 frames: return 204.7 over 1 episodes, 6.2 frames/s, ETA 4:00:00"
    assert eval_summary(0, 10, 1.0, 2, float("nan")).endswith("nan frames/s, ETA ?")
