r"""Learning curves binned over env frames and aggregated over seeds (pure NumPy).

The rule
--------
Let :math:`w > 0` be the bin width in env frames (``--bins``) and :math:`(s_i, y_i)` the points of one run's metric
history (:math:`s_i` = env frames at which it was logged, the MLflow step).

*Bins* are placed on one grid starting at frame 0, the same for every run::

    I_1 = [0, w],   I_k = ((k-1)·w, k·w]   for k = 2, 3, ...

right-closed, and a bin is drawn at its **right edge** :math:`x_k = k\,w` (a point of the curve at :math:`x` uses
only data logged at or before :math:`x` frames; an evaluation at exactly 30k frames with ``--bins 30000`` is drawn at
30k). A run covers the bins :math:`k = 1 \dots K_r` with :math:`K_r = \max(1, \lceil \max_i s_i / w \rceil)`, so
its last, possibly partial, bin is kept (a run that is still training shows its latest evaluation).

*The value of a bin* is the mean of the run's points in it,

.. math:: y_{r,k} = \frac{1}{|\{i: s_i \in I_k\}|} \sum_{i:\, s_i \in I_k} y_i ,

and an **empty bin** has no value (NaN; ``null`` in JSON): it is neither zero nor the previous bin's value, and the
drawn line bridges over it.

*Seeds.* Within one (task, method) the runs share the grid, :math:`K = \max_r K_r`. A run contributes to bin
:math:`k` only where it has a value; runs of **different lengths are not padded**: past its own end a shorter (or
still running) run simply stops contributing. With :math:`S_k = \{r : y_{r,k}\ \text{finite}\}` and
:math:`n_k = |S_k|` (``count``):

.. math::

    \mathrm{mean}_k = \frac{1}{n_k}\sum_{r\in S_k} y_{r,k},\qquad
    \mathrm{std}_k = \sqrt{\frac{1}{n_k}\sum_{r\in S_k} (y_{r,k}-\mathrm{mean}_k)^2}\quad(\text{ddof } 0),\qquad
    \min_k,\ \max_k \text{ over } S_k;

:math:`n_k = 0` gives NaN everywhere but ``count``.

Where it comes from
-------------------
This follows the plotting scripts of the Dreamer papers (read, not copied): danijar/dreamerv2
``common/plot.py`` (``--bins 1e6``: borders ``0, w, 2w, ...`` per run, a bin is ``(start, stop]`` drawn at ``stop``,
its value the NaN-mean of the points in it, empty bins NaN; seeds reduced by NaN-mean and NaN-std, shaded
mean ± std) and danijar/dreamer ``plotting.py`` (``--bins 3e4``: the same right-closed bins and mean, seeds pooled so
that a shorter run just stops contributing). Two choices differ from dreamerv2: its last *partial* bin is dropped
and shorter runs are padded with their last value; here, as in danijar/dreamerv3's ``plot.py`` (bins from 0 to the
last step plus a partial bin, empty bins NaN, ``nanmean``/``nanstd`` over seeds without padding), the partial bin
is kept and shorter runs are not padded, so ``count`` always says how many seeds a point rests on. The first bin is
closed at 0 so a point logged at frame 0 is not lost (dreamerv2's ``(0, w]`` would drop it).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BinnedRun", "Curve", "Series", "aggregate", "bin_run", "build_curves", "natural_key", "window_mean"]


@dataclass
class BinnedRun:
    """One run binned: ``x`` bin right edges (env frames), ``y`` bin means (NaN for an empty bin)."""

    run_id: str
    run_name: str
    seed: str
    status: str
    x: np.ndarray
    y: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_name": self.run_name, "seed": self.seed, "status": self.status,
                "x": _json_list(self.x), "y": _json_list(self.y)}


@dataclass
class Curve:
    """The aggregate of one (task, method) over its seeds, per bin (see the module docstring)."""

    task: str
    method: str
    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    runs: list[BinnedRun] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "method": self.method, "seeds": len(self.runs), "x": _json_list(self.x),
                "mean": _json_list(self.mean), "std": _json_list(self.std), "min": _json_list(self.min),
                "max": _json_list(self.max), "count": [int(c) for c in self.count],
                "runs": [r.to_json() for r in self.runs]}


def _json_list(a: np.ndarray) -> list[float | int | None]:
    """NaN -> ``None``; integral floats of an integer grid stay ints."""
    if a.dtype.kind in "iu":
        return [int(v) for v in a]
    return [None if not math.isfinite(v) else float(v) for v in a.tolist()]


def bin_edges(width: float, bins: int) -> np.ndarray:
    """Right edges ``w, 2w, ..., bins·w``; int64 when ``w`` is a whole number of frames."""
    k = np.arange(1, bins + 1)
    return k * int(width) if float(width).is_integer() else k * float(width)


def bin_index(steps: np.ndarray, width: float) -> np.ndarray:
    """0-based bin of each step: ``k - 1`` with ``s ∈ I_k`` (``[0, w]``, then ``((k-1)w, kw]``)."""
    return np.maximum(np.ceil(np.asarray(steps, dtype=np.float64) / width).astype(np.int64), 1) - 1


def bin_run(steps: np.ndarray, values: np.ndarray, width: float, bins: int | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: bin right edges and each bin's mean of ``values`` (NaN where empty).

    ``bins``: the number of bins (default: up to the bin of the largest step, :math:`K_r`); points past the last
    bin are left out. Non-finite values (a diverged run logging NaN) count as absent.
    """
    if width <= 0:
        raise ValueError(f"the bin width must be > 0, got {width}")
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    steps, values = steps[keep], values[keep]
    index = bin_index(steps, width)
    if bins is None:
        bins = int(index.max()) + 1 if len(index) else 0
    inside = index < bins
    sums = np.bincount(index[inside], weights=values[inside], minlength=bins)[:bins]
    nums = np.bincount(index[inside], minlength=bins)[:bins]
    y = np.full(bins, np.nan)
    np.divide(sums, nums, out=y, where=nums > 0)
    return bin_edges(width, bins), y


