"""The learning-curve figure: one panel per task, one line per method, published baselines as dashed lines.

Drawing only (Matplotlib's Agg canvas through :class:`matplotlib.figure.Figure`, no pyplot state, no display):

* panels in rows of ``cols``, titled with the task name without its suite prefix (``dmc_cheetah_run`` ->
  "Cheetah Run"), x = env frames formatted compactly (``0``, ``250k``, ``1M``, ``1.5M``), y = the metric;
* per method the seed mean (:mod:`dreamer_rl.analysis.curves`), drawn at the bins' right edges, bins without a
  value bridged, with a shaded spread: ``std`` = mean ± the seeds' standard deviation (ddof 0), ``minmax`` = the
  band from the lowest to the highest seed, ``none`` = no band; each method keeps one colour in every panel;
* published baselines (:func:`baseline_lines`): the published curve (dashed) inside the panel's x-range, else a
  horizontal dashed line at the published score of the largest budget inside the x-range (or the smallest
  budget if none is inside), labelled ``"<method> (published) @<budget>"``;
* one legend below the panels, constrained layout so titles, labels and legend never overlap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dreamer_rl.analysis.curves import Curve, natural_key
from dreamer_rl.analysis.runs import suite_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["BaselineLine", "Spread", "baseline_lines", "format_frames", "make_figure", "method_colors",
           "panel_title"]

Spread = Literal["std", "minmax", "none"]

#: Okabe-Ito (colour-blind safe, yellow left out) followed by further distinct colours.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255", "#117733", "#332288",
           "#AA4499", "#44AA99", "#999933")
#: Published baselines: three greys times three dash patterns, nine distinct styles, one per baseline file.
_GREYS = ("#222222", "#777777", "#aaaaaa")
_DASHES = ((0, (5, 2)), (0, (1.5, 1.5)), (0, (6, 2, 1, 2)))
BASELINE_STYLES = tuple((_GREYS[i % 3], _DASHES[(i + i // 3) % 3]) for i in range(9))

#: Panel size in inches (width, height) and the height of one row of the legend below the panels.
PANEL_SIZE = (3.0, 2.4)
LEGEND_HEIGHT = 0.45


@dataclass
class BaselineLine:
    """What one published baseline adds to one panel: a curve (``x``, ``y``) or a score (``y[0]`` at ``frames``)."""

    task: str
    name: str
    label: str
    kind: Literal["curve", "score"]
    x: list[float]
    y: list[float]
    frames: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "name": self.name, "label": self.label, "kind": self.kind, "frames": self.frames,
                "x": self.x, "y": self.y}


def format_frames(x: float, _pos: Any = None) -> str:
    """Compact frame counts: ``0``, ``500``, ``2.5k``, ``100k``, ``1M``, ``1.5M``, ``2B``."""
    if not math.isfinite(x):
        return ""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            text = f"{x / scale:.2f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{x:.2f}".rstrip("0").rstrip(".") if x else "0"


def panel_title(task: str) -> str:
    """The task without its suite prefix; lowercase snake-case names become words: ``Cheetah Run``."""
    suite = suite_of(task)
    name = task[len(suite) + 1:] if suite else task
    return name.replace("_", " ").title() if name == name.lower() else name


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method, by the methods' natural order, so it is the same in every panel and every figure
    with the same methods."""
    ordered = sorted(set(methods), key=natural_key)
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(ordered)}


def _published_label(method: str) -> str:
    return method if "published" in method.lower() else f"{method} (published)"


