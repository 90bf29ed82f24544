"""Env factories: specs, pixels, frame counting, action repeat, seeding, names and errors."""

from __future__ import annotations

import os

os.environ["MUJOCO_GL"] = "egl"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torchrl.envs import TransformedEnv  # noqa: E402
from torchrl.envs.transforms import InitTracker  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

from dreamer_rl.errors import UnknownTaskError, UserError  # noqa: E402
from envs import list_tasks, make_env  # noqa: E402
from envs.dmc import DREAMER_TASKS, PLANET_ACTION_REPEAT, resolve  # noqa: E402

pytest.importorskip("dm_control")


def _rollout(env: TransformedEnv, steps: int, action: torch.Tensor | None = None) -> torch.Tensor:
    """Step ``env`` with a fixed action (zeros by default); returns the stacked trajectory."""
    action = torch.zeros(env.action_spec.shape) if action is None else action
    return env.rollout(steps, policy=lambda td: td.set("action", action.clone()), break_when_any_done=True)


# -- specs and keys ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("dmc_cheetah_run", {"from_pixels": True}),
        ("dmc_cheetah_run", {"from_pixels": False}),
        ("gym_Pendulum-v1", {"from_pixels": False}),
        ("gym_CartPole-v1", {"from_pixels": False}),
    ],
)
def test_check_env_specs(name: str, kwargs: dict) -> None:
    env = make_env(name, max_episode_frames=20, **kwargs)
    check_env_specs(env)
    assert isinstance(env, TransformedEnv)
    assert isinstance(env.transform[-1], InitTracker)
    td = env.reset()
    assert td["is_init"].dtype == torch.bool and td["is_init"].shape == (1,) and td["is_init"].all()
    td = env.rand_step(td)
    for key in ("done", "terminated", "truncated", "is_init"):
        assert td["next", key].dtype == torch.bool and td["next", key].shape == (1,)
    assert td["next", "reward"].dtype == torch.float32 and td["next", "reward"].shape == (1,)
    assert not td["next", "is_init"].any()


def test_dmc_pixels_dtype_and_shape() -> None:
    env = make_env("dmc_cheetah_run", image_size=32)
    td = env.reset()
    assert set(env.observation_spec.keys()) == {"pixels", "is_init"}  # no state vector from pixels
    assert td["pixels"].dtype == torch.uint8 and td["pixels"].shape == (3, 32, 32)
    assert td["pixels"].float().std() > 0  # a real image, not a blank frame
    td = env.rand_step(td)
    assert td["next", "pixels"].dtype == torch.uint8 and td["next", "pixels"].shape == (3, 32, 32)


def test_dmc_proprio_observation() -> None:
    env = make_env("dmc_cheetah_run", from_pixels=False)
    td = env.reset()
    assert "pixels" not in td.keys()
    assert td["observation"].dtype == torch.float32 and td["observation"].shape == (17,)  # position 8 + velocity 9
    base = env.base_env
    assert base.dmc_observation_keys == ["position", "velocity"]
    physics = base._env.physics
    expected = np.concatenate([physics.data.qpos[1:], physics.data.qvel]).astype(np.float32)
    np.testing.assert_allclose(td["observation"].numpy(), expected, rtol=1e-6)


def test_quadruped_uses_camera_2() -> None:
    env = make_env("dmc_quadruped_walk", image_size=32)
    assert env.base_env.camera_id == 2
    assert make_env("dmc_cheetah_run", from_pixels=False).base_env.camera_id == 0
    td = env.reset()
    frame = env.base_env._env.physics.render(height=32, width=32, camera_id=2)
    assert torch.equal(td["pixels"], torch.from_numpy(frame.transpose(2, 0, 1).copy()))


def test_quadruped_actions_rescaled_to_actuator_range() -> None:
    base = make_env("dmc_quadruped_walk", from_pixels=False).base_env
    spec = base._env.action_spec()
    assert torch.equal(base.action_spec.space.low, -torch.ones(12))
    np.testing.assert_allclose(base._env_action(torch.ones(12)), spec.maximum)
    np.testing.assert_allclose(base._env_action(-torch.ones(12)), spec.minimum)
    np.testing.assert_allclose(base._env_action(torch.full((12,), 5.0)), spec.maximum)  # clipped first


