"""Reading training runs back from MLflow: the store, the experiment, its runs and their metric histories.

Everything goes through one :class:`mlflow.tracking.MlflowClient` bound to a tracking URI, so the same code reads
the embedded SQLite store (``sqlite:///<cwd>/mlflow/mlflow.db``), a file store or a tracking server
(``MLFLOW_TRACKING_URI=http://host:5000``). Nothing here writes: a missing store is an error, not created.

A training run (see :mod:`dreamer_rl.training`) is one MLflow run with tags ``algo``, ``task`` and ``seed``, the
flattened recipe as params (``env.task``, ``run.seed``, ...) and metrics whose *step is the number of env frames*
(``eval/return`` at each evaluation, ``train/return`` at the end of every episode, ``eval/human_normalized`` on
``atari_`` tasks). Runs that are still ``RUNNING`` are read like finished ones (curves of long runs are plotted
while they train); deleted runs are not read.

Selecting runs (:func:`select_runs`) applies, in order: ``--runs`` (run names or ids), ``--tasks`` (exact task
tags, the name without its suite prefix, or shell-style globs such as ``dmc_*``), the method key (``--methods-by``:
a tag, else a param, or an explicit ``tags.X`` / ``params.X``; runs lacking it are skipped with a warning),
``--methods`` (names or globs) and finally the metric (runs that have not logged it yet are skipped with a
warning). Each filter that leaves nothing raises :class:`~dreamer_rl.errors.UserError` naming that filter.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dreamer_rl.errors import UserError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["Run", "Selection", "describe", "find_experiment", "list_runs", "metric_history", "open_store", "read_uri",
           "select_runs", "suite_of", "task_matches"]

#: Suites whose prefix (``dmc_``, ...) a task name may be given without.
SUITE_PREFIXES = ("dmc", "gym", "atari")

#: Runs per ``search_runs`` page (MLflow's largest page for the SQL stores and the REST API).
PAGE_SIZE = 1000


@dataclass
class Run:
    """One MLflow run as the analysis needs it; ``metrics`` holds each metric's latest value."""

    run_id: str
    run_name: str
    status: str
    start_time: int
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    method: str = ""

    @property
    def task(self) -> str:
        return self.tags.get("task") or self.params.get("env.task", "")

    @property
    def algo(self) -> str:
        return self.tags.get("algo") or self.params.get("run.algo", "")

    @property
    def seed(self) -> str:
        return self.tags.get("seed") or self.params.get("run.seed", "")

    def lookup(self, key: str) -> str | None:
        """The value of a tag or param: ``tags.X`` / ``params.X`` explicitly, else the tag ``X``, else the param."""
        if key.startswith("tags."):
            return self.tags.get(key[5:])
        if key.startswith("params."):
            return self.params.get(key[7:])
        return self.tags.get(key, self.params.get(key))


@dataclass
class Selection:
    """The runs left after the filters, and the warnings (one line each) about runs that were skipped."""

    runs: list[Run]
    warnings: list[str] = field(default_factory=list)


def read_uri(uri: str | None = None) -> str:
    """The tracking URI to read: ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow/mlflow.db``.

    Unlike :func:`dreamer_rl.tracking.default_tracking_uri` this never creates ``./mlflow/``.
    """
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return env or f"sqlite:///{Path.cwd() / 'mlflow' / 'mlflow.db'}"


def _no_store(uri: str, where: str) -> UserError:
    return UserError(f"there is no MLflow store at {where} ({uri}); train first (python -m recipes.dmc ...) or set "
                     f"MLFLOW_TRACKING_URI to the store the runs were logged to")


def open_store(uri: str) -> MlflowClient:
    """A client for an existing store; :class:`UserError` if there is none (a missing SQLite file or directory,
    a server that does not answer). Nothing is created."""
    from dreamer_rl.tracking import _one_line, _probe_http, _quiet_mlflow, _sqlite_path

    lower = uri.lower()
    if lower.startswith("sqlite:"):
        db = _sqlite_path(uri)
        if db is not None and not db.is_file():
            raise _no_store(uri, str(db))
    elif lower.startswith(("http://", "https://")):
        reason = _probe_http(uri)
        if reason is not None:
            raise UserError(f"MLflow tracking server at {uri} does not answer ({reason}); start it or set "
                            f"MLFLOW_TRACKING_URI to a running server or store")
    elif "://" not in uri or lower.startswith("file:"):  # a file store: a directory of experiments
        path = Path(uri.removeprefix("file://").removeprefix("file:"))
        if not path.is_dir():
            raise _no_store(uri, str(path))
    _quiet_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri=uri)
    except MlflowException as exc:
        raise UserError(f"cannot open the MLflow store at {uri} ({_one_line(exc.message)})") from exc