def baseline_lines(baselines: Sequence[Any], task: str, metric: str, xrange: tuple[float, float]) -> list[BaselineLine]:
    """The lines that ``baselines`` (:class:`dreamer_rl.analysis.baselines.Baseline`) add to ``task``'s panel.

    Only baselines of the same ``metric`` with that task. Their curve's points inside ``xrange`` when it has any
    there, else their score at the largest budget inside ``xrange`` (or at the smallest budget if none is inside).
    Two of ``baselines`` with the same method are told apart by their suite (or file name) in every panel alike:
    ``"DreamerV3 (published, dmc_vision)"``.
    """
    lo, hi = xrange
    same_metric = [b for b in baselines if b.metric == metric]
    methods = [b.method for b in same_metric]
    suites = [(b.method, b.suite) for b in same_metric]
    lines = []
    for b in same_metric:
        if task not in b.tasks():
            continue
        label = _published_label(b.method)
        if methods.count(b.method) > 1:  # e.g. DreamerV3 on dmc_proprio and on dmc_vision
            extra = b.suite if suites.count((b.method, b.suite)) == 1 else b.name
            label = f"{label[:-1]}, {extra})" if label.endswith(")") else f"{label} ({extra})"
        curve = b.curve(task)
        if curve is not None:
            points = [(float(x), float(y)) for x, y in zip(curve.frames, curve.values)
                      if lo <= x <= hi and y is not None and math.isfinite(y)]
            if points:
                xs, ys = zip(*points)
                lines.append(BaselineLine(task, b.name, label, "curve", list(xs), list(ys)))
                continue
        points = b.score_points(task)
        if not points:
            continue
        inside = [p for p in points if lo <= p[0] <= hi]
        frames, value = max(inside) if inside else min(points)
        lines.append(BaselineLine(task, b.name, f"{label} @{format_frames(frames)}", "score", [], [float(value)],
                                  int(frames)))
    return lines


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _draw_curve(ax: Axes, curve: Curve, color: str, spread: Spread) -> None:
    finite = np.isfinite(curve.mean)
    x, mean = curve.x[finite], curve.mean[finite]
    marker = "o" if len(x) == 1 else None
    ax.plot(x, mean, color=color, lw=1.6, label=curve.method, marker=marker, ms=4, zorder=3)
    if spread == "none" or len(x) == 0:
        return
    lo, hi = ((curve.mean - curve.std, curve.mean + curve.std) if spread == "std" else (curve.min, curve.max))
    ax.fill_between(x, lo[finite], hi[finite], color=color, alpha=0.18, lw=0, zorder=2)


def _style(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(format_frames))
    ax.yaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))
    ax.grid(True, color="#e6e6e6", lw=0.6, zorder=0)
    ax.tick_params(labelsize=8, length=2, pad=2)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def make_figure(curves: Sequence[Curve], *, metric: str, baselines: Mapping[str, Sequence[BaselineLine]] | None = None,
                cols: int = 4, xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None,
                spread: Spread = "std", title: str | None = None) -> Figure:
    """The figure: one panel (axes) per task of ``curves``, in the tasks' natural order; nothing else has axes."""
    from matplotlib.figure import Figure

    baselines = baselines or {}
    tasks = sorted({c.task for c in curves}, key=natural_key)
    rows, cols = _grid(len(tasks), cols)
    colors = method_colors([c.method for c in curves])
    baseline_names = sorted({line.name for lines in baselines.values() for line in lines})
    styles = {name: BASELINE_STYLES[i % len(BASELINE_STYLES)] for i, name in enumerate(baseline_names)}
    entries = len(colors) + len({line.label for lines in baselines.values() for line in lines})
    legend_cols = max(1, min(entries, cols))
    legend_rows = math.ceil(entries / legend_cols)
    fig = Figure(figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows + LEGEND_HEIGHT * legend_rows),
                 layout="constrained")
    handles: dict[str, Any] = {}
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(rows, cols, i + 1)
        _style(ax)
        ax.set_title(panel_title(task), fontsize=10)
        mine = [c for c in curves if c.task == task]
        for curve in mine:
            _draw_curve(ax, curve, colors[curve.method], spread)
        xmax = max((float(c.x[np.isfinite(c.mean)].max()) for c in mine if np.isfinite(c.mean).any()), default=1.0)
        for line in baselines.get(task, ()):
            color, dashes = styles[line.name]
            if line.kind == "curve":
                ax.plot(line.x, line.y, color=color, ls=dashes, lw=1.2, label=line.label, zorder=2.5,
                        marker="o" if len(line.x) == 1 else None, ms=3)
            else:
                ax.axhline(line.y[0], color=color, ls=dashes, lw=1.2, label=line.label, zorder=2.5)
        ax.set_xlim(*(xlim or (0.0, xmax)))
        if ylim:
            ax.set_ylim(*ylim)
        if i % cols == 0:
            ax.set_ylabel(metric, fontsize=9)
        if i + cols >= len(tasks):  # the lowest panel of its column
            ax.set_xlabel("env frames", fontsize=9)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    methods = sorted(colors, key=natural_key)
    order = [m for m in methods if m in handles] + sorted((k for k in handles if k not in colors), key=natural_key)
    if order:
        fig.legend([handles[k] for k in order], order, loc="outside lower center", ncols=legend_cols,
                   frameon=False, fontsize=9, handlelength=2.2, columnspacing=1.4)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