# -- frame counting ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("repeat", [1, 2, 4])
def test_episode_truncates_after_frames_over_repeat(repeat: int) -> None:
    env = make_env("dmc_cartpole_balance", from_pixels=False, action_repeat=repeat, max_episode_frames=40)
    traj = _rollout(env, 1000)
    assert traj.shape == (40 // repeat,)
    done, truncated, terminated = (traj["next", k].squeeze(-1) for k in ("done", "truncated", "terminated"))
    assert truncated[-1] and done[-1] and not terminated.any()
    assert not done[:-1].any()
    # a second episode after the reset is as long again
    assert _rollout(env, 1000).shape == (40 // repeat,)


def test_reward_summed_over_action_repeat() -> None:
    action = torch.full((1,), 0.3)
    once = _rollout(make_env("dmc_cartpole_swingup", from_pixels=False, action_repeat=1, seed=3), 6, action)
    rep = _rollout(make_env("dmc_cartpole_swingup", from_pixels=False, action_repeat=3, seed=3), 2, action)
    r1 = once["next", "reward"].squeeze(-1)
    r3 = rep["next", "reward"].squeeze(-1)
    torch.testing.assert_close(r3, torch.stack([r1[:3].sum(), r1[3:].sum()]))
    torch.testing.assert_close(rep["next", "observation"][-1], once["next", "observation"][-1])


def test_planet_action_repeat() -> None:
    assert PLANET_ACTION_REPEAT == {
        "cartpole": 8, "finger": 2, "cheetah": 4, "ball_in_cup": 4, "walker": 2, "reacher": 4,
    }  # fmt: skip
    for name, repeat in [("dmc_cartpole_swingup", 8), ("dmc_cup_catch", 4), ("dmc_cheetah_run", 4),
                         ("dmc_reacher_easy", 4), ("dmc_walker_walk", 2), ("dmc_pendulum_swingup", 2)]:  # fmt: skip
        env = make_env(name, from_pixels=False, action_repeat="planet")
        assert env.base_env.action_repeat == repeat, name
        assert env.base_env.max_episode_steps == 1000 // repeat
    with pytest.raises(UserError):
        make_env("dmc_cheetah_run", from_pixels=False, action_repeat="dreamer")
    with pytest.raises(UserError):
        make_env("dmc_cheetah_run", from_pixels=False, action_repeat=0)


def test_gym_frame_counting_and_pixels() -> None:
    env = make_env("gym_CartPole-v1", from_pixels=False, action_repeat=2, max_episode_frames=10)
    traj = env.rollout(100, policy=lambda td: td.set("action", torch.tensor([1, 0])), break_when_any_done=True)
    assert traj.shape[0] <= 5 and bool(traj["next", "done"][-1])
    env = make_env("gym_Pendulum-v1", from_pixels=False, action_repeat=2, max_episode_frames=10)
    traj = _rollout(env, 100)
    assert traj.shape == (5,) and bool(traj["next", "truncated"][-1]) and not traj["next", "terminated"].any()
    assert torch.equal(env.action_spec.space.high, torch.ones(1))  # rescaled from Pendulum's [-2, 2]
    env = make_env("gym_Pendulum-v1", action_repeat=2, max_episode_frames=10)  # pixels by default, rendered
    td = env.reset()
    assert td["pixels"].shape == (3, 64, 64) and td["pixels"].dtype == torch.uint8


# -- names ---------------------------------------------------------------------------------------------------------
def test_list_tasks_and_dreamer_tasks_construct() -> None:
    tasks = list_tasks()
    assert set(tasks) >= {"dmc", "gym"}
    assert len(tasks["dmc"]) >= 26 and all(t.startswith("dmc_") for t in tasks["dmc"])
    assert len(DREAMER_TASKS) == 26 and set(DREAMER_TASKS) <= set(tasks["dmc"])
    assert "gym_Pendulum-v1" in tasks["gym"]
    for name in tasks["dmc"]:
        if name in DREAMER_TASKS:
            env = make_env(name, from_pixels=False, max_episode_frames=4)
            td = env.rand_step(env.reset())
            assert torch.isfinite(td["next", "observation"]).all(), name


def test_names_with_underscored_domains() -> None:
    assert resolve("dmc_point_mass_easy") == ("point_mass", "easy")
    assert resolve("dmc_pointmass_easy") == ("point_mass", "easy")
    assert resolve("dmc_ball_in_cup_catch") == ("ball_in_cup", "catch")
    assert resolve("dmc_cup_catch") == ("ball_in_cup", "catch")
    assert resolve("dmc_cartpole_balance_sparse") == ("cartpole", "balance_sparse")
    assert resolve("dmc_humanoid_CMU_run") == ("humanoid_CMU", "run")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("dmc_cheetah_walk", "dmc_cheetah_run"),
        ("cheetah_run", "dmc_cheetah_run"),
        ("gym_Pendulum-v9", "gym_Pendulum-v1"),
        ("atari_pongg", "atari_pong"),
    ],
)
def test_unknown_task_one_line(name: str, hint: str) -> None:
    with pytest.raises(UnknownTaskError) as info:
        make_env(name)
    message = str(info.value)
    assert "\n" not in message
    assert repr(name) in message and "suites: dmc_, gym_" in message and hint in message
    assert info.value.exit_code == 2


# -- seeding -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("from_pixels", [False, True])
def test_same_seed_same_first_observation(from_pixels: bool) -> None:
    key = "pixels" if from_pixels else "observation"
    kwargs = {"from_pixels": from_pixels, "image_size": 32}
    a = make_env("dmc_cheetah_run", seed=7, **kwargs).reset()[key]
    b = make_env("dmc_cheetah_run", seed=7, **kwargs).reset()[key]
    c = make_env("dmc_cheetah_run", seed=8, **kwargs).reset()[key]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_set_seed_replays_episode() -> None:
    env = make_env("dmc_walker_walk", from_pixels=False, seed=0)
    env.set_seed(5)
    first = _rollout(env, 5, torch.full((6,), 0.5))
    env.set_seed(5)
    second = _rollout(env, 5, torch.full((6,), 0.5))
    torch.testing.assert_close(first["observation"], second["observation"])
    torch.testing.assert_close(first["next", "reward"], second["next", "reward"])


def test_termination_with_zero_discount_ends_repeat_early() -> None:
    import dm_env

    env = make_env("dmc_cartpole_balance", from_pixels=False, action_repeat=4, max_episode_frames=40)
    base = env.base_env
    td = env.reset()
    calls: list[int] = []
    real_step = base._env.step

    def step(action: np.ndarray) -> dm_env.TimeStep:
        calls.append(1)
        timestep = real_step(action)
        if len(calls) == 2:  # the task ends the episode on the second control frame, discount 0
            return dm_env.termination(reward=timestep.reward, observation=timestep.observation)
        return timestep

    base._env.step = step
    td = env.rand_step(td)
    assert len(calls) == 2  # the repeat loop stopped at the terminal frame
    assert bool(td["next", "terminated"]) and bool(td["next", "done"]) and not bool(td["next", "truncated"])
    torch.testing.assert_close(td["next", "reward"], torch.ones(1), atol=1.0, rtol=0)  # two frames' reward in [0, 2]
