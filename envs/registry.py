"""Task names -> TorchRL environments, dispatched on the suite prefix.

A name is ``<suite>_<task>``: ``dmc_cheetah_run`` (DeepMind Control, :mod:`envs.dmc`), ``gym_Pendulum-v1``
(Gymnasium, :mod:`envs.gym`), ``atari_pong`` (Atari 2600 through ale-py, :mod:`envs.atari`). Each suite lives in its
own module, imported only when a name of that suite is asked for, so a missing optional dependency only matters to
the suite that needs it. A suite module provides

- ``task_names() -> list[str]``: every accepted full name (with the prefix);
- ``make(name, *, from_pixels, action_repeat, image_size, max_episode_frames, seed, device, **options) -> EnvBase``,
  whose keyword defaults are the suite's own (dmc / gym: repeat 2, 1000 frames; atari: repeat 4, 108,000 frames)
  and whose extra keyword ``options`` are suite-specific (atari: ``sticky_actions``, ``noop_max``, ``grayscale``,
  ``full_action_space``, ``life_loss``; dmc: ``physics_state``; gym takes none).

Adding a suite is one line in :data:`SUITES` plus its module.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
from torchrl.envs import EnvBase

from dreamer_rl.errors import MissingDependencyError, UnknownTaskError, UserError

__all__ = ["SUITES", "list_tasks", "make_env", "unknown_task"]

#: suite key (the name prefix without its trailing ``_``) -> module implementing it.
SUITES: dict[str, str] = {"dmc": "envs.dmc", "gym": "envs.gym", "atari": "envs.atari"}

_MAX_LISTED = 80


def _suite_module(suite: str) -> ModuleType:
    return importlib.import_module(SUITES[suite])


def _available_tasks() -> dict[str, list[str]]:
    tasks: dict[str, list[str]] = {}
    for suite in SUITES:
        try:
            tasks[suite] = list(_suite_module(suite).task_names())
        except MissingDependencyError:
            tasks[suite] = []
    return tasks


def list_tasks() -> dict[str, list[str]]:
    """Suite key -> every accepted task name of that suite, e.g. ``{"dmc": ["dmc_acrobot_swingup", ...]}``.

    ``dmc`` lists every ``dm_control.suite`` task plus Dreamer's aliases (``dmc_cup_catch``, ``dmc_pointmass_easy``);
    ``gym`` lists ``gym_<id>`` for each id in Gymnasium's registry; ``atari`` the 57 games of Atari-57
    (``atari_pong``, ``atari_ms_pacman``, ...). A suite whose dependency is missing lists nothing.
    """
    return _available_tasks()


def unknown_task(name: str, suite: str | None, known: Sequence[str]) -> UnknownTaskError:
    """The one-line error for an unknown ``name``: suites, close matches, and the tasks of ``suite`` if known."""
    suites = ", ".join(f"{s}_" for s in SUITES)
    parts = [f"unknown task {name!r}", f"suites: {suites}"]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        parts.append(f"did you mean: {', '.join(close)}")
    if suite is not None and known:
        listed = ", ".join(known[:_MAX_LISTED])
        more = f", ... ({len(known) - _MAX_LISTED} more, see envs.list_tasks())" if len(known) > _MAX_LISTED else ""
        parts.append(f"{suite} tasks: {listed}{more}")
    elif suite is None:
        parts.append("names look like dmc_<domain>_<task>, gym_<gymnasium id> or atari_<game>")
    return UnknownTaskError("; ".join(parts))


_COMMON = ("name", "from_pixels", "action_repeat", "image_size", "max_episode_frames", "seed", "device")


def _suite_options(suite: str) -> list[str]:
    """The keyword options of a suite's ``make`` beyond the common ones."""
    params = inspect.signature(_suite_module(suite).make).parameters
    return [p for p in params if p not in _COMMON]


def _check_options(name: str, suite: str, options: dict[str, Any]) -> None:
    accepted = _suite_options(suite)
    for key in options:
        if key in accepted:
            continue
        owners = [s for s in SUITES if s != suite and key in _suite_options(s)]
        if owners:
            where = ", ".join(f"{s}_" for s in owners)
            raise UserError(f"env option {key!r} does not apply to {name}: it applies to {where} tasks only")
        known = ", ".join(accepted) if accepted else "none"
        raise UserError(f"unknown env option {key!r} for {name}; {suite}_ tasks take: {known}")


def make_env(
    name: str,
    *,
    from_pixels: bool = True,
    action_repeat: int | str | None = None,
    image_size: int = 64,
    max_episode_frames: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **suite_options: Any,
) -> EnvBase:
    """Build the TorchRL env for ``name`` (``dmc_cheetah_run``, ``gym_Pendulum-v1``, ``atari_pong``, ...).

    Args:
        name: ``<suite>_<task>``; see :func:`list_tasks`.
        from_pixels: observe ``pixels`` (uint8 ``[C, image_size, image_size]``) instead of the proprio
            ``observation`` (float32 ``[D]``). A suite that cannot give the asked-for kind rejects it with a
            ``UserError`` (atari is observed from pixels only and rejects ``False``).
        action_repeat: control frames per agent step (rewards summed), or ``"planet"`` for PlaNet's per-domain
            repeats (dmc only); ``None``: the suite's default (dmc / gym 2, atari 4).
        image_size: side of the square rendered frame.
        max_episode_frames: episode length in control frames; the episode truncates after
            ``max_episode_frames // action_repeat`` agent steps. ``None``: the suite's default (dmc / gym 1000,
            atari 108,000).
        seed: seed applied at construction through ``env.set_seed``.
        device: where the env's tensors live.
        **suite_options: options of one suite, forwarded to its ``make`` (atari: ``sticky_actions``, ``noop_max``,
            ``grayscale``, ``full_action_space``, ``life_loss``; see :func:`envs.atari.make`; dmc: ``physics_state``,
            see :func:`envs.dmc.make`).

    Returns:
        A ``TransformedEnv`` whose last transform is ``InitTracker`` (so every reset/step carries ``is_init``).

    Raises:
        UnknownTaskError: unknown suite or task (one line: the name, the suites, close matches, the suite's tasks).
        MissingDependencyError: the suite's optional dependency is not installed.
        UserError: an option the suite does not take (one line naming the option and the suites that take it).
    """
    suite = next((s for s in SUITES if name.startswith(f"{s}_")), None)
    if suite is None:
        known = [t for names in _available_tasks().values() for t in names]
        raise unknown_task(name, None, known)
    _check_options(name, suite, suite_options)
    defaults: dict[str, Any] = {"action_repeat": action_repeat, "max_episode_frames": max_episode_frames}
    given = {key: value for key, value in defaults.items() if value is not None}
    return _suite_module(suite).make(
        name,
        from_pixels=from_pixels,
        image_size=image_size,
        seed=seed,
        device=device,
        **given,
        **suite_options,
    )
