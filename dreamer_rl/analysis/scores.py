r"""Scores of finished (or running) runs: final, best and at-budget evaluation returns, and their summary over seeds.

Per run, from the history :math:`(s_i, y_i)` of the evaluation metric (default ``eval/return``; :math:`s_i` = env
frames, sorted by step then logging time; non-finite values ignored):

* ``frames`` = :math:`\max_i s_i`, the step of the run's **last evaluation** (not the last step of any metric: a
  run that trained past its last evaluation counts only up to the evaluation);
* ``final`` = the value of the last evaluation (the last one logged at step ``frames``);
  ``best`` = :math:`\max_i y_i` (and ``best_frames`` its step); ``evaluations`` = the number of points;
* ``at`` — the score at a budget :math:`B` frames (``--at B``), the way the published numbers are computed:

  - default (``window`` = 0): the evaluation **nearest to the budget**, :math:`y_j` with
    :math:`j = \arg\min_i |s_i - B|` (a tie goes to the later evaluation; several values logged at that step: the
    last). This is the rule that reproduces the published per-task scores of the Dreamer papers from the authors'
    score files (``dreamer_rl/analysis/baseline_data/*.json`` store their scores this way), so ``at`` is comparable
    with ``--baselines``. The authors' scripts themselves compute no score at a budget: danijar/dreamerv3's
    ``scores/view.py`` only prints each file's budget (the largest x), its ``plot.py`` and danijar/dreamerv2's
    ``common/plot.py`` bin the curves;
  - ``window`` :math:`= W > 0`: the mean of the evaluations in the bin that ends at the budget,
    :math:`\mathrm{mean}\{y_i : B - W < s_i \le B\}` — the value the binned learning curve takes at :math:`x = B`
    with bin width :math:`W` (the right-closed bins of :mod:`dreamer_rl.analysis.curves`, after danijar/dreamerv2's
    ``common/plot.py``); an empty bin gives no score (``at: null``, ``at_evaluations: 0``).

  A run has ``reached: true`` when ``frames >= B`` (its last evaluation is at or past the budget). Runs that did
  not reach it keep their ``at`` value for reference but are **left out of the summary**.

* ``atari_`` tasks (when the metric is a return): ``final_hn``, ``best_hn``, ``at_hn`` =
  :math:`(y - \text{random}) / (\text{human} - \text{random})` with :func:`envs.atari.human_normalized`.

Summary, per (task, method) over its runs (seeds): ``seeds`` :math:`n`, ``final_mean``
:math:`= \frac1n\sum_r \text{final}_r`, ``final_std`` :math:`= \sqrt{\frac1n\sum_r(\text{final}_r - \text{mean})^2}`
(population std, ddof 0, as the curves and the baseline files), the same for ``best`` and, with a budget, for
``at`` over the :math:`n_{at}` runs that reached it (``at_seeds``). Atari, per method: the human-normalised
per-game means over seeds (``final_hn_mean`` of each game), then their **mean and median across games**
(``games`` = how many games the method has).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dreamer_rl.analysis.curves import natural_key, window_mean

__all__ = ["atari_summary", "format_table", "score_run", "summarize"]


def _last_at(steps: np.ndarray, values: np.ndarray, step: int) -> float:
    return float(values[np.nonzero(steps == step)[0][-1]])


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def score_run(info: dict[str, Any], steps: np.ndarray, values: np.ndarray, *, at: int | None = None,
              window: int = 0, normalize: Callable[[str, float], float] | None = None) -> dict[str, Any]:
    """One run's scores (module docstring): ``info`` (run id, name, task, ...) plus ``frames``, ``evaluations``,
    ``final``, ``best``, ``best_frames`` and, with ``at``, ``at``, ``at_frames`` (nearest rule) or
    ``at_evaluations`` (window rule) and ``reached``. ``normalize(task, score)`` adds the ``*_hn`` fields."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    steps, values = steps[keep], values[keep]
    row: dict[str, Any] = {**info, "evaluations": int(len(steps))}
    if not len(steps):
        row.update(frames=None, final=None, best=None, best_frames=None)
        if at is not None:
            row.update(budget=int(at), at=None, reached=False)
        return row
    frames = int(steps.max())
    best = int(np.argmax(values))
    row.update(frames=frames, final=_last_at(steps, values, frames), best=float(values[best]),
               best_frames=int(steps[best]))
    if at is not None:
        row["budget"] = int(at)
        if window > 0:
            value, n = window_mean(steps, values, at - window, at)
            row.update(at=_num(value), at_evaluations=n, at_window=[int(at - window), int(at)])
        else:
            distance = np.abs(steps.astype(np.float64) - at)
            nearest = int(steps[np.nonzero(distance == distance.min())[0]].max())  # a tie: the later one
            row.update(at=_last_at(steps, values, nearest), at_frames=nearest)
        row["reached"] = frames >= at
    if normalize is not None:
        task = row["task"]
        for key in ("final", "best", "at"):
            if row.get(key) is not None:
                row[f"{key}_hn"] = normalize(task, row[key])
    return row


