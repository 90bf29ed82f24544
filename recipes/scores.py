"""``python -m recipes.scores``: final, best and at-budget scores of the runs in an MLflow experiment.

    python -m recipes.scores --experiment dreamer_rl --out scores.json --at 500000

Per run: ``frames`` (the step of its last evaluation), ``final`` (the last evaluation's value), ``best`` (the
highest), ``evaluations`` (how many) and, with ``--at B``, ``at``: by default the evaluation nearest to B frames
(the rule behind the published per-task scores and the baseline files), with ``--window W`` the mean of the
evaluations with B - W < frames <= B (the binned curve's value at B); ``reached`` = the last evaluation is at or
past B, and runs that did not reach B stay out of the summary. ``atari_`` tasks also get human-normalised values
(``*_hn``). The summary gives per (task, method) the mean and std (ddof 0) over seeds, and per method the
human-normalised mean and median across Atari games. The exact rules are in :mod:`dreamer_rl.analysis.scores`.

Prints a table, then ``runs=`` and ``out=`` lines; every mistake is one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dreamer_rl.analysis.runs import describe
from dreamer_rl.analysis.scores import atari_summary, format_table, score_run, summarize
from dreamer_rl.errors import UserError
from recipes.cli import OneLineParser, fail
from recipes.plot import add_selection_args, load_selection

AT_RULE = ("nearest: the evaluation whose step is nearest to the budget (a tie: the later one); window W > 0: the "
           "mean of the evaluations with budget - W < step <= budget; reached = last evaluation step >= budget")


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m recipes.scores", description=__doc__, allow_abbrev=False,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p, "the evaluation metric to score (step = env frames) [default: eval/return]")
    p.add_argument("--out", type=Path, default=Path("scores.json"), help="JSON file to write [default: scores.json]")
    p.add_argument("--at", type=float, default=None, metavar="FRAMES",
                   help="budget in env frames (5e5 works): 'at' = the evaluation nearest to FRAMES (a tie: the later "
                        "one), as the published scores are read off the authors' score files; with --window W the "
                        "mean of the evaluations in (FRAMES - W, FRAMES]. Runs whose last evaluation is before "
                        "FRAMES get reached=false and are left out of the summary")
    p.add_argument("--window", type=float, default=0, metavar="FRAMES",
                   help="with --at: average the evaluations of the last FRAMES before the budget instead of taking "
                        "the nearest one (the binned curve's value at the budget) [default: 0 = nearest]")
    return p


def _normalizer(metric: str, tasks: Sequence[str]) -> Callable[[str, float], float] | None:
    """``envs.atari.human_normalized`` for return metrics when there are ``atari_`` tasks (imported only then)."""
    if not metric.endswith("return") or not any(t.startswith("atari_") for t in tasks):
        return None
    from envs.atari import human_normalized

    def normalize(task: str, score: float) -> float | None:
        if not task.startswith("atari_"):
            return None
        try:
            return human_normalized(task, score)
        except UserError:  # a game without reference scores: no normalised value
            return None

    return normalize  # type: ignore[return-value]


def build(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON payload (nothing written); :class:`UserError` on every mistake."""
    if args.at is not None and not args.at > 0:
        raise UserError(f"bad --at {args.at:g}: the budget must be > 0 env frames, e.g. --at 500000")
    if not args.window >= 0:
        raise UserError(f"bad --window {args.window:g}: give 0 (nearest evaluation) or a window > 0 env frames")
    if args.window and args.at is None:
        raise UserError("--window needs --at FRAMES (the budget the window ends at)")
    at = int(args.at) if args.at is not None else None
    uri, runs, series = load_selection(args)
    normalize = _normalizer(args.metric, [r.task for r in runs])
    rows = []
    for run, s in zip(runs, series):
        row = score_run(describe(run), s.steps, s.values, at=at, window=int(args.window), normalize=normalize)
        rows.append({k: v for k, v in row.items() if v is not None or not k.endswith("_hn")})
    summary = summarize(rows, at)
    payload: dict[str, Any] = {
        "experiment": args.experiment, "metric": args.metric, "tracking_uri": uri, "methods_by": args.methods_by,
        "frames": "step of the run's last evaluation", "final": "value of the last evaluation",
        "best": "highest evaluation", "budget": at, "window": int(args.window) if at is not None else None,
        "at_rule": AT_RULE if at is not None else None, "runs": rows, "summary": summary,
        "atari": atari_summary(summary, at)}
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        payload = build(args)
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(payload, indent=1))
        except OSError as exc:
            raise UserError(f"cannot write {args.out} ({exc.strerror or exc})") from exc
    except UserError as err:
        fail(str(err))
    print(format_table(payload["summary"], payload["atari"], payload["budget"]))
    skipped = [r["run_name"] for r in payload["runs"] if payload["budget"] is not None and not r.get("reached")]
    if skipped:
        print(f"not at the budget (left out of the summary): {', '.join(skipped)}")
    print(f"runs={len(payload['runs'])}")
    print(f"out={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
