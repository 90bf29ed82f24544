"""Published baselines (PlaNet, Dreamer v1-v3) stored as data, with a loader that validates them.

Each baseline is one JSON file in ``baseline_data/``; its file stem is the baseline's name
(``dreamer_v3_dmc_proprio``). Schema (see :class:`Baseline`)::

    {"method": "DreamerV3 (published)",      # legend label
     "suite": "dmc_proprio",                 # dmc_proprio | dmc_vision | atari | atari100k (free text)
     "metric": "eval/return",                # the unit of the scores: raw undiscounted episode return
     "source": "paper / table / score file, with repo, path and commit",
     "url": "https://...", "seeds": 5,       # seeds: null when unknown
     "notes": "how the numbers were derived, units, deviations",
     "scores": [{"task": "dmc_cheetah_run", "frames": 500000, "value": 596.0, "std": 43.7}],
     "curves": [{"task": "dmc_cheetah_run", "frames": [20000, ...], "values": [45.1, ...]}],
     "aggregates": [{"name": "mean_return", "frames": 500000, "value": 758.0}]}

Units:

- ``frames`` are environment frames after action repeat: frames = agent steps x action repeat. DMC in these papers
  uses repeat 2 (DreamerV3's "500K steps" on DMC are 500K frames), Atari repeat 4 (Atari100k = 100K agent steps =
  400,000 frames; DreamerV2's 200M = 200M frames). This is the x axis of our own curves.
- ``value`` is the mean over seeds of the raw episode return (not normalised); ``std`` the spread over seeds when
  known. Aggregates carry their unit in their name (``mean_return``, ``human_normalized_median``,
  ``gamer_normalized_mean``; the human/gamer scores are those of ``envs/atari_scores.json``).
- Tasks use our names: ``dmc_<domain>_<task>`` (``dmc_cup_catch`` for ball-in-cup), ``atari_<game>`` in
  snake case (``atari_ms_pacman``), ``gym_<id>``.

Adding a baseline: write ``baseline_data/<name>.json`` following the schema (no ``name`` key needed: the loader sets
it from the file stem), say in ``source`` exactly where every number comes from and in ``notes`` how budgets were
converted to frames, then check it with ``load_baseline_file(path)``. Any JSON file following the schema can also be
passed by path wherever a stored name is accepted.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dreamer_rl.errors import UserError

__all__ = [
    "TASK_PREFIXES",
    "Baseline",
    "BaselineAggregate",
    "BaselineCurve",
    "BaselineScore",
    "baseline_dir",
    "list_baselines",
    "load_baseline_file",
    "load_baselines",
]

#: Suite prefixes of our task names (``envs.registry.SUITES``), repeated here so that reading baselines needs no env
#: dependency.
TASK_PREFIXES: tuple[str, ...] = ("dmc_", "atari_", "gym_")

_CONFIG = ConfigDict(frozen=True, extra="forbid")


def _check_task(task: str) -> str:
    if not task.startswith(TASK_PREFIXES) or task in TASK_PREFIXES:
        raise ValueError(f"task {task!r} must start with one of {', '.join(TASK_PREFIXES)} (e.g. 'dmc_cheetah_run')")
    return task


class BaselineScore(BaseModel):
    """A published score of one task at one budget."""

    model_config = _CONFIG

    task: str  # our task name, e.g. "dmc_cheetah_run"
    frames: int = Field(gt=0)  # env frames (after action repeat) at which the score was reported
    value: float  # the metric's value, mean over seeds
    std: float | None = None  # spread over seeds when known

    @field_validator("task")
    @classmethod
    def _task(cls, v: str) -> str:
        return _check_task(v)


class BaselineCurve(BaseModel):
    """A published learning curve of one task: mean over seeds at increasing env frames."""

    model_config = _CONFIG

    task: str
    frames: list[int]  # increasing, > 0
    values: list[float]  # same length as frames

    @field_validator("task")
    @classmethod
    def _task(cls, v: str) -> str:
        return _check_task(v)

    @model_validator(mode="after")
    def _shape(self) -> BaselineCurve:
        if len(self.frames) != len(self.values):
            raise ValueError(f"{len(self.frames)} frames but {len(self.values)} values for {self.task}")
        if not self.frames:
            raise ValueError(f"empty curve for {self.task}")
        if self.frames[0] <= 0 or any(b <= a for a, b in zip(self.frames, self.frames[1:])):
            raise ValueError(f"frames of {self.task} must be positive and strictly increasing")
        return self


class BaselineAggregate(BaseModel):
    """A suite-level number, e.g. the human-normalised median over games at a budget."""

    model_config = _CONFIG

    name: str = Field(min_length=1)  # e.g. "human_normalized_median", "gamer_normalized_mean", "mean_return"
    frames: int = Field(gt=0)
    value: float


class Baseline(BaseModel):
    """One published baseline file (see the module docstring for the schema and units)."""

    model_config = _CONFIG

    name: str  # the file stem, set by the loader
    method: str = Field(min_length=1)  # legend label
    suite: str = Field(min_length=1)  # "dmc_proprio" | "dmc_vision" | "atari" | "atari100k"
    metric: str = Field(min_length=1)  # "eval/return": the scores' unit
    source: str = Field(min_length=1)  # where the numbers come from (repo path and commit for score files)
    url: str = Field(min_length=1)
    seeds: int | None = Field(default=None, gt=0)
    notes: str = ""
    scores: list[BaselineScore]
    curves: list[BaselineCurve] = []
    aggregates: list[BaselineAggregate] = []

    @model_validator(mode="after")
    def _unique(self) -> Baseline:
        # a duplicate would make score_points ambiguous; two sources for one point belong in two files
        seen: set[tuple[str, int]] = set()
        for s in self.scores:
            if (s.task, s.frames) in seen:
                raise ValueError(f"duplicate score for {s.task} at {s.frames} frames")
            seen.add((s.task, s.frames))
        tasks = [c.task for c in self.curves]
        dup = sorted({t for t in tasks if tasks.count(t) > 1})
        if dup:
            raise ValueError(f"more than one curve for {', '.join(dup)}")
        return self

    def tasks(self) -> list[str]:
        """Sorted task names that have a score or a curve."""
        return sorted({s.task for s in self.scores} | {c.task for c in self.curves})

    def score_points(self, task: str) -> list[tuple[int, float]]:
        """``(frames, value)`` of ``task``'s scores, sorted by frames (empty when it has none)."""
        return sorted((s.frames, s.value) for s in self.scores if s.task == task)

    def curve(self, task: str) -> BaselineCurve | None:
        """``task``'s curve, or ``None``."""
        return next((c for c in self.curves if c.task == task), None)