def aggregate(ys: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-bin ``mean``, ``std`` (ddof 0), ``min``, ``max`` over the runs with a value there and ``count`` of
    those runs; shorter rows are not padded (their missing bins are absent, not their last value)."""
    bins = max((len(y) for y in ys), default=0)
    stack = np.full((len(ys), bins), np.nan)
    for row, y in zip(stack, ys):
        row[: len(y)] = y
    count = np.isfinite(stack).sum(0)
    with warnings.catch_warnings():  # all-NaN columns (empty bins of every seed) stay NaN
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return {"mean": np.nanmean(stack, 0), "std": np.nanstd(stack, 0), "min": np.nanmin(stack, 0),
                "max": np.nanmax(stack, 0), "count": count.astype(np.int64)}


def window_mean(steps: np.ndarray, values: np.ndarray, lo: float, hi: float) -> tuple[float, int]:
    """Mean of the finite values logged at ``lo < step <= hi`` (one right-closed bin) and how many there were."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    inside = (steps > lo) & (steps <= hi) & np.isfinite(values)
    n = int(inside.sum())
    return (float(values[inside].mean()) if n else float("nan")), n


def natural_key(text: str) -> list[Any]:
    """Sort key with numbers compared as numbers: ``s2`` before ``s10``."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text)]


@dataclass
class Series:
    """One run's raw history as read from MLflow, with its grouping."""

    task: str
    method: str
    run_id: str
    run_name: str
    seed: str
    status: str
    steps: np.ndarray
    values: np.ndarray


def build_curves(series: Iterable[Series], width: float) -> list[Curve]:
    """Bin every run and aggregate per (task, method); sorted by task, then method (natural order), the runs of a
    curve by seed. Runs without a single finite value are left out."""
    groups: dict[tuple[str, str], list[BinnedRun]] = {}
    for s in series:
        x, y = bin_run(s.steps, s.values, width)
        if not np.isfinite(y).any():
            continue
        groups.setdefault((s.task, s.method), []).append(BinnedRun(s.run_id, s.run_name, s.seed, s.status, x, y))
    curves = []
    for (task, method), runs in sorted(groups.items(), key=lambda kv: (natural_key(kv[0][0]), natural_key(kv[0][1]))):
        runs.sort(key=lambda r: (natural_key(r.seed), r.run_name))
        stats = aggregate([r.y for r in runs])
        curves.append(Curve(task, method, bin_edges(width, len(stats["count"])), runs=runs, **stats))
    return curves
