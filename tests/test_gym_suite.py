"""Gymnasium suite: pixels from render, action spaces, Dict observations, wrap / fresh_copy, one-line errors."""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

import gymnasium
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torchrl.data import MultiOneHot, OneHot
from torchrl.envs.transforms import InitTracker
from torchrl.envs.utils import check_env_specs

from dreamer_rl.errors import UserError
from envs import make_env
from envs.gym import fresh_copy, resize_frame, wrap


def _manual_resize(frame: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [H, W, C] -> uint8 [C, size, size], written out here independently of envs.gym."""
    x = torch.tensor(np.array(frame)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return y.round().clamp(0, 255).to(torch.uint8)


class ToyEnv(gymnasium.Env):
    """MultiDiscrete([3, 4]) actions, Dict observation {vel: Box(3), image: uint8 16x16x3, pos: Box(2)}.

    Records the actions it receives, counts ``step``/``render`` calls and renders a 24x40 frame that changes with
    every step (so pixels tests run without pygame).
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = None, action_space: spaces.Space | None = None,
                 observation_space: spaces.Space | None = None) -> None:
        self.render_mode = render_mode
        self.action_space = action_space if action_space is not None else spaces.MultiDiscrete([3, 4])
        # an OrderedDict keeps this unsorted order (gymnasium sorts plain dicts itself), so the sort is ours
        self.observation_space = observation_space if observation_space is not None else spaces.Dict(
            OrderedDict(vel=spaces.Box(-1, 1, (3,)), image=spaces.Box(0, 255, (16, 16, 3), np.uint8),
                        pos=spaces.Box(-1, 1, (2,), np.float64))
        )  # fmt: skip
        self.actions: list[np.ndarray] = []
        self.steps = self.renders = 0
        self.last_obs: dict | None = None

    def _obs(self) -> dict:
        self.last_obs = self.observation_space.sample()
        return self.last_obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self.actions.append(np.array(action))
        self.steps += 1
        return self._obs(), 1.0, False, False, {}

    def render(self) -> np.ndarray:
        self.renders += 1
        frame = np.zeros((24, 40, 3), np.uint8)
        frame[:, : 2 * (self.steps % 20) + 1] = 200
        frame[..., 1] = np.arange(40, dtype=np.uint8) * 6
        return frame


class RecordActions(gymnasium.ActionWrapper):
    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.seen: list[np.ndarray] = []

    def action(self, action: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(action))
        return action


def _needs_pygame() -> None:
    pytest.importorskip("pygame", reason="classic-control rendering needs pygame")


# -- specs ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "from_pixels", "keys"),
    [
        ("gym_CartPole-v1", False, {"observation"}),
        ("gym_CartPole-v1", True, {"pixels"}),
        ("gym_Pendulum-v1", False, {"observation"}),
    ],
)
def test_check_env_specs(name: str, from_pixels: bool, keys: set[str]) -> None:
    if from_pixels:
        _needs_pygame()
    env = make_env(name, from_pixels=from_pixels, action_repeat=2, image_size=32, max_episode_frames=20)
    check_env_specs(env)
    assert isinstance(env.transform[-1], InitTracker)
    assert env.action_repeat == 2
    assert set(env.observation_spec.keys()) == keys | {"is_init"}
    td = env.rand_step(env.reset())
    if from_pixels:
        assert td["next", "pixels"].dtype == torch.uint8 and td["next", "pixels"].shape == (3, 32, 32)
    else:
        assert td["next", "observation"].dtype == torch.float32


