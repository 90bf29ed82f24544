"""Tests of dreamer_rl.tracking against MLflow's real SQLite store (one fresh database for the whole module)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dreamer_rl import tracking
from dreamer_rl.errors import UserError
from dreamer_rl.tracking import Tracker, default_tracking_uri, flatten_params

EXPERIMENT = "dreamer_rl-tests"
TAGS = {"algo": "dreamerv3", "task": "cartpole_swingup", "seed": "0"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working directory whose ./mlflow holds the module's one SQLite store; yields that directory."""
    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield root


def _client(root: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")


def _frames(t: int = 12, h: int = 30, w: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_default_tracking_uri_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert default_tracking_uri() == "http://tracking.example:5000"
    assert not (tmp_path / "mlflow").exists()

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert (tmp_path / "mlflow").is_dir()


def test_flatten_params() -> None:
    flat = flatten_params({"model": {"rssm": {"deter": 512, "act": "silu"}, "units": [1, 2]}, "seed": 0, "x": None})
    assert flat == {"model.rssm.deter": "512", "model.rssm.act": "silu", "model.units": "[1, 2]", "seed": "0",
                    "x": "None"}


def test_new_run_logs_everything(store: Path) -> None:
    tracker = Tracker(experiment=EXPERIMENT, run_name="fresh", tags=TAGS)
    assert tracker.start() is False
    run_id = tracker.run_id
    tracker.log_params({"train": {"lr": 3e-4, "batch": 16}, "env": {"task": "cartpole_swingup"}})
    recipe = json.dumps({"train": {"lr": 3e-4}}, indent=2)
    tracker.log_text(recipe, "recipe.json")
    tracker.log_metrics({"train/loss/image": 1.5, "train/return": np.float32(3.0)}, step=1000)
    tracker.log_metrics({"train/loss/image": 1.25}, step=2000)
    video_path = tracker.log_video("eval/policy", _frames(), step=2000, fps=10)
    assert video_path == "videos/eval_policy_000002000.mp4"
    tracker.end()

    client = _client(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fresh"
    assert run.data.params == {"train.lr": "0.0003", "train.batch": "16", "env.task": "cartpole_swingup"}
    for key, value in {**TAGS, "mlflow.runName": "fresh"}.items():
        assert run.data.tags[key] == value
    history = client.get_metric_history(run_id, "train/loss/image")
    assert [(m.step, m.value) for m in history] == [(1000, 1.5), (2000, 1.25)]
    assert run.data.metrics["train/return"] == 3.0

    # artifacts live under ./mlflow/artifacts and are readable through the client
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(store / "mlflow" / "artifacts")
    local = Path(client.download_artifacts(run_id, "recipe.json", dst_path=str(store / "dl")))
    assert json.loads(local.read_text()) == {"train": {"lr": 3e-4}}
    videos = {f.path: f.file_size for f in client.list_artifacts(run_id, "videos")}
    assert videos.get(video_path, 0) > 0

    # frames are padded to multiples of 16 (30x40 -> 32x48) and the clip has every frame
    import imageio_ffmpeg

    local_video = client.download_artifacts(run_id, video_path, dst_path=str(store / "dl"))
    reader = imageio_ffmpeg.read_frames(local_video)
    meta = reader.__next__()
    n_frames = sum(1 for _ in reader)
    assert meta["size"] == (48, 32)
    assert n_frames == 12


def test_resume_appends_to_the_same_run(store: Path) -> None:
    params = {"train": {"lr": 1e-3}, "seed": 0}
    first = Tracker(experiment=EXPERIMENT, run_name="resumable", tags=TAGS)
    assert first.start() is False
    first.log_params(params)
    first.log_metrics({"train/return": 1.0}, step=100)
    first.end("KILLED")

    second = Tracker(experiment=EXPERIMENT, run_name="resumable", tags=TAGS)
    assert second.start() is True
    assert second.run_id == first.run_id
    second.log_params(params)  # same values: skipped, no error
    second.log_params({"extra": {"note": "added on resume"}})
    second.log_metrics({"train/return": 2.0}, step=200)
    client = _client(store)
    assert client.get_run(second.run_id).info.status == "RUNNING"
    second.end()

    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.001", "seed": "0", "extra.note": "added on resume"}
    history = client.get_metric_history(first.run_id, "train/return")
    assert [(m.step, m.value) for m in history] == [(100, 1.0), (200, 2.0)]
    runs = client.search_runs([run.info.experiment_id], filter_string="attributes.run_name = 'resumable'")
    assert len(runs) == 1


def test_resumed_run_drops_steps_it_already_has(store: Path) -> None:
    """A job killed after logging past its checkpoint redoes those frames; the resumed tracker drops them."""
    first = Tracker(experiment=EXPERIMENT, run_name="redone", tags=TAGS)
    first.start()
    first.log_metrics({"train/fps": 5.0}, step=100)
    first.log_series("train/return", [(150, 1.0), (300, 2.0)])
    first.end("KILLED")
    second = Tracker(experiment=EXPERIMENT, run_name="redone", tags=TAGS)
    second.start()
    assert second.logged_until == 300
    second.log_metrics({"train/fps": 6.0}, step=200)  # redone: dropped
    second.log_series("train/return", [(300, 9.0), (450, 3.0)])
    second.log_metrics({"train/fps": 7.0}, step=400)
    second.end()
    client = _client(store)
    assert [(m.step, m.value) for m in client.get_metric_history(first.run_id, "train/fps")] == [(100, 5.0),
                                                                                                 (400, 7.0)]
    assert [(m.step, m.value) for m in client.get_metric_history(first.run_id, "train/return")] == [
        (150, 1.0), (300, 2.0), (450, 3.0)]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_changed_param_on_resume_raises_and_leaves_the_run_alone(store: Path) -> None:
    first = Tracker(experiment=EXPERIMENT, run_name="changed", tags=TAGS)
    first.start()
    first.log_params({"train": {"lr": 1e-3, "batch": 16}})
    first.end()
    client = _client(store)
    before = client.get_run(first.run_id).info

    second = Tracker(experiment=EXPERIMENT, run_name="changed", tags=TAGS)
    assert second.start() is True
    with pytest.raises(UserError) as excinfo:
        second.log_params({"train": {"lr": 3e-4, "batch": 16, "new_key": 1}})
    message = str(excinfo.value)
    assert "train.lr" in message and "\n" not in message
    assert "train.batch" not in message
    second.end("FAILED")  # what a training loop's error handler does: must not touch the earlier run

    after = client.get_run(first.run_id)
    assert after.info.status == before.status == "FINISHED"
    assert after.info.end_time == before.end_time
    assert after.data.params == {"train.lr": "0.001", "train.batch": "16"}


def test_gif_fallback_without_ffmpeg(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dreamer_rl.video

    monkeypatch.setattr(dreamer_rl.video, "_ffmpeg_exe", lambda: None)
    tracker = Tracker(experiment=EXPERIMENT, run_name="gif", tags=TAGS)
    tracker.start()
    path = tracker.log_video("eval/policy", _frames(t=4)[..., :1], step=7)  # grey frames are accepted too
    tracker.end()
    assert path == "videos/eval_policy_000000007.gif"
    sizes = {f.path: f.file_size for f in _client(store).list_artifacts(tracker.run_id, "videos")}
    assert sizes[path] > 0


def test_unreachable_server_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracker = Tracker(experiment=EXPERIMENT, run_name="unreachable", tags=TAGS)
    began = time.monotonic()
    with pytest.raises(UserError) as excinfo:
        tracker.start()
    assert time.monotonic() - began < 10
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"MLflow tracking server at {uri} does not answer (")
    assert "MLFLOW_TRACKING_URI" in message
    assert not (tmp_path / "mlflow").exists()


def test_silent_server_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as sock:  # accepts connections (kernel backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
        tracker = Tracker(experiment=EXPERIMENT, run_name="silent", tags=TAGS, tracking_uri=uri)
        began = time.monotonic()
        with pytest.raises(UserError, match="does not answer"):
            tracker.start()
        assert time.monotonic() - began < 10
