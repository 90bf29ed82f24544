"""MLflow tracking: params, metrics, text, videos and checkpoints of one training run, with resume.

By default runs go to the embedded SQLite store under ``./mlflow`` (``mlflow/mlflow.db`` plus ``mlflow/artifacts``);
``MLFLOW_TRACKING_URI`` (or an explicit ``tracking_uri``) points at any other store or a tracking server.

A run is identified by its *run name* inside an experiment: :meth:`Tracker.start` reopens the newest active run with
that name (a resumed training job keeps appending to the same curves) or creates it. Everything goes through an
:class:`mlflow.tracking.MlflowClient` bound to the tracker's own URI, never through MLflow's global "active run"
state, so several trackers (and tests) can live in one process without stepping on each other.

Typical use by the training loop::

    tracker = Tracker(experiment="dreamer_rl", run_name="dreamerv3-cheetah_run-s0",
                      tags={"algo": "dreamerv3", "task": "cheetah_run", "seed": "0"})
    resumed = tracker.start()
    tracker.log_params(recipe.model_dump())          # nested dicts become dotted keys
    tracker.log_text(recipe.model_dump_json(indent=2), "recipe.json")
    tracker.log_metrics({"train/loss/image": 0.12}, step=env_frames)
    tracker.log_video("eval/policy", frames, step=env_frames)
    tracker.end()                                    # or end("KILLED") / end("FAILED")
"""

from __future__ import annotations

import enum
import json
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dreamer_rl.errors import UserError
from dreamer_rl.video import write_video

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["Tracker", "default_tracking_uri", "flatten_params"]

_log = logging.getLogger(__name__)

#: Seconds the reachability probe of an http(s) tracking server may take before the server counts as down.
PROBE_TIMEOUT_S = 3.0

#: Limits of one ``log_batch`` request (``mlflow.utils.validation``); kept here so importing this module stays cheap.
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAM_VALUE_LENGTH = 6000

_TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")

#: Experiment tag that makes MLflow's UI open an experiment on its training view (runs, charts) rather than on
#: GenAI traces; set on experiments this tracker creates or finds without it (a user's own value is kept).
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")

# Loggers that talk about schema migrations and store internals on every fresh database; users see the progress
# bar, not these.
_NOISY_LOGGERS = ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils", "mlflow.store.db.db_types")