def test_toy_env_specs_and_dict_mapping() -> None:
    gym_env = ToyEnv()
    env = wrap(gym_env, seed=3)
    check_env_specs(env)
    assert isinstance(env.transform[-1], InitTracker) and env.action_repeat == 1
    assert isinstance(env.action_spec, MultiOneHot) and env.action_spec.shape == (7,)
    assert set(env.observation_spec.keys()) == {"pixels", "observation", "is_init"}
    assert list(gym_env.observation_space.keys()) == ["vel", "image", "pos"]
    td = env.reset()
    obs = gym_env.last_obs
    assert td["pixels"].dtype == torch.uint8 and td["pixels"].shape == (3, 64, 64)
    assert torch.equal(td["pixels"], _manual_resize(obs["image"], 64))
    # sorted keys: image (-> pixels), pos, vel
    expected = np.concatenate([np.asarray(obs["pos"]), np.asarray(obs["vel"])]).astype(np.float32)
    assert td["observation"].dtype == torch.float32 and td["observation"].shape == (5,)
    np.testing.assert_array_equal(td["observation"].numpy(), expected)


def test_multi_one_hot_reaches_env_as_argmax_per_part() -> None:
    gym_env = ToyEnv()
    env = wrap(gym_env)
    td = env.reset()
    for _ in range(6):
        action = env.action_spec.rand()
        td = env.step(td.set("action", action))["next"]
        assert gym_env.actions[-1].tolist() == [int(action[:3].argmax()), int(action[3:].argmax())]
    env.step(td.set("action", torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])))  # float one-hots work too
    assert gym_env.actions[-1].tolist() == [2, 1]


def test_discrete_start_offset() -> None:
    gym_env = ToyEnv(action_space=spaces.Discrete(3, start=-1), observation_space=spaces.Box(-1, 1, (2, 3)))
    env = wrap(gym_env)
    assert isinstance(env.action_spec, OneHot) and env.action_spec.shape == (3,)
    assert env.observation_spec["observation"].shape == (6,)  # a 2x3 Box, flattened
    td = env.reset()
    for index in range(3):
        env.step(td.set("action", torch.nn.functional.one_hot(torch.tensor(index), 3)))
        assert int(gym_env.actions[-1]) == index - 1
    gym_env = ToyEnv(action_space=spaces.MultiDiscrete([2, 3], start=[5, -3]))
    env = wrap(gym_env)
    td = env.reset()
    env.step(td.set("action", torch.tensor([0, 1, 0, 0, 1])))
    assert gym_env.actions[-1].tolist() == [6, -1]


def test_box_actions_rescaled_to_bounds() -> None:
    recorder = RecordActions(gymnasium.make("Pendulum-v1"))
    env = wrap(recorder)
    assert torch.equal(env.action_spec.space.low, -torch.ones(1))
    assert torch.equal(env.action_spec.space.high, torch.ones(1))
    td = env.reset()
    for action, reaching in [(0.5, 1.0), (-1.0, -2.0), (1.0, 2.0), (0.0, 0.0)]:
        td = env.step(td.set("action", torch.tensor([action])))["next"]
        np.testing.assert_allclose(recorder.seen[-1], [reaching], rtol=1e-6)


# -- pixels --------------------------------------------------------------------------------------------------------
def test_render_once_per_agent_step_and_resized() -> None:
    gym_env = ToyEnv(render_mode="rgb_array")
    env = wrap(gym_env, from_pixels=True, action_repeat=3, image_size=20)
    assert set(env.observation_spec.keys()) == {"pixels", "is_init"}  # the env's own observation is dropped
    renders = gym_env.renders
    td = env.reset()
    frames = [td["pixels"]]
    for _ in range(2):
        td = env.rand_step(td)
        frames.append(td["next", "pixels"])
        assert torch.equal(frames[-1], _manual_resize(gym_env.render(), 20))
        gym_env.renders -= 1  # the check above rendered too
        td = td["next"]
    assert gym_env.steps == 6 and gym_env.renders - renders == 3  # one per reset, one per agent step
    assert not torch.equal(frames[0], frames[1]) and not torch.equal(frames[1], frames[2])