def baseline_dir() -> Path:
    """The directory of the stored baseline files (``dreamer_rl/analysis/baseline_data``)."""
    return Path(__file__).resolve().parent / "baseline_data"


def list_baselines() -> list[str]:
    """Sorted stems of the stored baseline files, e.g. ``["dreamer_v1_dmc_vision", ...]``."""
    return sorted(p.stem for p in baseline_dir().glob("*.json"))


def _error_text(err: ValidationError) -> str:
    """The first pydantic error as ``<field>: <what is wrong>`` (e.g. ``curves.0: 3 frames but 2 values ...``)."""
    e = err.errors()[0]
    loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
    if e["type"] == "extra_forbidden":
        return f"{loc}: unknown field"
    msg = str(e["msg"]).removeprefix("Value error, ")
    if e["type"] in ("missing", "value_error"):
        return f"{loc}: {msg}"
    return f"{loc}: {msg} (got {e.get('input')!r})"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_baseline_file(path: str | Path) -> Baseline:
    """Read and validate one baseline JSON file; its ``name`` is the file stem.

    Raises :class:`~dreamer_rl.errors.UserError` with one line naming the path: ``bad baseline file <path>:
    <field>: <what is wrong>`` for a schema mistake, or the reason when the file cannot be read or is not JSON.
    """
    path = Path(path)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read baseline file {path}: {_one_line(err.strerror or str(err))}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"bad baseline file {path}: not valid JSON: {_one_line(str(err))}") from None
    if not isinstance(data, dict):
        raise UserError(f"bad baseline file {path}: (top level): must be a JSON object, got {type(data).__name__}")
    if "name" in data and data["name"] != path.stem:
        raise UserError(f"bad baseline file {path}: name: {data['name']!r} differs from the file name {path.stem!r}")
    try:
        return Baseline.model_validate({**data, "name": path.stem})
    except ValidationError as err:
        raise UserError(_one_line(f"bad baseline file {path}: {_error_text(err)}")) from None


def _unknown(name: str, available: list[str]) -> UserError:
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return UserError(f"unknown baseline '{name}'; {hint}available: {', '.join(available)} (or a path to a .json file)")


def load_baselines(names: Sequence[str] | None = None) -> list[Baseline]:
    """The named baselines, in the order given (``None`` or ``["all"]``: every stored file, sorted by name).

    An item is a stored stem (``"dreamer_v3_dmc_proprio"``) or a path to a JSON file following the schema. An
    unknown name raises :class:`~dreamer_rl.errors.UserError` listing the stored ones, with a suggestion.
    """
    available = list_baselines()
    if isinstance(names, str):  # a bare string would otherwise be read letter by letter
        names = [names]
    if names is None or list(names) == ["all"]:
        names = available
    out: list[Baseline] = []
    for name in names:
        if name in available:
            out.append(load_baseline_file(baseline_dir() / f"{name}.json"))
        elif name.endswith(".json") or Path(name).is_file():
            if not Path(name).is_file():
                raise UserError(f"cannot read baseline file {name}: no such file")
            out.append(load_baseline_file(name))
        else:
            raise _unknown(name, available)
    return out
