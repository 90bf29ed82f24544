"""``python -m recipes.plot``: learning curves of the runs in an MLflow experiment, one panel per task.

    python -m recipes.plot --experiment dreamer_rl --metric eval/return --bins 30000 --out plots/

Reads the runs through MLflow only (``$MLFLOW_TRACKING_URI``, else ``./mlflow/mlflow.db``; a tracking server works
the same), bins each run's metric history over env frames and aggregates the seeds of each (task, method) with the
rule of :mod:`dreamer_rl.analysis.curves` (bins ``(k-1)w < frames <= kw`` drawn at their right edge ``kw``, each
bin the mean of the run's points in it, empty bins left out, seeds averaged where they have a value). Writes
``<out>/<name>.png``, ``.pdf`` and ``.json`` (the binned numbers) and prints ``png=``, ``pdf=``, ``json=``, ``runs=``,
``tasks=``, ``methods=`` lines. Every mistake is one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreamer_rl.analysis.curves import Curve, Series, build_curves
from dreamer_rl.analysis.runs import (Run, find_experiment, list_runs, metric_history, open_store, read_uri,
                                      select_runs)
from dreamer_rl.errors import UserError
from recipes.cli import OneLineParser, fail

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dreamer_rl.analysis.figure import BaselineLine

BINNING = ("bins (k-1)*w < frames <= k*w (the first [0, w]), x = right edge k*w; a run's bin = mean of its points "
           "there, empty = null; per bin mean/std (ddof 0)/min/max over the seeds with a value (count); shorter "
           "runs are not padded")


def add_selection_args(p: argparse.ArgumentParser, metric_help: str) -> None:
    """The options shared with ``recipes.scores``: store, experiment, metric and the run filters."""
    p.add_argument("--experiment", default="dreamer_rl", help="MLflow experiment [default: dreamer_rl]")
    p.add_argument("--metric", default="eval/return", help=metric_help)
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help="task tags to keep: exact (dmc_cheetah_run), without the suite prefix (cheetah_run) or "
                        "shell-style globs ('dmc_*') [default: all]")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="methods to keep (names or globs, as grouped by --methods-by) [default: all]")
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN", help="run names or run ids to keep [default: all]")
    p.add_argument("--methods-by", default="algo", metavar="KEY",
                   help="what makes a method: a tag, else a param (e.g. model.latent), or explicit tags.X / params.X; "
                        "runs without it are skipped with a warning [default: algo]")


def load_selection(args: argparse.Namespace) -> tuple[str, list[Run], list[Series]]:
    """``(tracking URI, selected runs, their histories of args.metric)``; prints a warning line per skipped group."""
    uri = read_uri()
    client = open_store(uri)
    experiment_id = find_experiment(client, args.experiment)
    selection = select_runs(list_runs(client, experiment_id), metric=args.metric, methods_by=args.methods_by,
                            tasks=args.tasks, methods=args.methods, run_refs=args.runs, experiment=args.experiment)
    for warning in selection.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    series = []
    for run in selection.runs:
        steps, values = metric_history(client, run.run_id, args.metric)
        series.append(Series(run.task, run.method, run.run_id, run.run_name, run.seed, run.status, steps, values))
    return uri, selection.runs, series


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m recipes.plot", description=__doc__, allow_abbrev=False,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p, "metric to plot (logged with step = env frames) [default: eval/return]")
    p.add_argument("--bins", type=float, default=30000, metavar="FRAMES",
                   help="bin width in env frames, > 0 (3e4 works) [default: 30000]")
    p.add_argument("--out", type=Path, default=Path("plots"), help="output folder [default: plots]")
    p.add_argument("--name", default="curves", help="file name stem of the outputs [default: curves]")
    p.add_argument("--baselines", nargs="*", default=None, metavar="NAME",
                   help="overlay published baselines (dashed): no names = every stored baseline file, or file stems / "
                        "JSON paths; a baseline is drawn in the panels of its tasks when its metric is --metric")
    p.add_argument("--cols", type=int, default=4, help="panels per row (fewer if fewer tasks) [default: 4]")
    p.add_argument("--xlim", type=float, nargs=2, default=None, metavar=("MIN", "MAX"), help="x range in env frames")
    p.add_argument("--ylim", type=float, nargs=2, default=None, metavar=("MIN", "MAX"), help="y range")
    p.add_argument("--spread", choices=("std", "minmax", "none"), default="std",
                   help="shading around the seed mean: std = mean ± standard deviation over seeds (ddof 0), minmax = "
                        "from the lowest to the highest seed, none = no shading [default: std]")
    p.add_argument("--title", default=None, help="figure title [default: none]")
    p.add_argument("--dpi", type=int, default=150, help="resolution of the PNG [default: 150]")
    return p


def _check(args: argparse.Namespace) -> None:
    if not math.isfinite(args.bins) or args.bins <= 0:
        raise UserError(f"bad --bins {args.bins:g}: the bin width must be > 0 env frames, e.g. --bins 30000")
    for flag in ("xlim", "ylim"):
        lim = getattr(args, flag)
        if lim is not None and not (all(map(math.isfinite, lim)) and lim[0] < lim[1]):
            raise UserError(f"bad --{flag} {lim[0]:g} {lim[1]:g}: give MIN MAX with MIN < MAX")
    if args.cols < 1:
        raise UserError(f"bad --cols {args.cols}: give at least 1 panel per row")
    if args.dpi < 1:
        raise UserError(f"bad --dpi {args.dpi}: give a positive resolution such as 150")
    if not args.name or "/" in args.name:
        raise UserError(f"bad --name {args.name!r}: give a file name stem such as 'curves'")


@dataclass
class PlotResult:
    """What :func:`build` made: the figure, the JSON payload and the counts printed at the end."""

    figure: Figure
    payload: dict[str, Any]
    curves: list[Curve]
    runs: int


def _baselines(loaded: Sequence[Any], args: argparse.Namespace, curves: Sequence[Curve]
               ) -> dict[str, list[BaselineLine]]:
    """Per task, the lines of the loaded baselines inside ``--xlim`` (default: 0 to the task's last bin)."""
    from dreamer_rl.analysis.figure import baseline_lines

    out = {}
    for task in sorted({c.task for c in curves}):
        if args.xlim:
            xrange = (args.xlim[0], args.xlim[1])
        else:
            xrange = (0.0, max(float(c.x[-1]) for c in curves if c.task == task))
        out[task] = baseline_lines(loaded, task, args.metric, xrange)
    return out


def build(args: argparse.Namespace) -> PlotResult:
    """Read, bin, aggregate and draw (nothing written); :class:`UserError` on every mistake."""
    _check(args)
    bins: float = int(args.bins) if float(args.bins).is_integer() else args.bins
    loaded: list[Any] = []
    if args.baselines is not None:  # a mistyped name fails before the runs are read
        from dreamer_rl.analysis.baselines import load_baselines

        loaded = load_baselines(args.baselines or None)
    uri, runs, series = load_selection(args)
    curves = build_curves(series, bins)
    if not curves:
        raise UserError(f"none of the {len(runs)} selected run(s) has a finite value of {args.metric!r}")
    baselines = _baselines(loaded, args, curves) if args.baselines is not None else {}
    from dreamer_rl.analysis.figure import make_figure

    figure = make_figure(curves, metric=args.metric, baselines=baselines, cols=args.cols,
                         xlim=tuple(args.xlim) if args.xlim else None, ylim=tuple(args.ylim) if args.ylim else None,
                         spread=args.spread, title=args.title)
    payload = {"experiment": args.experiment, "metric": args.metric, "bins": bins, "tracking_uri": uri,
               "methods_by": args.methods_by, "x": "bin right edges in env frames", "binning": BINNING,
               "spread": args.spread, "curves": [c.to_json() for c in curves],
               "baselines": [line.to_json() for lines in baselines.values() for line in lines]}
    return PlotResult(figure, payload, curves, sum(len(c.runs) for c in curves))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = build(args)
        out: Path = args.out
        try:
            out.mkdir(parents=True, exist_ok=True)
            paths = {ext: out / f"{args.name}.{ext}" for ext in ("png", "pdf", "json")}
            import matplotlib

            with matplotlib.rc_context({"pdf.fonttype": 42}):  # TrueType in the PDF: editable text for papers
                result.figure.savefig(paths["png"], dpi=args.dpi)
                result.figure.savefig(paths["pdf"])
            paths["json"].write_text(json.dumps(result.payload, indent=1))
        except OSError as exc:
            raise UserError(f"cannot write the plots to {out} ({exc.strerror or exc})") from exc
    except UserError as err:
        fail(str(err))
    for ext, path in paths.items():
        print(f"{ext}={path}")
    print(f"runs={result.runs}")
    print(f"tasks={len({c.task for c in result.curves})}")
    print(f"methods={len({c.method for c in result.curves})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