def test_cartpole_pixels_are_real_renders() -> None:
    _needs_pygame()
    env = make_env("gym_CartPole-v1", from_pixels=True, action_repeat=1, max_episode_frames=100)
    gym_env = env.base_env._env
    td = env.reset()
    frames = [td["pixels"]]
    assert torch.equal(td["pixels"], _manual_resize(gym_env.render(), 64))
    push_right = torch.tensor([0, 1])
    for _ in range(8):
        td = env.step(td.set("action", push_right))
        frames.append(td["next", "pixels"])
        assert torch.equal(td["next", "pixels"], _manual_resize(gym_env.render(), 64))
        td = td["next"]
    assert not torch.equal(frames[0], frames[-1])
    assert frames[-1].float().std() > 0


def test_resize_frame_keeps_matching_size_bit_exact() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert torch.equal(resize_frame(frame, 8), torch.from_numpy(frame).permute(2, 0, 1))
    assert resize_frame(frame, 4).shape == (3, 4, 4)


# -- errors --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("space", "shown"),
    [
        (spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)]), "Tuple(Discrete(2), Discrete(3))"),
        (spaces.Dict({"a": spaces.Discrete(2)}), "Dict('a': Discrete(2))"),
        (spaces.Text(4), "Text(1, 4"),
        (spaces.MultiBinary(3), "MultiBinary(3)"),
        (spaces.Box(-np.inf, np.inf, (2,)), "Box(-inf, inf, (2,), float32)"),
    ],
)
def test_unsupported_action_space(space: spaces.Space, shown: str) -> None:
    with pytest.raises(UserError) as info:
        wrap(ToyEnv(action_space=space), name="gym_Toy")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"gym_Toy: action space {shown}")
    assert message.endswith("is not supported; supported: Discrete, MultiDiscrete, bounded Box")


def test_observation_errors() -> None:
    image, gray = spaces.Box(0, 255, (8, 8, 3), np.uint8), spaces.Box(0, 255, (8, 8, 1), np.uint8)
    two_images = spaces.Dict({"a": image, "b": gray})
    with pytest.raises(UserError, match="2 image parts"):
        wrap(ToyEnv(observation_space=two_images), name="gym_Toy")
    with pytest.raises(UserError, match="observation space Tuple"):
        wrap(ToyEnv(observation_space=spaces.Tuple([spaces.Discrete(2)])), name="gym_Toy")


def test_pixels_need_rgb_array_rendering() -> None:
    with pytest.raises(UserError, match="render_mode='rgb_array'"):
        wrap(ToyEnv(), from_pixels=True)  # made without render_mode

    class NoRgb(ToyEnv):
        metadata: ClassVar[dict] = {"render_modes": ["human"]}

    with pytest.raises(UserError, match="cannot render rgb_array frames.*from_pixels=False"):
        wrap(NoRgb(render_mode="human"), from_pixels=True)

    class NeedsPackage(ToyEnv):
        def render(self) -> np.ndarray:
            raise gymnasium.error.DependencyNotInstalled("pygame is not installed")

    with pytest.raises(UserError, match="pygame is not installed.*from_pixels=False"):
        wrap(NeedsPackage(render_mode="rgb_array"), from_pixels=True)


# -- fresh copies --------------------------------------------------------------------------------------------------
def test_fresh_copy_is_independent_with_equal_spec() -> None:
    original = gymnasium.make("CartPole-v1", max_episode_steps=50)
    copy = fresh_copy(original)
    assert copy is not original and copy.unwrapped is not original.unwrapped
    assert copy.spec.id == "CartPole-v1" and copy.spec.max_episode_steps == 50
    assert copy.render_mode == original.render_mode
    assert copy.action_space == original.action_space and copy.observation_space == original.observation_space
    original.reset(seed=0)
    copy.reset(seed=0)
    before = np.array(original.unwrapped.state)
    for _ in range(5):
        copy.step(1)
    np.testing.assert_array_equal(original.unwrapped.state, before)  # stepping the copy leaves the original alone
    check_env_specs(wrap(copy))


def test_fresh_copy_without_spec() -> None:
    with pytest.raises(UserError) as info:
        fresh_copy(ToyEnv())
    assert "\n" not in str(info.value) and "no gymnasium spec" in str(info.value) and "callable" in str(info.value)
