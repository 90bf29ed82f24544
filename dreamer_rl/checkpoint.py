"""Checkpoints: one file holding everything a run needs to resume, written atomically.

The file is written to ``<name>.tmp``, flushed to disk, then renamed over ``<name>``: a run killed at any moment
(SIGKILL included) leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamer_rl.errors import UserError

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (plus the format version) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; an unreadable or foreign file raises a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass the path of a .pt file written by a run "
                        f"(runs/<name>/checkpoints/latest.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the user's file problem
        raise UserError(f"checkpoint {path} is unreadable ({type(exc).__name__}); "
                        f"pass a .pt file written by a dreamer_rl run") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} is not a dreamer_rl checkpoint of format {FORMAT_VERSION}")
    return state


def load_agent_weights(agent: torch.nn.Module, weights: dict[str, Any], source: str | Path) -> None:
    """``agent.load_state_dict(weights)``; weights of another network layout (a checkpoint written by an earlier
    dreamer_rl whose layers have since changed, e.g. V3's biases before its norms) raise a one-line
    :class:`UserError` naming what differs, instead of a state-dict traceback."""
    mine, theirs = set(agent.state_dict()), set(weights)
    missing, unexpected = sorted(mine - theirs), sorted(theirs - mine)
    diff = "; ".join(f"{what} {len(names)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                     for what, names in (("missing", missing), ("unexpected", unexpected)) if names)
    if not diff:
        try:
            agent.load_state_dict(weights)
            return
        except RuntimeError as exc:  # same names, other shapes: its first detail line names the tensor
            lines = str(exc).splitlines()
            diff = lines[1].strip() if len(lines) > 1 else str(exc)
    raise UserError(f"{source} holds a network of another layout than this dreamer_rl builds for its recipe "
                    f"({diff}): resume it with the version that wrote it, or start a new run")


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch from the run seed (envs get seeds derived from it)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
