"""Train or evaluate a Dreamer agent on any registered Gymnasium env (discrete, MultiDiscrete or Box actions).

    python -m recipes.gym --env CartPole-v1                          # DreamerV3 (size1m) from the state vector
    python -m recipes.gym --env CartPole-v1 --env.from_pixels true   # from rgb_array frames resized to 64x64
    python -m recipes.gym --env Pendulum-v1 --preset dreamer_v1 gym
    python -m recipes.gym --eval --checkpoint runs/<name>/checkpoints/latest.pt

Without ``--preset`` the recipe is ``dreamer_v3 gym``. Under every preset the env steps one Gymnasium frame per
action and is observed through its state vector (``--env.from_pixels true`` renders). Action spaces are detected:
Discrete -> one-hot, MultiDiscrete -> a one-hot per part, bounded Box -> [-1, 1] rescaled. Dict observations give
``pixels`` (the image part) and ``observation`` (the other parts concatenated).
"""

from __future__ import annotations

import sys

from recipes.cli import build_parser, run_main

#: the suite's recipe defaults, under every preset
GYM_BASE = {"env": {"from_pixels": False, "action_repeat": 1}}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m recipes.gym", "Dreamer on any Gymnasium env (steps are env frames). Without "
                          "--preset: dreamer_v3 gym (size1m, state vector, one frame per action). The defaults below "
                          "are the recipe's, before presets.")
    parser.add_argument("--env", dest="gym_id", default=None, metavar="ID",
                        help="registered Gymnasium id, e.g. CartPole-v1 (same as --env.task gym_CartPole-v1)")
    args = parser.parse_args(argv)
    gym_id = args.gym_id
    task = None if gym_id is None else gym_id if gym_id.startswith("gym_") else f"gym_{gym_id}"
    if task is None and getattr(args, "env.task") is None and not args.eval:  # (--eval: the checkpoint's task)
        setattr(args, "env.task", "gym_CartPole-v1")
    return run_main(args, suite="gym", task=task, default_presets=("dreamer_v3", "gym"), base=GYM_BASE,
                    check=_known_env)


def _known_env(recipe) -> None:  # noqa: ANN001
    from envs.gym import task_names

    if recipe.env.task not in task_names():
        from envs.registry import unknown_task

        raise unknown_task(recipe.env.task, "gym", task_names())


if __name__ == "__main__":
    sys.exit(main())