def _stats(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std())


def _usable_at(row: dict[str, Any]) -> bool:
    return bool(row.get("reached")) and row.get("at") is not None


def summarize(rows: Sequence[dict[str, Any]], at: int | None = None) -> list[dict[str, Any]]:
    """Per (task, method): ``seeds``, ``final_mean``/``final_std``, ``best_mean``/``best_std`` and, with a budget,
    ``at_mean``/``at_std``/``at_seeds`` over the runs that reached it; ``*_hn_mean`` where the rows have them."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("final") is not None:
            groups.setdefault((row["task"], row["method"]), []).append(row)
    out = []
    for (task, method), group in sorted(groups.items(), key=lambda kv: (natural_key(kv[0][0]), natural_key(kv[0][1]))):
        entry: dict[str, Any] = {"task": task, "method": method, "seeds": len(group)}
        for key in ("final", "best"):
            entry[f"{key}_mean"], entry[f"{key}_std"] = _stats([r[key] for r in group])
        if at is not None:
            reached = [r for r in group if _usable_at(r)]
            entry["budget"] = int(at)
            entry["at_mean"], entry["at_std"] = _stats([r["at"] for r in reached])
            entry["at_seeds"] = len(reached)
        if any("final_hn" in r for r in group):
            entry["final_hn_mean"] = _stats([r["final_hn"] for r in group])[0]
            if at is not None:
                entry["at_hn_mean"] = _stats([r["at_hn"] for r in group if _usable_at(r)])[0]
        out.append(entry)
    return out


def atari_summary(summary: Sequence[dict[str, Any]], at: int | None = None) -> list[dict[str, Any]]:
    """Per method over its ``atari_`` games: mean and median of the per-game human-normalised seed means."""
    methods = sorted({s["method"] for s in summary if "final_hn_mean" in s}, key=natural_key)
    out = []
    for method in methods:
        games = [s for s in summary if s["method"] == method and "final_hn_mean" in s]
        final = np.array([s["final_hn_mean"] for s in games], dtype=np.float64)
        entry: dict[str, Any] = {"method": method, "games": len(games), "final_hn_mean": float(final.mean()),
                                 "final_hn_median": float(np.median(final))}
        if at is not None:
            hn = np.array([s["at_hn_mean"] for s in games if s.get("at_hn_mean") is not None], dtype=np.float64)
            entry.update(budget=int(at), at_games=int(len(hn)),
                         at_hn_mean=float(hn.mean()) if len(hn) else None,
                         at_hn_median=float(np.median(hn)) if len(hn) else None)
        out.append(entry)
    return out


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"


def _games(n: int) -> str:
    return f"{n} game" if n == 1 else f"{n} games"


def format_table(summary: Sequence[dict[str, Any]], atari: Sequence[dict[str, Any]] = (),
                 at: int | None = None) -> str:
    """A compact fixed-width table of the summary (and the Atari aggregates) for the terminal."""
    from dreamer_rl.analysis.figure import format_frames

    head = ["task", "method", "seeds", "final", "best"] + ([f"@{format_frames(at)}", "n@"] if at is not None else [])
    body = []
    for s in summary:
        line = [s["task"], s["method"], str(s["seeds"]), _pm(s["final_mean"], s["final_std"]),
                _pm(s["best_mean"], s["best_std"])]
        if at is not None:
            line += [_pm(s["at_mean"], s["at_std"]), str(s["at_seeds"])]
        body.append(line)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *body]]
    for a in atari:
        text = (f"atari {a['method']}: {_games(a['games'])}, human-normalised final mean {a['final_hn_mean']:.3f} "
                f"median {a['final_hn_median']:.3f}")
        if at is not None and a.get("at_hn_mean") is not None:
            text += (f"; @{format_frames(at)} mean {a['at_hn_mean']:.3f} median {a['at_hn_median']:.3f} "
                     f"({_games(a['at_games'])})")
        lines.append(text)
    return "\n".join(lines)
