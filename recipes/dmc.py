"""Train or evaluate a Dreamer agent on DeepMind Control.

    python -m recipes.dmc --task cheetah_run                         # DreamerV1 from pixels, paper defaults
    python -m recipes.dmc --task cartpole_balance --preset dmc_proprio debug --run.seed 3
    python -m recipes.dmc --eval --checkpoint runs/<name>/checkpoints/latest.pt

Re-running a command with the same ``--run.name`` resumes that run from its last checkpoint.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from recipes.cli import build_parser, fail, recipe_text, resolve_recipe
from dreamer_rl.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m recipes.dmc", "Dreamer on DeepMind Control (steps are env frames).")
    parser.add_argument("--task", default=None, help="DMC task, e.g. cheetah_run (same as --env.task dmc_cheetah_run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("dreamer_rl").setLevel(logging.INFO)
    logging.getLogger("recipes").setLevel(logging.INFO)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    try:
        if args.eval:
            from recipes.evaluate import evaluate_checkpoint

            if not args.checkpoint:
                raise UserError("--eval needs --checkpoint PATH (a runs/<name>/checkpoints/latest.pt file)")
            given = resolve_recipe(args).run  # validates --run.* like a training run (one-line errors)
            episodes = given.eval_episodes if args.__dict__["run.eval_episodes"] is not None else None
            evaluate_checkpoint(Path(args.checkpoint), video=args.video, episodes=episodes, device=given.device)
            return 0
        if args.task is not None:
            setattr(args, "env.task", args.task if args.task.startswith("dmc_") else f"dmc_{args.task}")
        recipe = resolve_recipe(args)
        from envs import list_tasks

        known = list_tasks().get("dmc", [])
        if recipe.env.task not in known:
            from envs import make_env  # raises the registry's one-line UnknownTaskError

            make_env(recipe.env.task, from_pixels=False)
        print(recipe_text(recipe), flush=True)
        from dreamer_rl.training import summary_json, train

        summary = train(recipe)
        print(summary_json(summary))
        for k in ("frames", "updates", "train_return", "eval_return"):
            print(f"{k}={summary[k]}")
        return 0
    except UserError as err:
        fail(str(err))


if __name__ == "__main__":
    sys.exit(main())