def default_tracking_uri() -> str:
    """The tracking URI to use when none is given.

    ``$MLFLOW_TRACKING_URI`` if it is set (and not empty); otherwise the embedded SQLite store
    ``sqlite:///<cwd>/mlflow/mlflow.db``, creating ``./mlflow/`` if needed. Artifacts of that store go under
    ``./mlflow/artifacts`` (see :class:`Tracker`).
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    directory = Path.cwd() / "mlflow"
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


def flatten_params(params: Mapping[str, object], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings into dotted keys with string values, as MLflow params.

    ``{"model": {"rssm": {"deter": 512}}, "seed": 0}`` becomes ``{"model.rssm.deter": "512", "seed": "0"}``.
    Lists and tuples are written as JSON, ``None`` as ``"None"``; values longer than MLflow's limit are cut.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                flat.update(flatten_params(value, prefix=f"{name}."))
            else:
                flat[name] = "{}"
            continue
        flat[name] = _param_value(value)
    return flat


def _param_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = str(value)
    elif isinstance(value, Path):
        text = str(value)
    elif isinstance(value, enum.Enum):
        text = str(value.value)
    else:
        text = str(value)
    return text[:_MAX_PARAM_VALUE_LENGTH]


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _quiet_mlflow() -> None:
    """Turn down MLflow's and alembic's INFO chatter (schema migrations, store set-up)."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow(\.|$)")


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or ``None`` for other URIs and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _probe_http(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` if an http(s) server answers at ``uri`` (with any HTTP status), else a short reason why not."""
    url = uri.rstrip("/") + "/health"
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered, if only with 401/404: the server is up
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"no answer within {timeout:g} s"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, socket.gaierror):
            return f"unknown host: {_one_line(reason)}"
        return _one_line(reason)
    except (socket.timeout, TimeoutError):
        return f"no answer within {timeout:g} s"
    except (OSError, ValueError) as exc:
        return _one_line(exc)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Tracker:
    """One MLflow run of a training job: created on the first start, reopened on later starts with the same name.

    Args:
        experiment: MLflow experiment name; created if missing (restored if it was deleted).
        run_name: identifies the run inside the experiment; a second tracker with the same name resumes it.
        tags: run tags, e.g. ``{"algo": ..., "task": ..., "seed": ...}``; ``mlflow.runName`` is added.
        tracking_uri: any MLflow tracking URI; default :func:`default_tracking_uri`. For a ``sqlite:///`` store,
            new experiments keep their artifacts in ``artifacts/`` next to the database file.

    Nothing is contacted before :meth:`start`. All logging methods need a started, not yet ended tracker.
    """

    def __init__(
        self,
        *,
        experiment: str,
        run_name: str,
        tags: dict[str, str],
        tracking_uri: str | None = None,
    ) -> None:
        if not experiment.strip():
            raise UserError("the MLflow experiment name is empty; give a name such as 'dreamer_rl'")
        if not run_name.strip():
            raise UserError("the MLflow run name is empty; give a name such as 'dreamerv3-cheetah_run-s0'")
        self.experiment = experiment
        self.run_name = run_name
        self.tags = {str(k): str(v) for k, v in tags.items()}
        self._uri_from_env = tracking_uri is None and bool(os.environ.get("MLFLOW_TRACKING_URI", "").strip())
        self.tracking_uri = tracking_uri if tracking_uri is not None else default_tracking_uri()
        self.experiment_id: str | None = None
        self.resumed = False
        self._client: MlflowClient | None = None
        self._run_id: str | None = None
        self._ended = False
        self._params: dict[str, str] = {}
        self._params_loaded = False
        self._previous_status: tuple[str, int | None] | None = None
        #: On a resumed run, the largest step any metric of the run already has (``-1`` on a new run): points at or
        #: below it are dropped, so a job that redoes the frames after its last checkpoint does not log them twice.
        self.logged_until = -1

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The MLflow run id (available after :meth:`start`)."""
        if self._run_id is None:
            raise RuntimeError("Tracker.run_id is only available after Tracker.start()")
        return self._run_id

    @property
    def client(self) -> MlflowClient:
        """The :class:`~mlflow.tracking.MlflowClient` bound to this tracker's URI (after :meth:`start`)."""
        if self._client is None:
            raise RuntimeError("Tracker.client is only available after Tracker.start()")
        return self._client

    def start(self) -> bool:
        """Open the run: resume the newest active run named ``run_name`` (return ``True``) or create it (``False``).

        Raises:
            UserError: the tracking server does not answer, or the store cannot be opened.
        """
        if self._run_id is not None:
            return self.resumed
        client, experiment_id = self.open_experiment()

        run = self._find_run(client, experiment_id)
        tags = {**self.tags, "mlflow.runName": self.run_name}
        if run is None:
            run = client.create_run(experiment_id, run_name=self.run_name, tags=tags)
            self.resumed = False
            self._params_loaded = True  # a fresh run has no params
        else:
            self.resumed = True
            info = run.info
            self._previous_status = (info.status, info.end_time)
            if info.status != "RUNNING":
                client.update_run(info.run_id, status="RUNNING")
            self._set_tags(client, info.run_id, tags)
            self._params = dict(run.data.params)
            self._params_loaded = True
            self.logged_until = self._last_logged_step(client, info.run_id, run.data.metrics)
        self._run_id = run.info.run_id
        self._ended = False
        return self.resumed

    def open_experiment(self) -> tuple[MlflowClient, str]:
        """Open the store (creating a SQLite database and its tables if new) and the experiment, without a run.

        Several processes that start on a fresh SQLite store at once race to create its tables; a parent that
        calls this first (``recipes.sweep`` does, before its workers) leaves them nothing to create.
        """
        self._check_reachable()
        _quiet_mlflow()
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        sqlite_db = _sqlite_path(self.tracking_uri)
        if sqlite_db is not None:
            sqlite_db.parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MlflowClient(tracking_uri=self.tracking_uri)
            experiment_id = self._experiment_id(client, sqlite_db)
        except MlflowException as exc:
            raise UserError(
                f"cannot open the MLflow tracking store at {self.tracking_uri} ({_one_line(exc.message)}); "
                "check the URI or unset MLFLOW_TRACKING_URI to use the local store under ./mlflow"
            ) from exc
        self._client = client
        self.experiment_id = experiment_id
        return client, experiment_id

    def ui_hint(self) -> str:
        """Where to see this run: its page in the MLflow UI, in the UI's training view (``workflowType``; MLflow
        3.17's UI otherwise opens a fresh browser on its GenAI overview), e.g. ``MLflow run 'x': http://host:5000/#/
        experiments/1/runs/<id>?workflowType=machine_learning``; for a local store with the ``mlflow ui`` command
        that serves it."""
        page = f"#/experiments/{self.experiment_id}/runs/{self.run_id}?workflowType=machine_learning"
        if self.tracking_uri.lower().startswith(("http://", "https://")):
            return f"MLflow run '{self.run_name}': {self.tracking_uri.rstrip('/')}/{page}"
        return (f"MLflow run '{self.run_name}': mlflow ui --backend-store-uri {self.tracking_uri}, then "
                f"http://127.0.0.1:5000/{page}")

    def end(self, status: str = "FINISHED") -> None:
        """Close the run with ``status`` (``"FINISHED"``, ``"KILLED"`` or ``"FAILED"``); a second call does nothing."""
        status = status.upper()
        if status not in _TERMINAL_STATUSES:
            raise ValueError(f"status must be one of {_TERMINAL_STATUSES}, got {status!r}")
        if self._run_id is None or self._ended:
            return
        self._ended = True
        self.client.set_terminated(self._run_id, status)

    # -- logging ---------------------------------------------------------------------------------------------

    def log_params(self, params: dict[str, object]) -> None:
        """Log params, nested dicts flattened to dotted keys (see :func:`flatten_params`).

        MLflow params are immutable: keys already logged with the same value are skipped. If any value differs
        (the recipe changed between a run and its resume) nothing is logged and :class:`UserError` names the keys;
        a resumed run is then put back to the status it had before :meth:`start` and the tracker is closed (a later
        :meth:`end` does nothing), so the earlier run is left exactly as it was.
        """
        run_id = self._active_run_id()
        flat = flatten_params(params)
        if not self._params_loaded:
            self._params = dict(self.client.get_run(run_id).data.params)
            self._params_loaded = True
        changed = [key for key, value in flat.items() if key in self._params and self._params[key] != value]
        if changed:
            if self.resumed:
                self._reject_resume()
            details = "; ".join(
                f"{key}: {_one_line(repr(self._params[key]), 60)} -> {_one_line(repr(flat[key]), 60)}"
                for key in changed[:5]
            )
            more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
            raise UserError(
                f"run '{self.run_name}' in experiment '{self.experiment}' was started with a different recipe "
                f"({details}{more}); keep the recipe to resume it or choose a new run name"
            )
        new = {key: value for key, value in flat.items() if key not in self._params}
        if not new:
            return
        from mlflow.entities import Param

        for chunk in _chunks([Param(k, v) for k, v in new.items()], _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk, synchronous=True)
        self._params.update(new)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log scalar metrics at ``step`` (environment frames) in one ``log_batch`` request.

        Values may be Python numbers, NumPy scalars or 0-d tensors; ``None`` values are skipped. On a resumed run a
        step at or below :attr:`logged_until` is dropped (its values were logged before the job was stopped).
        """
        run_id = self._active_run_id()
        if not metrics or int(step) <= self.logged_until:
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        step = int(step)
        entries = [
            Metric(str(key), float(value), timestamp, step)  # type: ignore[arg-type]
            for key, value in metrics.items()
            if value is not None
        ]
        for chunk in _chunks(entries, _MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk, synchronous=True)

    def log_series(self, key: str, points: list[tuple[int, float]]) -> None:
        """Log several values of one metric, each at its own step (e.g. every episode's return at the frame it ended),
        in as few requests as possible; steps at or below :attr:`logged_until` are dropped."""
        run_id = self._active_run_id()
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        entries = [Metric(key, float(v), timestamp, int(s)) for s, v in points if int(s) > self.logged_until]
        for chunk in _chunks(entries, _MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk, synchronous=True)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as the artifact ``artifact_file`` (e.g. the resolved recipe as ``recipe.json``)."""
        self.client.log_text(self._active_run_id(), text, artifact_file)

    def log_video(self, key: str, frames: np.ndarray, step: int, fps: int = 20) -> str:
        """Store ``frames`` (uint8 [T, H, W, 3]) as ``videos/<key with / as _>_<step:09d>.mp4`` and return that path.

        The mp4 is H.264/yuv420p (plays in browsers), frame sizes padded to multiples of 16. Without an ffmpeg
        binary the video is written as a GIF instead (same name, ``.gif``).
        """
        run_id = self._active_run_id()
        stem = f"{key.strip('/').replace('/', '_')}_{int(step):09d}"
        if int(step) <= self.logged_until:  # this step's video was logged before the job was stopped
            return f"videos/{stem}.mp4"
        with tempfile.TemporaryDirectory(prefix="dreamer_rl_video_") as tmp:
            path = write_video(Path(tmp) / f"{stem}.mp4", frames, fps)
            self.client.log_artifact(run_id, str(path), artifact_path="videos")
            return f"videos/{path.name}"

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a local file (or a whole directory) into the run's artifacts, under ``artifact_path`` if given."""
        run_id = self._active_run_id()
        path = Path(local_path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            if not path.is_file():
                raise FileNotFoundError(f"no such file to log as an artifact: {path}")
            self.client.log_artifact(run_id, str(path), artifact_path)

    # -- internals -------------------------------------------------------------------------------------------

    def _active_run_id(self) -> str:
        if self._run_id is None:
            raise RuntimeError("call Tracker.start() before logging")
        if self._ended:
            raise RuntimeError(f"the MLflow run {self._run_id} has ended; start a new Tracker to log again")
        return self._run_id

    def _check_reachable(self) -> None:
        uri = self.tracking_uri
        if not uri.lower().startswith(("http://", "https://")):
            return
        reason = _probe_http(uri)
        if reason is None:
            return
        fix = (
            "start it or unset MLFLOW_TRACKING_URI to use the local store under ./mlflow"
            if self._uri_from_env
            else "start it or leave the tracking URI unset to use the local store under ./mlflow"
        )
        raise UserError(f"MLflow tracking server at {uri} does not answer ({reason}); {fix}")

    def _experiment_id(self, client: MlflowClient, sqlite_db: Path | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            if EXPERIMENT_KIND_TAG[0] not in experiment.tags:
                client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND_TAG)
            return str(experiment.experiment_id)
        location = str((sqlite_db.parent / "artifacts").resolve()) if sqlite_db is not None else None
        try:
            return str(client.create_experiment(self.experiment, artifact_location=location,
                                                tags=dict([EXPERIMENT_KIND_TAG])))
        except MlflowException:
            # another process created it between our lookup and create
            experiment = client.get_experiment_by_name(self.experiment)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    @staticmethod
    def _last_logged_step(client: MlflowClient, run_id: str, metrics: Mapping[str, float]) -> int:
        """The largest step of any metric of the run (one history query per metric key), ``-1`` if none."""
        last = -1
        for key in metrics:
            for point in client.get_metric_history(run_id, key):
                last = max(last, int(point.step))
        return last

    def _find_run(self, client: MlflowClient, experiment_id: str) -> Any:
        """The newest active run named ``run_name`` in the experiment, or ``None``."""
        name = self.run_name
        if "'" not in name:
            filter_string = f"attributes.run_name = '{name}'"
        elif '"' not in name:
            filter_string = f'attributes.run_name = "{name}"'
        else:
            filter_string = ""
        runs = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000, order_by=["attributes.start_time DESC"]
        )
        for run in runs:
            if run.info.run_name == name:
                return run
        return None

    @staticmethod
    def _set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)

    def _reject_resume(self) -> None:
        """Put a resumed run back as it was before :meth:`start` and close this tracker without touching it."""
        if self._run_id is None:
            return
        if self._previous_status is not None:
            status, end_time = self._previous_status
            if status in _TERMINAL_STATUSES:
                self.client.set_terminated(self._run_id, status, end_time=end_time)
        self._ended = True

    def __repr__(self) -> str:
        state = "not started" if self._run_id is None else ("ended" if self._ended else f"run {self._run_id}")
        return f"Tracker(experiment={self.experiment!r}, run_name={self.run_name!r}, {state})"

