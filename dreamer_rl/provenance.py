"""Where a run came from: the code's git commit and the command line, as MLflow run tags.

MLflow's UI shows ``mlflow.source.git.commit`` beside each run (and links it for known remotes),
``mlflow.source.name`` as the run's source and ``mlflow.source.type`` ``LOCAL``; we add ``command`` (the whole
command line, quoted so that it can be pasted back into a shell) and ``git_dirty`` (``true`` when the working tree
had uncommitted changes, so the commit alone does not reproduce the run).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["command_line", "git_state", "provenance_tags", "set_command_line"]

_PACKAGE_DIR = Path(__file__).resolve().parent
#: the command a worker process reports instead of its own (a spawned worker's argv is multiprocessing's)
_command_override: str | None = None


def set_command_line(command: str | None) -> None:
    """Report ``command`` as this process's command line (``recipes.sweep``'s workers get their parent's)."""
    global _command_override
    _command_override = command


def _argv() -> list[str]:
    if _command_override is not None:
        return shlex.split(_command_override)
    return list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])


def command_line() -> str:
    """The command that started this process, e.g. ``python -m recipes.dmc --task cheetah_run --run.seed 0 1``.

    ``sys.orig_argv`` keeps ``-m recipes.dmc`` (``sys.argv[0]`` would be the module's file path); the interpreter
    is shown by its name only, so the tag reads the same on every machine.
    """
    if _command_override is not None:
        return _command_override
    argv = _argv()
    if argv:
        argv[0] = Path(argv[0]).name
    return shlex.join(argv)


def git_state(path: Path = _PACKAGE_DIR) -> tuple[str, bool] | None:
    """``(commit, dirty)`` of the git checkout holding ``path`` (this package by default); ``None`` outside git.

    ``dirty``: tracked files differ from the commit (untracked files do not count).
    """
    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit, bool(status.strip())) if commit else None


def provenance_tags() -> dict[str, str]:
    """Run tags naming the code and the command: ``mlflow.source.*``, ``command`` and, in a git checkout,
    ``mlflow.source.git.commit`` and ``git_dirty``."""
    argv = _argv()
    module = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-m"), None)
    tags = {"command": command_line(), "mlflow.source.type": "LOCAL",
            "mlflow.source.name": module or Path(sys.argv[0] or "python").name}
    state = git_state()
    if state is not None:
        tags["mlflow.source.git.commit"], dirty = state[0], state[1]
        tags["git_dirty"] = str(dirty).lower()
    return tags
