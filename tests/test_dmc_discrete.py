"""Discrete-action cartpole (the PlaNet discrete-action fork's ``_da`` / ``_daf`` tasks): specs, forces, repeats."""

from __future__ import annotations

import os

os.environ["MUJOCO_GL"] = "egl"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torchrl.data import OneHot  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

from dreamer_rl.errors import UnknownTaskError  # noqa: E402
from envs import list_tasks, make_env  # noqa: E402
from envs.dmc import DISCRETE_TASKS, FORCES_DA, FORCES_DAF, resolve  # noqa: E402

suite = pytest.importorskip("dm_control.suite")

SIZES = {
    "dmc_cartpole_balance_da": 5,
    "dmc_cartpole_swingup_da": 5,
    "dmc_cartpole_balance_daf": 9,
    "dmc_cartpole_swingup_daf": 9,
    "dmc_cartpole_swingupsparse_daf": 9,
}


def test_tables() -> None:
    assert FORCES_DA == (-1.0, -0.25, 0.0, 0.25, 1.0)
    assert FORCES_DAF == (-1.0, -0.25, -0.05, -0.01, 0.0, 0.01, 0.05, 0.25, 1.0)
    assert set(DISCRETE_TASKS) == set(SIZES)
    assert resolve("dmc_cartpole_swingupsparse_daf") == ("cartpole", "swingup_sparse")
    assert resolve("dmc_cartpole_balance_da") == ("cartpole", "balance")
    assert set(SIZES) <= set(list_tasks()["dmc"])


@pytest.mark.parametrize("name", sorted(SIZES))
def test_spec_and_planet_repeat(name: str) -> None:
    env = make_env(name, from_pixels=False, action_repeat="planet", max_episode_frames=1000)
    assert isinstance(env.action_spec, OneHot) and env.action_spec.shape == (SIZES[name],)
    assert env.base_env.action_repeat == 4 and env.base_env.max_episode_steps == 250
    check_env_specs(env)
    assert make_env(name, from_pixels=False, action_repeat=2).base_env.action_repeat == 2
    assert make_env("dmc_cartpole_swingup", from_pixels=False, action_repeat="planet").base_env.action_repeat == 8


def test_pixels() -> None:
    env = make_env("dmc_cartpole_swingup_da", image_size=32, action_repeat="planet")
    check_env_specs(env)
    td = env.rand_step(env.reset())
    assert td["next", "pixels"].dtype == torch.uint8 and td["next", "pixels"].shape == (3, 32, 32)
    assert td["next", "pixels"].float().std() > 0


def flat(observation: dict) -> np.ndarray:
    """dm_control's observation dict flattened in its own key order, as DMCEnv does."""
    return np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in observation.values()])


@pytest.mark.parametrize(("name", "forces"), [("dmc_cartpole_swingup_da", FORCES_DA),
                                              ("dmc_cartpole_balance_daf", FORCES_DAF)])  # fmt: skip
def test_one_hot_applies_table_force(name: str, forces: tuple[float, ...]) -> None:
    """Same trajectory as a bare dm_control cartpole stepped with the table's continuous forces."""
    _, task = resolve(name)
    env = make_env(name, from_pixels=False, action_repeat=1, seed=3)
    bare = suite.load("cartpole", task, task_kwargs={"random": 3, "time_limit": float("inf")})
    td = env.reset()
    timestep = bare.reset()
    np.testing.assert_array_equal(td["observation"].numpy(), flat(timestep.observation))
    n = len(forces)
    for index in [*range(n), *reversed(range(n))]:  # every force, then every force again from another state
        one_hot = torch.nn.functional.one_hot(torch.tensor(index), n)
        td = env.step(td.set("action", one_hot))["next"]
        timestep = bare.step(np.array([forces[index]]))
        assert env.base_env._env.physics.data.ctrl[0] == pytest.approx(forces[index])
        np.testing.assert_array_equal(td["observation"].numpy(), flat(timestep.observation))
        assert float(td["reward"]) == pytest.approx(timestep.reward, rel=1e-6)


def test_unknown_discrete_name_suggests() -> None:
    with pytest.raises(UnknownTaskError, match="did you mean: .*dmc_cartpole_swingup_daf"):
        make_env("dmc_cartpole_swingup_dafx", from_pixels=False)
