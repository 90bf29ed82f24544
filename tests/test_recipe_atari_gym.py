"""End-to-end debug runs of ``python -m recipes.atari`` and ``recipes.gym`` (their ``main(argv)``, in this process)
and of the library entry point ``train(env, recipe)`` with each kind of env it accepts.

Every run is the ``debug`` preset with a few hundred frames on one torch thread (the models are tiny: more threads
only contend with whatever else runs on the CPU). MLflow goes to one SQLite store for the module (a fresh store costs
seconds of schema migration); runs that are not checked for their MLflow records leave tracking off.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from mlflow.tracking import MlflowClient
from tensordict import TensorDict

from dreamer_rl.checkpoint import load_checkpoint
from dreamer_rl.errors import UserError
from tests.helpers import figures

ONE_THREAD = ["--run.threads", "1"]
NO_TRACKING = ["--tracking.enabled", "false"]
SUMMARY_KEYS = {"frames", "updates", "episodes", "train_return", "eval_return"}


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture(autouse=True)
def _scoped(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test: the module's MLflow store, ``tmp_path`` as working directory, torch's thread count restored."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_cli(suite: str, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """``python -m recipes.<suite> *args`` as ``main(argv)`` with runs under ``tmp_path/runs``: its printed figures."""
    main = importlib.import_module(f"recipes.{suite}").main
    capsys.readouterr()
    rc = main([*args, *ONE_THREAD, "--run.runs_dir", str(tmp_path / "runs")])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    return figures(out.out)


def stored_rows(run_dir: Path) -> TensorDict:
    """The replay rows a run stored: its memmap files, cut to the length its checkpoint records."""
    length = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["replay"]["len"]
    assert length > 0
    return TensorDict.load_memmap(run_dir / "replay")[:length]


def mlflow_run(uri: str, run_name: str) -> Any:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dreamer_rl")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{run_name}'")
    return run


# -- recipes.atari ---------------------------------------------------------------------------------------------------
def test_atari_pong_dreamer_v3_atari100k(tmp_path: Path, capsys: pytest.CaptureFixture[str], mlflow_uri: str) -> None:
    out = run_cli("atari", ["--task", "pong", "--preset", "dreamer_v3", "atari100k", "debug", "--run.steps", "200",
                            "--run.name", "pong100k"], tmp_path, capsys)
    assert int(out["frames"]) == 200
    ret, normalized = float(out["eval_return"]), float(out["eval_human_normalized"])
    assert math.isfinite(ret)
    assert normalized == pytest.approx((ret - -20.7) / (14.6 - -20.7))  # pong: random -20.7, human 14.6

    run_dir = tmp_path / "runs" / "pong100k"
    recipe = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["recipe"]
    env = recipe["env"]
    assert env["task"] == "atari_pong" and env["from_pixels"] is True
    assert env["action_repeat"] == 4 and env["sticky_actions"] == 0.0 and env["grayscale"] is False
    assert env["full_action_space"] is False and env["max_episode_frames"] == 200  # debug's, after atari100k
    assert recipe["run"]["algo"] == "dreamer_v3"
    rows = stored_rows(run_dir)
    assert rows["pixels"].shape[1:] == (3, 64, 64)  # colour frames
    assert rows["action"].shape[-1] == 6  # pong's minimal action set, one-hot

    run = mlflow_run(mlflow_uri, "pong100k")
    assert run.info.status == "FINISHED"
    assert run.data.tags["algo"] == "dreamer_v3" and run.data.tags["task"] == "atari_pong"
    assert run.data.metrics["eval/return"] == pytest.approx(ret)
    assert run.data.metrics["eval/human_normalized"] == pytest.approx(normalized)
    assert run.data.params["env.sticky_actions"] == "0.0" and run.data.params["env.grayscale"] == "False"


def test_atari_breakout_dreamer_v1_discrete_life_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli("atari", ["--task", "breakout", "--preset", "dreamer_v1", "atari", "debug", "--run.steps", "300",
                            "--run.name", "breakout", *NO_TRACKING], tmp_path, capsys)
    assert int(out["frames"]) == 300 and int(out["updates"]) > 0
    assert math.isfinite(float(out["eval_return"])) and "eval_human_normalized" in out

    run_dir = tmp_path / "runs" / "breakout"
    recipe = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["recipe"]
    assert recipe["env"]["life_loss"] is True and recipe["model"]["pcont"] is True
    assert recipe["behavior"]["expl"] == "epsilon_greedy" and recipe["run"]["algo"] == "dreamer_v1"
    rows = stored_rows(run_dir)
    acted = rows["action"][~rows["is_init"].squeeze(-1)]
    assert acted.shape[-1] == 4  # breakout's minimal action set
    assert torch.equal(acted.sum(-1), torch.ones(len(acted))) and bool(((acted == 0) | (acted == 1)).all())


# -- recipes.gym -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "obs_key", "action_dim"),
    [
        (["--env", "CartPole-v1", "--preset", "dreamer_v3", "gym", "debug"], "observation", 2),
        (["--env", "Pendulum-v1", "--preset", "dreamer_v1", "gym", "debug"], "observation", 1),
        (["--env", "CartPole-v1", "--preset", "dreamer_v2", "gym", "debug", "--env.from_pixels", "true"], "pixels", 2),
    ],
    ids=["cartpole_v3", "pendulum_v1_continuous", "cartpole_v2_pixels"],
)
def test_gym_debug_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], obs_key: str,
                       action_dim: int) -> None:
    out = run_cli("gym", [*args, "--run.steps", "300", "--run.name", "gym", *NO_TRACKING], tmp_path, capsys)
    assert int(out["frames"]) == 300 and int(out["updates"]) > 0 and math.isfinite(float(out["eval_return"]))
    rows = stored_rows(tmp_path / "runs" / "gym")
    assert obs_key in rows.keys() and rows["action"].shape[-1] == action_dim
    acted = rows["action"][~rows["is_init"].squeeze(-1)]
    if action_dim == 1:  # Pendulum: a continuous action in [-1, 1], not a one-hot
        assert bool((acted.abs() <= 1).all()) and not bool(((acted == 0) | (acted == 1)).all())
    else:
        assert torch.equal(acted.sum(-1), torch.ones(len(acted)))
    if obs_key == "pixels":  # rendered CartPole frames: 64x64 colour, and they change as the pole moves
        pixels = rows["pixels"]
        assert pixels.shape[1:] == (3, 64, 64) and pixels.dtype == torch.uint8
        assert not torch.equal(pixels[0], pixels[10]) and int(pixels.max()) > int(pixels.min())


def test_gym_two_parallel_envs_with_their_own_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli("gym", ["--env", "CartPole-v1", "--preset", "dreamer_v3", "gym", "debug", "--env.num_envs", "2",
                          "--run.steps", "300", "--run.name", "par", *NO_TRACKING], tmp_path, capsys)
    assert int(out["frames"]) == 300 and math.isfinite(float(out["eval_return"]))
    rows = stored_rows(tmp_path / "runs" / "par")
    streams = rows["stream"]
    assert sorted(streams.unique().tolist()) == [0, 1]
    starts = rows["is_init"].squeeze(-1)
    first = [rows["observation"][starts & (streams == s)][0] for s in (0, 1)]
    assert not torch.allclose(first[0], first[1]), "both envs started the same episode: per-env seeds missing"
    episodes = [set(rows["episode"][streams == s].tolist()) for s in (0, 1)]
    assert episodes[0] and episodes[1] and not episodes[0] & episodes[1]


# -- train(env, recipe) ----------------------------------------------------------------------------------------------
def _recipe(tmp_path: Path, *presets: str, **overrides: Any) -> Any:
    from recipes import make_recipe

    base = {"run.runs_dir": str(tmp_path / "runs"), "run.threads": 1, "run.steps": 300, "tracking.enabled": False}
    return make_recipe(*presets, overrides={**base, **overrides})


def _check_summary(summary: dict[str, Any], frames: int) -> None:
    assert set(summary) == SUMMARY_KEYS
    assert summary["frames"] == frames and summary["updates"] > 0 and summary["episodes"] > 0
    assert math.isfinite(summary["eval_return"])


def test_train_gymnasium_env_is_tracked_under_its_id(tmp_path: Path, mlflow_uri: str) -> None:
    from dreamer_rl import train

    recipe = _recipe(tmp_path, "dreamer_v3", "debug", **{"run.steps": 600, "tracking.enabled": True,
                                                         "run.name": "train_gymnasium"})
    summary = train(gymnasium.make("CartPole-v1"), recipe)
    _check_summary(summary, 600)
    run = mlflow_run(mlflow_uri, "train_gymnasium")
    assert run.info.status == "FINISHED"
    assert run.data.tags["task"] == "gym_CartPole-v1" and run.data.tags["algo"] == "dreamer_v3"
    assert run.data.metrics["eval/return"] == pytest.approx(summary["eval_return"])
    stored = load_checkpoint(tmp_path / "runs" / "train_gymnasium" / "checkpoints" / "latest.pt")
    assert stored["recipe"]["env"]["task"] == "gym_CartPole-v1"


def test_train_torchrl_env(tmp_path: Path) -> None:
    from dreamer_rl import train
    from envs import make_env

    env = make_env("gym_CartPole-v1", from_pixels=False, action_repeat=1)
    _check_summary(train(env, _recipe(tmp_path, "dreamer_v3", "gym", "debug")), 300)


def test_train_task_name(tmp_path: Path) -> None:
    from dreamer_rl import train

    summary = train("gym_CartPole-v1", _recipe(tmp_path, "dreamer_v3", "gym", "debug", **{"run.name": "by_name"}))
    _check_summary(summary, 300)
    stored = load_checkpoint(tmp_path / "runs" / "by_name" / "checkpoints" / "latest.pt")
    assert stored["recipe"]["env"]["task"] == "gym_CartPole-v1"


class CountingCartPole(CartPoleEnv):
    """CartPole that remembers its instances and counts each one's steps."""

    instances: list[CountingCartPole] = []  # noqa: RUF012 - shared on purpose

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps = 0
        CountingCartPole.instances.append(self)

    def step(self, action: Any) -> Any:
        self.steps += 1
        return super().step(action)


