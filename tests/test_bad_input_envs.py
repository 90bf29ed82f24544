"""User mistakes with the Atari and Gymnasium recipes and ``train(env, recipe)``: one line naming what was wrong and
what is allowed, exit status 2, nothing written (no run folder, no MLflow store).

The mistakes that need this process's state (an env registered by the test, ale-py hidden) call the recipes'
``main(argv)`` in-process; the misspelt names run ``python -m recipes.<suite>`` as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from dreamer_rl.errors import UserError
from tests.helpers import recipe_env


class _TinyEnv(gymnasium.Env):
    """A 3-dim state vector, two actions, no rendering (its ``__init__`` takes no ``render_mode``)."""

    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium's own class attribute
    action_space: spaces.Space = spaces.Discrete(2)

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(3, np.float32), 0.0, False, False, {}


class TupleActionsEnv(_TinyEnv):
    action_space = spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)])


class MultiBinaryActionsEnv(_TinyEnv):
    action_space = spaces.MultiBinary(4)


class VectorOnlyEnv(_TinyEnv):
    """Declares no render mode, as a state-vector env usually does."""


TOY_ENVS = {"DreamerTest/TupleActions-v0": TupleActionsEnv, "DreamerTest/MultiBinaryActions-v0": MultiBinaryActionsEnv,
            "DreamerTest/VectorOnly-v0": VectorOnlyEnv}


@pytest.fixture
def toy_envs() -> Iterator[None]:
    """The toy envs in gymnasium's registry for one test (so other tests' task lists do not show them)."""
    for env_id, cls in TOY_ENVS.items():
        gymnasium.register(env_id, entry_point=cls, max_episode_steps=50)
    try:
        yield
    finally:
        for env_id in TOY_ENVS:
            gymnasium.envs.registry.pop(env_id, None)


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in ``tmp_path`` with the MLflow store at ``tmp_path/mlflow/mlflow.db`` (the default store's place)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    return tmp_path


def assert_nothing_written(cwd: Path) -> None:
    runs = cwd / "runs"
    assert not runs.exists() or not any(runs.iterdir()), f"a run folder was written: {list(runs.iterdir())}"
    assert not (cwd / "mlflow").exists(), "no MLflow store (hence no MLflow run) may be created"


def assert_one_line(err: str, code: int | None, *fragments: str) -> str:
    assert code == 2, (code, err[-2000:])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def run_in_process(suite: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str]:
    """``recipes.<suite>.main(argv)``: (exit status, stderr)."""
    import importlib

    main = importlib.import_module(f"recipes.{suite}").main
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*argv, "--run.runs_dir", "runs"])
    return info.value.code, capsys.readouterr().err


# -- as a user types them: python -m recipes.<suite> -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("suite", "args", "fragments"),
    [
        ("atari", ["--task", "pongg"], ["unknown task 'atari_pongg'", "did you mean: atari_pong"]),
        ("gym", ["--env", "CartPoel-v1"], ["unknown task 'gym_CartPoel-v1'", "did you mean: gym_CartPole-v1"]),
    ],
)
def test_misspelt_task_from_the_command_line(tmp_path: Path, suite: str, args: list[str],
                                             fragments: list[str]) -> None:
    env = recipe_env()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    result = subprocess.run([sys.executable, "-m", f"recipes.{suite}", *args, "--preset", "debug"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert_one_line(result.stderr, result.returncode, *fragments)
    assert result.stdout == "", "the recipe is printed only once it is valid"
    assert_nothing_written(tmp_path)


# -- in-process ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "shown"),
    [("DreamerTest/TupleActions-v0", "action space Tuple(Discrete(2), Discrete(3)) is not supported"),
     ("DreamerTest/MultiBinaryActions-v0", "action space MultiBinary(4) is not supported")],
)
def test_unsupported_action_space(scratch: Path, toy_envs: None, capsys: pytest.CaptureFixture[str], env_id: str,
                                  shown: str) -> None:
    code, err = run_in_process("gym", ["--env", env_id, "--preset", "dreamer_v3", "gym", "debug"], capsys)
    assert_one_line(err, code, f"gym_{env_id}: {shown}", "supported: Discrete, MultiDiscrete, bounded Box")
    assert_nothing_written(scratch)


@pytest.mark.parametrize(
    "args",
    [["--preset", "dreamer_v3", "gym", "debug", "--env.from_pixels", "true"],
     ["--preset", "dreamer_v3", "dmc_vision"]],
    ids=["from_pixels", "dmc_vision"],
)
def test_pixels_from_an_env_that_cannot_render(scratch: Path, toy_envs: None, capsys: pytest.CaptureFixture[str],
                                               args: list[str]) -> None:
    code, err = run_in_process("gym", ["--env", "DreamerTest/VectorOnly-v0", *args], capsys)
    assert_one_line(err, code, "gym_DreamerTest/VectorOnly-v0 cannot render rgb_array frames", "from_pixels=False")
    assert_nothing_written(scratch)


def test_missing_ale_py_names_the_extra(scratch: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ale_py", None)  # `import ale_py` now raises ImportError
    code, err = run_in_process("atari", ["--task", "pong", "--preset", "debug"], capsys)
    assert_one_line(err, code, "the 'ale-py' package is required", "pip install -e '.[atari]'")
    assert_nothing_written(scratch)


@pytest.mark.parametrize("suite", ["atari", "gym"])
def test_sticky_actions_out_of_range(scratch: Path, capsys: pytest.CaptureFixture[str], suite: str) -> None:
    code, err = run_in_process(suite, ["--preset", "debug", "--env.sticky_actions", "2"], capsys)
    assert_one_line(err, code, "bad value for env.sticky_actions: '2'", "less than or equal to 1")
    assert_nothing_written(scratch)


def test_parallel_envs_from_an_env_instance(scratch: Path) -> None:
    from dreamer_rl import train
    from recipes import make_recipe

    recipe = make_recipe("dreamer_v3", "gym", "debug", overrides={"env.num_envs": 2, "run.steps": 200,
                                                                   "run.runs_dir": str(scratch / "runs")})
    env = gymnasium.make("CartPole-v1")
    try:
        with pytest.raises(UserError) as info:
            train(env, recipe)
    finally:
        env.close()
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert "env.num_envs > 1" in message and "not an env instance" in message, message
    assert_nothing_written(scratch)