def find_experiment(client: MlflowClient, name: str) -> str:
    """The id of the active experiment ``name``; :class:`UserError` listing the available ones otherwise."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    from dreamer_rl.tracking import _one_line

    try:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None and experiment.lifecycle_stage == "active":
            return str(experiment.experiment_id)
        names = sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY))
    except MlflowException as exc:
        raise UserError(f"cannot read the MLflow store ({_one_line(exc.message)})") from exc
    shown = ", ".join(names[:20]) + (f" (and {len(names) - 20} more)" if len(names) > 20 else "")
    raise UserError(f"no experiment named {name!r} in the MLflow store; available: {shown or 'none'}")


def list_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    """Every active (not deleted) run of the experiment, oldest first, following ``search_runs``' pages."""
    from mlflow.entities import ViewType

    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs([experiment_id], filter_string="", run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=PAGE_SIZE, order_by=["attributes.start_time ASC"], page_token=token)
        for r in page:
            info, data = r.info, r.data
            runs.append(Run(run_id=info.run_id, run_name=info.run_name or data.tags.get("mlflow.runName", ""),
                            status=info.status, start_time=int(info.start_time or 0), tags=dict(data.tags),
                            params=dict(data.params), metrics=dict(data.metrics)))
        token = page.token
        if not token:
            return runs


def metric_history(client: MlflowClient, run_id: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one metric, sorted by step (then by logging time): steps are env frames (int64),
    values float64. A step logged twice (a resumed run re-evaluating) keeps both entries."""
    history = client.get_metric_history(run_id, metric)
    history = sorted(history, key=lambda m: (m.step, m.timestamp))
    steps = np.array([m.step for m in history], dtype=np.int64)
    values = np.array([m.value for m in history], dtype=np.float64)
    return steps, values


def suite_of(task: str) -> str:
    """``dmc_cheetah_run`` -> ``dmc``; ``""`` when the name has no known suite prefix."""
    head = task.split("_", 1)[0]
    return head if head in SUITE_PREFIXES and "_" in task else ""


def task_matches(task: str, pattern: str) -> bool:
    """Exact name, the name without its suite prefix (``cheetah_run`` for ``dmc_cheetah_run``) or a glob."""
    if task == pattern or fnmatch.fnmatchcase(task, pattern):
        return True
    suite = suite_of(task)
    bare = task[len(suite) + 1:] if suite else task
    return bare == pattern or fnmatch.fnmatchcase(bare, pattern)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def _listing(values: Sequence[str], limit: int = 12) -> str:
    values = sorted(set(values))
    more = f" (and {len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more if values else "none"


def select_runs(runs: Sequence[Run], *, metric: str, methods_by: str = "algo", tasks: Sequence[str] | None = None,
                methods: Sequence[str] | None = None, run_refs: Sequence[str] | None = None,
                experiment: str = "") -> Selection:
    """Apply the filters in the order of the module docstring; sets each kept run's :attr:`Run.method`."""
    where = f" in experiment {experiment!r}" if experiment else ""
    if not runs:
        raise UserError(f"no runs{where}; train first (python -m recipes.dmc ...) or pick another --experiment")
    warnings: list[str] = []
    kept = list(runs)
    if run_refs:
        kept = [r for r in kept if r.run_id in run_refs or r.run_name in run_refs]
        if not kept:
            raise UserError(f"no run{where} has a name or id in --runs {' '.join(run_refs)}; run names: "
                            f"{_listing([r.run_name for r in runs])}")
    if tasks:
        before = kept
        kept = [r for r in kept if any(task_matches(r.task, p) for p in tasks)]
        if not kept:
            raise UserError(f"no runs left after --tasks {' '.join(tasks)}; tasks present: "
                            f"{_listing([r.task for r in before])}")
    keyed = [r for r in kept if r.lookup(methods_by) is not None]
    if not keyed:
        tag_keys = {k for r in kept for k in r.tags if not k.startswith("mlflow.")}
        raise UserError(f"no selected run has a tag or param named {methods_by!r} (--methods-by); tags: "
                        f"{_listing(list(tag_keys))}; params are recipe fields such as env.task or model.latent")
    if len(keyed) < len(kept):
        warnings.append(f"skipped {len(kept) - len(keyed)} run(s) without a tag or param {methods_by!r}")
    kept = keyed
    for r in kept:
        r.method = str(r.lookup(methods_by))
    if methods:
        before = kept
        kept = [r for r in kept if _matches(r.method, methods)]
        if not kept:
            raise UserError(f"no runs left after --methods {' '.join(methods)}; methods (by {methods_by}) present: "
                            f"{_listing([r.method for r in before])}")
    with_metric = [r for r in kept if metric in r.metrics]
    if not with_metric:
        present = [k for r in kept for k in r.metrics]
        raise UserError(f"metric {metric!r} was logged by none of the {len(kept)} selected run(s); metrics that "
                        f"exist: {_listing(present)}")
    if len(with_metric) < len(kept):
        warnings.append(f"skipped {len(kept) - len(with_metric)} run(s) that have not logged {metric!r} yet")
    return Selection(runs=with_metric, warnings=warnings)


def describe(run: Run) -> dict[str, Any]:
    """The identifying fields written to the output files."""
    return {"run_id": run.run_id, "run_name": run.run_name, "task": run.task, "algo": run.algo,
            "method": run.method, "seed": run.seed, "status": run.status}
