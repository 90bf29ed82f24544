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


def run_recipe_here(cwd: Path, *args: str, suite: str = "dmc") -> subprocess.CompletedProcess[str]:
    """``python -m recipes.<suite> *args`` run inside this test process, in ``cwd``; same result as :func:`run_recipe`.

    What the command prints to stdout and stderr (its log lines too) is captured, ``SystemExit`` becomes the return
    code, and any other exception propagates (a user mistake must never end in a traceback). It skips the ~5 s a
    fresh interpreter takes to import torch, TorchRL and MLflow; tests of the process itself (exit status of the
    real interpreter, signals, a kill) keep using :func:`run_recipe`.
    """
    import contextlib
    import importlib
    import io
    import logging

    module = importlib.import_module(f"recipes.{suite}")
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MUJOCO_GL")}
    saved_cwd = Path.cwd()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["MUJOCO_GL"] = "egl"
    root.addHandler(handler)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = module.main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        root.removeHandler(handler)
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess([suite, *args], code or 0, out.getvalue(), err.getvalue())


def figures(stdout: str) -> dict[str, str]:
    """The ``name=value`` lines a command printed."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line)


def train_then_resume_without(cwd: Path, option: str, value: str) -> None:
    """A V3 debug run of 400 frames with ``--<option> <value>``, resumed to 500 frames without it: a speed option
    (no part of the recipe's math) reaches the run, and a resume may change it."""
    args = ["--task", "cartpole_balance", "--preset", "dreamer_v3", "dmc_proprio", "debug", "--run.name", "speed",
            "--run.eval_every", "400", "--run.save_every", "300", "--tracking.video", "false",
            "--env.max_episode_frames", "100"]
    first = run_recipe_here(cwd, *args, "--run.steps", "400", f"--{option}", value)
    assert first.returncode == 0, first.stderr[-3000:]
    assert int(figures(first.stdout)["updates"]) > 0
    again = run_recipe_here(cwd, *args, "--run.steps", "500")
    assert again.returncode == 0, again.stderr[-3000:]
    assert int(figures(again.stdout)["frames"]) == 500
