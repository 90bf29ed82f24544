"""Train or evaluate a Dreamer agent on an Atari game (ale-py, the 57 games as ``atari_<game>``).

    python -m recipes.atari --task pong                              # DreamerV3 at its Atari 100k settings
    python -m recipes.atari --task breakout --preset dreamer_v2 atari   # DreamerV2's Atari setup (200M frames)
    python -m recipes.atari --task boxing --preset dreamer_v1 atari     # the TF1 Dreamer's [pcont, discrete, atari]
    python -m recipes.atari --task pong --env.sticky_actions 0.25 --env.grayscale true
    python -m recipes.atari --eval --checkpoint runs/<name>/checkpoints/latest.pt

Without ``--preset`` the recipe is ``dreamer_v3 atari100k``. Under every preset the env is Atari's: pixels, action
repeat 4 (max over the last two frames), 108k-frame episodes; the ``--env.*`` Atari fields (sticky actions, no-ops,
grayscale, full action set, life loss, reward clipping) are listed with their defaults in ``--help``. Evaluation
returns are raw game scores; the summary adds the human-normalised score ``(score - random) / (human - random)``
(reference scores in ``envs/atari_scores.json`` with their source). Needs ``pip install -e '.[atari]'``.
"""

from __future__ import annotations

import math
import sys

from dreamer_rl.config import Recipe
from recipes.cli import build_parser, run_main

#: the suite's recipe defaults, under every preset
ATARI_BASE = {"env": {"from_pixels": True, "action_repeat": 4, "max_episode_frames": 108_000}}


def _known_game(recipe: Recipe) -> None:
    from envs.atari import resolve

    resolve(recipe.env.task)  # one-line UnknownTaskError with close matches; MissingDependencyError without ale-py


def human_normalized_summary(recipe: Recipe, summary: dict) -> dict:
    """``{"eval_human_normalized": (eval_return - random) / (human - random)}`` for the recipe's game."""
    from envs.atari import human_normalized

    ret = float(summary["eval_return"])
    return {"eval_human_normalized": float("nan") if math.isnan(ret) else human_normalized(recipe.env.task, ret)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m recipes.atari", "Dreamer on Atari (ale-py; steps are env frames). Without "
                          "--preset: dreamer_v3 atari100k (64x64 colour, no sticky actions, minimal action set); "
                          "under any preset the env is Atari's (pixels, action repeat 4, 108k-frame episodes). "
                          "The defaults below are the recipe's, before presets.")
    parser.add_argument("--task", default=None, help="game, e.g. pong or ms_pacman (same as --env.task atari_pong)")
    args = parser.parse_args(argv)
    task = None if args.task is None else args.task if args.task.startswith("atari_") else f"atari_{args.task}"
    if task is None and getattr(args, "env.task") is None and not args.eval:  # (--eval: the checkpoint's task)
        setattr(args, "env.task", "atari_pong")
    return run_main(args, suite="atari", task=task, default_presets=("dreamer_v3", "atari100k"),
                    base=ATARI_BASE, check=_known_game, report=human_normalized_summary)


if __name__ == "__main__":
    sys.exit(main())