@pytest.fixture
def counting_cartpole() -> Iterator[str]:
    env_id = "DreamerTest/CountingCartPole-v0"
    CountingCartPole.instances.clear()
    gymnasium.register(env_id, entry_point=CountingCartPole, max_episode_steps=500)
    try:
        yield env_id
    finally:
        gymnasium.envs.registry.pop(env_id, None)
        CountingCartPole.instances.clear()


def test_train_callable_is_called_again_for_evaluation(tmp_path: Path, counting_cartpole: str) -> None:
    from dreamer_rl import train

    made: list[gymnasium.Env] = []

    def make() -> gymnasium.Env:
        made.append(gymnasium.make(counting_cartpole))
        return made[-1]

    _check_summary(train(make, _recipe(tmp_path, "dreamer_v3", "gym", "debug")), 300)
    assert len(made) >= 2 and len({id(e) for e in made}) == len(made)  # training env, then one per evaluation
    first, *evaluated = CountingCartPole.instances
    assert first.steps == 300  # action repeat 1: every training frame is a step of the first env, and only those
    assert all(0 < e.steps <= 200 for e in evaluated)  # one debug episode (200 frames) each


def test_train_gymnasium_instance_is_not_the_evaluated_one(tmp_path: Path, counting_cartpole: str) -> None:
    from dreamer_rl import train

    given = gymnasium.make(counting_cartpole)
    _check_summary(train(given, _recipe(tmp_path, "dreamer_v3", "gym", "debug")), 300)
    first, *fresh = CountingCartPole.instances
    assert first is given.unwrapped and first.steps == 300
    assert fresh and all(0 < e.steps <= 200 for e in fresh), "evaluation must step a fresh instance"


# -- make_recipe -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("presets", "overrides", "fragments"),
    [
        (("dreamer_v3", "debgu"), {}, ["unknown preset 'debgu'", "did you mean debug?"]),
        (("dreamer_v3", "debug"), {"train.bacth_size": 8}, ["unknown field train.bacth_size"]),
        (("dreamer_v3", "debug"), {"train.batch_size": "many"}, ["bad value for train.batch_size: 'many'",
                                                                  "integer"]),
        (("dreamer_v3",), {"env.sticky_actions": 2}, ["bad value for env.sticky_actions: 2",
                                                      "less than or equal to 1"]),
    ],
)
def test_make_recipe_mistakes_are_one_line_user_errors(presets: tuple[str, ...], overrides: dict[str, Any],
                                                       fragments: list[str]) -> None:
    from recipes import make_recipe

    with pytest.raises(UserError) as info:
        make_recipe(*presets, overrides=overrides)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    for f in fragments:
        assert f in message, (f, message)
