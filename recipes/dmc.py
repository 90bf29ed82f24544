"""Train or evaluate a Dreamer agent on DeepMind Control.

    python -m recipes.dmc --task cheetah_run                         # DreamerV1 from pixels, paper defaults
    python -m recipes.dmc --task cartpole_balance --preset dmc_proprio debug --run.seed 3
    python -m recipes.dmc --task cartpole_swingup_da                 # the PlaNet fork's discrete-action cartpole
    python -m recipes.dmc --eval --checkpoint runs/<name>/checkpoints/latest.pt

Re-running a command with the same ``--run.name`` resumes that run from its last checkpoint.
"""

from __future__ import annotations

import sys

from dreamer_rl.config import Recipe
from recipes.cli import build_parser, run_main


def _known_task(recipe: Recipe) -> None:
    from envs import list_tasks, make_env

    if recipe.env.task not in list_tasks().get("dmc", []):
        make_env(recipe.env.task, from_pixels=False)  # raises the registry's one-line UnknownTaskError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m recipes.dmc", "Dreamer on DeepMind Control (steps are env frames).")
    parser.add_argument("--task", default=None, help="DMC task, e.g. cheetah_run (same as --env.task dmc_cheetah_run)")
    args = parser.parse_args(argv)
    task = None if args.task is None else args.task if args.task.startswith("dmc_") else f"dmc_{args.task}"
    return run_main(args, suite="dmc", task=task, check=_known_task)


if __name__ == "__main__":
    sys.exit(main())
