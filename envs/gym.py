"""Gymnasium tasks (``gym_<id>``, e.g. ``gym_Pendulum-v1``, ``gym_CartPole-v1``) as TorchRL environments.

A thin stack over TorchRL's ``GymEnv``; proprio observations only (``observation``, float32 ``[D]``).

Frame counting follows :mod:`envs.dmc`: one agent step is ``action_repeat`` Gymnasium steps (``GymEnv``'s
``frame_skip``, rewards summed), and an episode lasts ``max_episode_frames`` Gymnasium steps, capped by the id's
registered limit (CartPole-v1: 500, Pendulum-v1: 200) and rounded down to a whole number of agent steps; the
time limit sets ``truncated``, the task's own end sets ``terminated``.

Actions: discrete spaces are one-hot (``OneHot`` spec, TorchRL's default); bounded continuous spaces are exposed as
[-1, 1] and rescaled to the env's range by ``ActionScaling``. float64 observations are cast to float32.
"""

from __future__ import annotations

from typing import Any

import torch
from torchrl.data import Bounded
from torchrl.envs import Compose, DoubleToFloat, GymEnv, InitTracker, Transform, TransformedEnv
from torchrl.envs.transforms import ActionScaling

from dreamer_rl.errors import MissingDependencyError, UserError

__all__ = ["make", "task_names"]

PREFIX = "gym_"


def _gymnasium() -> Any:
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError.for_extra("gymnasium", "gym") from exc
    return gymnasium


def task_names() -> list[str]:
    """``gym_<id>`` for every id in Gymnasium's registry, sorted."""
    return sorted(f"{PREFIX}{env_id}" for env_id in _gymnasium().envs.registry)


def make(
    name: str,
    *,
    from_pixels: bool = True,
    action_repeat: int | str = 2,
    image_size: int = 64,
    max_episode_frames: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> TransformedEnv:
    """Build ``gym_<id>`` as ``TransformedEnv(GymEnv(id), [ActionScaling], [DoubleToFloat], InitTracker())``.

    ``image_size`` is accepted for a uniform signature and unused (no pixels from this suite).
    """
    gymnasium = _gymnasium()
    env_id = name[len(PREFIX) :]
    registry = gymnasium.envs.registry
    if env_id not in registry:
        from envs.registry import unknown_task

        raise unknown_task(name, "gym", task_names())
    if from_pixels:
        raise UserError(f"{name}: gym_ tasks give proprio observations only; pass from_pixels=False")
    if isinstance(action_repeat, bool) or not isinstance(action_repeat, int) or action_repeat < 1:
        raise UserError(f"action_repeat for gym_ tasks must be a positive integer, got {action_repeat!r}")
    frames = max_episode_frames
    registered = registry[env_id].max_episode_steps
    if registered is not None:
        frames = min(frames, registered)
    frames = (frames // action_repeat) * action_repeat
    if frames < 1:
        raise UserError(
            f"max_episode_frames ({max_episode_frames}) must be at least action_repeat ({action_repeat})"
        )
    try:
        base = GymEnv(env_id, frame_skip=action_repeat, device=device, max_episode_steps=frames)
    except gymnasium.error.DependencyNotInstalled as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{name} needs a package that is not installed: {reason}") from exc

    transforms: list[Transform] = []
    action_spec = base.action_spec
    if isinstance(action_spec, Bounded) and action_spec.dtype.is_floating_point:
        low, high = action_spec.space.low, action_spec.space.high
        finite = bool(torch.isfinite(low).all() and torch.isfinite(high).all())
        if finite and not (bool((low == -1).all()) and bool((high == 1).all())):
            transforms.append(ActionScaling())
    if any(spec.dtype == torch.float64 for spec in base.observation_spec.values(True, True)):
        transforms.append(DoubleToFloat())
    transforms.append(InitTracker())
    env = TransformedEnv(base, Compose(*transforms))
    env.set_seed(seed)
    return env
