"""Running the recipes as a user would: a subprocess in a scratch working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def recipe_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["MUJOCO_GL"] = "egl"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_recipe(cwd: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m recipes.dmc *args`` in ``cwd``; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "recipes.dmc", *args], cwd=cwd, env=env or recipe_env(),
                          capture_output=True, text=True, timeout=timeout)


def figures(stdout: str) -> dict[str, str]:
    """The ``name=value`` lines a command printed."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line)
