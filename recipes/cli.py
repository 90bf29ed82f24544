"""The command line generated from the recipe models.

``--preset a b`` stacks presets in order, then every leaf field of :class:`~dreamer_rl.config.Recipe` is an option
``--<section>.<field> VALUE`` (``--help`` lists each with its description and default). Values are validated by
pydantic; any mistake (unknown option, bad value or type, unknown preset or task) prints one line naming the field
and what is allowed, and exits with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
import typing
from pathlib import Path
from typing import Any, Callable, NoReturn

from pydantic import BaseModel, ValidationError

from dreamer_rl.config import Recipe, deep_merge
from dreamer_rl.errors import UserError
from recipes.presets import PRESETS, apply_presets


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are a single line (with a suggestion) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments" in message:
            bad = message.split(":", 1)[1].split()
            opts = [o for a in self._actions for o in a.option_strings]
            flag = next((b for b in bad if b.startswith("--")), bad[0])
            close = difflib.get_close_matches(flag, opts, n=1)
            hint = f"; did you mean {close[0]}?" if close else "; see --help for the fields"
            message = f"unknown option {flag}{hint}"
        fail(message)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _leaf_fields(ann, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", f))
    return out


def build_parser(prog: str, description: str) -> OneLineParser:
    """Parser with ``--preset``, ``--eval``, ``--checkpoint`` and one option per recipe field."""
    p = OneLineParser(prog=prog, description=description, allow_abbrev=False,
                      formatter_class=argparse.RawDescriptionHelpFormatter)  # fields say their own default
    p.add_argument("--preset", nargs="+", default=[], metavar="NAME",
                   help=f"presets applied in order; available: {', '.join(PRESETS)}")
    p.add_argument("--eval", action="store_true", help="evaluate a checkpoint instead of training")
    p.add_argument("--checkpoint", default=None, help="checkpoint to evaluate (with --eval): a checkpoint file, or a "
                   "registered MLflow model models:/<name>/<version> (see --tracking.register)")
    p.add_argument("--video", default=None, help="where --eval writes the episode video (default: beside the checkpoint)")
    p.add_argument("--seeds-parallel", type=int, default=1, metavar="N",
                   help="with several --run.seed values: train up to N seeds at once in worker processes, each "
                   "logging to <runs_dir>/<run>/train.log (default 1: one after another in this process)")
    for name, f in _leaf_fields(Recipe):
        default = f.default if f.default_factory is None else f.default_factory()
        many = _is_list(f.annotation)  # a list field takes its items as separate words: --model.clock_periods 1 4
        helptext = f"{f.description} [default: {default}]"
        if name == "run.seed":  # several seeds: one run per seed (recipes.sweep)
            many, helptext = True, f"{f.description}; several (0 1 2) train one run per seed [default: {default}]"
        p.add_argument(f"--{name}", dest=name, default=None, metavar="VALUE", nargs="+" if name == "run.seed"
                       else "*" if many else None, help=helptext)
    return p


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, tuple)


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for k in parents:
        d = d.setdefault(k, {})
    d[leaf] = value


def _accepts_none(annotation: Any) -> bool:
    return annotation is type(None) or any(_accepts_none(a) for a in typing.get_args(annotation))


def _parse_value(raw: str | list[str], nullable: bool = True) -> Any:
    """CLI strings go to pydantic as-is, except ``null``/``none`` for a field that takes ``None`` (a choice named
    ``'none'``, like ``planner.kind none``, stays the string); a list field's words are its items (``1 4``, or one
    JSON list ``[1, 4]``; no words: the empty list)."""
    if isinstance(raw, list):
        if len(raw) == 1 and raw[0].lstrip().startswith("["):
            try:
                return json.loads(raw[0])
            except ValueError:
                return raw[0]  # pydantic names the field and what it takes
        return raw
    return None if nullable and raw.lower() in ("none", "null") else raw


def format_validation_error(err: ValidationError) -> str:
    """First pydantic error as ``bad value for a.b: <input> (<what is allowed>)``."""
    e = err.errors()[0]
    loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith(("int", "literal", "str", "bool", "float")))
    if e["type"] == "extra_forbidden":
        return f"unknown field {loc}"
    if e["type"] == "value_error":  # a validator across fields: its own message says what and how to fix
        msg = str(e["msg"]).removeprefix("Value error, ")
        return f"bad recipe{' section ' + loc if loc else ''}: {msg}"
    return f"bad value for {loc}: {e.get('input')!r} ({e['msg']})"


def make_recipe(*presets: str, overrides: dict[str, Any] | None = None,
                base: dict[str, Any] | None = None) -> Recipe:
    """A validated :class:`Recipe`: ``presets`` applied in order onto ``base``, then dotted ``overrides``.

    ``make_recipe("dreamer_v3", "debug", overrides={"run.steps": 600, "env.task": "gym_CartPole-v1"})``. Mistakes
    raise :class:`~dreamer_rl.errors.UserError` with the command line's one-line message (unknown preset with a
    suggestion, unknown field, bad value).
    """
    for name in presets:
        if name not in PRESETS:
            close = difflib.get_close_matches(name, PRESETS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UserError(f"unknown preset '{name}'; {hint}available: {', '.join(PRESETS)}")
    merged = apply_presets(list(presets), base)
    nested: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if dotted.count(".") != 1:
            raise UserError(f"override {dotted!r} must be named <section>.<field>, e.g. 'run.steps'")
        _set_dotted(nested, dotted, value)
    merged = deep_merge(merged, nested)
    try:
        return Recipe.model_validate(merged)
    except ValidationError as err:
        raise UserError(format_validation_error(err)) from None


#: The options ``--eval`` applies on top of the checkpoint's stored recipe (every other one is refused).
EVAL_OPTIONS = ("run.eval_episodes", "run.device", "behavior.eval_sample", "behavior.eval_noise")


def resolve_recipe(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Recipe:
    """Presets in order, then dotted overrides, validated into a frozen :class:`Recipe` (one-line errors)."""
    overrides: dict[str, Any] = {}
    for name, field in _leaf_fields(Recipe):
        raw = getattr(args, name, None)
        if raw is not None:
            overrides[name] = _parse_value(raw, _accepts_none(field.annotation))
    return make_recipe(*args.preset, overrides=overrides, base=base)


def recipe_text(recipe: Recipe) -> str:
    """The resolved recipe as printed at start."""
    return json.dumps(recipe.model_dump(mode="json"), indent=2)


def run_main(args: argparse.Namespace, *, suite: str, task: str | None, default_presets: tuple[str, ...] = (),
             base: dict[str, Any] | None = None, check: Callable[[Recipe], None] | None = None,
             report: Callable[[Recipe, dict[str, Any]], dict[str, Any]] | None = None) -> int:
    """The body of every ``python -m recipes.<suite>``: ``--eval`` a checkpoint, or resolve the recipe and train.

    ``task``: the full task name given by the suite's own flag (``None``: keep ``--env.task`` / the presets'),
    ``default_presets``: applied when ``--preset`` is not given, ``base``: the suite's recipe defaults under every
    preset, ``check(recipe)``: the suite's own validation (raises :class:`UserError`), ``report(recipe, summary)``:
    figures the suite adds to the summary. Prints the recipe, trains, prints the summary as JSON and as
    ``name=value`` lines; every user mistake is one line and exit status 2.
    """
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("dreamer_rl", "recipes"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    try:
        seeds = _seeds(args)
        if args.eval:
            from recipes.evaluate import evaluate_checkpoint

            if not args.checkpoint:
                raise UserError("--eval needs --checkpoint PATH (a runs/<name>/checkpoints/latest.pt file, or a "
                                "registered model models:/<name>/<version>)")
            resolved = resolve_recipe(args)  # validates the options like a training run (one-line errors)
            given, behavior = resolved.run, resolved.behavior
            ignored = [f"--{name}" for name, _ in _leaf_fields(Recipe)
                       if getattr(args, name, None) is not None and name not in EVAL_OPTIONS]
            ignored += [f"--preset {' '.join(args.preset)}"] * bool(args.preset) + ["--task"] * (task is not None)
            if ignored:
                what = ", ".join(ignored)
                raise UserError(f"--eval uses the recipe stored in the checkpoint, so {what} would change nothing; "
                                f"with --eval give only {', '.join('--' + n for n in EVAL_OPTIONS)}")
            episodes = given.eval_episodes if args.__dict__["run.eval_episodes"] is not None else None
            checkpoint, video = Path(args.checkpoint), args.video
            from dreamer_rl.registry import is_model_uri, registered_checkpoint

            if is_model_uri(args.checkpoint):  # a registered model (--tracking.register true)
                checkpoint = registered_checkpoint(args.checkpoint)
                video = video or f"eval_{args.checkpoint.split(':/', 1)[1].replace('/', '_').replace('@', '_')}.mp4"
            given_b = {k: getattr(behavior, k) if args.__dict__[f"behavior.{k}"] is not None else None
                       for k in ("eval_sample", "eval_noise")}
            evaluate_checkpoint(checkpoint, video=video, episodes=episodes, device=given.device, **given_b)
            return 0
        if task is not None:
            setattr(args, "env.task", task)
        if not args.preset:
            args.preset = list(default_presets)
        recipe = resolve_recipe(args, base)
        if not recipe.env.task.startswith(f"{suite}_"):
            raise UserError(f"env.task {recipe.env.task!r} is not a {suite}_ task; this command trains {suite}_ "
                            f"tasks (see --help)")
        if check is not None:
            check(recipe)
        print(recipe_text(recipe), flush=True)
        if len(seeds) > 1:
            return _run_seeds(recipe, seeds, args.seeds_parallel, report)
        from dreamer_rl.training import summary_json, train

        summary = train(recipe)
        extra = report(recipe, summary) if report is not None else {}
        summary = {**summary, **extra}
        print(summary_json(summary))
        for k in ("frames", "updates", "train_return", "eval_return", *extra, "registered_model"):
            if k in summary:
                print(f"{k}={summary[k]}")
        return 0
    except UserError as err:
        fail(str(err))


def _seeds(args: argparse.Namespace) -> list[int]:
    """The ``--run.seed`` values (one int each; ``[]`` when not given); leaves the first in ``args`` for the recipe."""
    raw = args.__dict__.get("run.seed")
    if raw is None:
        return []
    seeds = []
    for word in raw:
        try:
            seeds.append(int(word))
        except ValueError:
            raise UserError(f"bad value for run.seed: {word!r} (seeds are integers, e.g. --run.seed 0 1 2)") from None
    if args.seeds_parallel < 1:
        raise UserError(f"--seeds-parallel must be at least 1, got {args.seeds_parallel}")
    setattr(args, "run.seed", str(seeds[0]))
    return seeds


def _run_seeds(recipe: Recipe, seeds: list[int], parallel: int,
               report: Callable[[Recipe, dict[str, Any]], dict[str, Any]] | None) -> int:
    """Train one run per seed (:mod:`recipes.sweep`); prints each seed's summary as JSON, then the mean over seeds
    as ``name=value`` lines (``<name>_std``: the spread of the returns over seeds)."""
    from dreamer_rl.training import summary_json
    from recipes.sweep import aggregate, seed_recipes, train_seeds

    done = train_seeds(seed_recipes(recipe, seeds), parallel)
    summaries = []
    for seeded, summary in done:
        if summary is None:
            continue
        summary = {**summary, **(report(seeded, summary) if report is not None else {})}
        summaries.append(summary)
        print(summary_json({"seed": seeded.run.seed, "run": seeded.run_name, **summary}))
    failed = [str(r.run.seed) for r, s in done if s is None]
    print(f"runs={len(summaries)}")
    print(f"seeds={','.join(str(r.run.seed) for r, s in done if s is not None)}")
    if summaries:
        for k, v in aggregate(summaries).items():
            print(f"{k}={v}")
    if failed:
        print(f"error: seed(s) {', '.join(failed)} failed; see their train.log", file=sys.stderr)
        return 1
    return 0
