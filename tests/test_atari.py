"""Atari suite (``atari_<game>``, real ROMs from ale-py): specs, action repeat and max-pooling against a bare ALE
env, no-op starts, sticky actions, life loss, episode ends, names, errors and the reference scores."""

from __future__ import annotations

import itertools
import json
import sys

import gymnasium
import numpy as np
import pytest
import torch
from PIL import Image
from torchrl.envs import TransformedEnv
from torchrl.envs.transforms import InitTracker
from torchrl.envs.utils import check_env_specs

from dreamer_rl.errors import MissingDependencyError, UnknownTaskError, UserError
from envs import list_tasks, make_env
from envs.atari import (
    ATARI_GAMES,
    GAME_IDS,
    gym_id,
    human_normalized,
    make,
    reference_scores,
    task_names,
)


def _actions(env: TransformedEnv, steps: int, seed: int = 0) -> list[int]:
    n = env.action_spec.shape[-1]
    return torch.randint(n, (steps,), generator=torch.Generator().manual_seed(seed)).tolist()


def _step(env: TransformedEnv, td, index: int):
    """One agent step with action ``index`` (one-hot); returns (the full td, the next root td)."""
    action = torch.zeros(env.action_spec.shape, dtype=env.action_spec.dtype)
    action[index] = 1
    out = env.step(td.set("action", action))
    return out, out["next"]


def _pool_resize(a: np.ndarray, b: np.ndarray, size: int) -> torch.Tensor:
    """The expected observation: max of two raw RGB frames, bilinear-resized, channels first."""
    image = np.array(Image.fromarray(np.maximum(a, b)).resize((size, size), Image.Resampling.BILINEAR))
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


# -- names ---------------------------------------------------------------------------------------------------------
def test_57_games_map_to_registered_ale_ids() -> None:
    names = task_names()
    assert len(names) == len(ATARI_GAMES) == 57 and list_tasks()["atari"] == names
    assert {"atari_pong", "atari_ms_pacman", "atari_space_invaders", "atari_montezuma_revenge"} <= set(names)
    assert gym_id("ms_pacman") == "ALE/MsPacman-v5" and gym_id("atari_space_invaders") == "ALE/SpaceInvaders-v5"
    assert gym_id("montezuma_revenge") == "ALE/MontezumaRevenge-v5" and GAME_IDS["up_n_down"] == "UpNDown"
    make("atari_pong").close()  # registers ale-py's ids with gymnasium
    missing = [game for game in ATARI_GAMES if gym_id(game) not in gymnasium.envs.registry]
    assert not missing


# -- specs and keys ------------------------------------------------------------------------------------------------
def test_specs_keys_and_defaults() -> None:
    env = make_env("atari_pong")
    check_env_specs(env)
    assert isinstance(env.transform[-1], InitTracker)
    base = env.base_env
    assert (base.action_repeat, base.max_episode_frames, base.noop_max) == (4, 108_000, 30)
    assert base.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    td = env.rand_step(env.reset())
    assert td["pixels"].shape == (1, 64, 64) and td["pixels"].dtype == torch.uint8
    assert td["next", "life_lost"].shape == (1,) and td["next", "life_lost"].dtype == torch.bool
    assert td["next", "reward"].dtype == torch.float32 and td["is_init"].all()
    assert env.action_spec.shape == (6,) and int(td["action"].sum()) == 1


@pytest.mark.parametrize(
    ("kwargs", "pixels", "actions"),
    [
        ({"grayscale": False}, (3, 64, 64), 6),
        ({"image_size": 96}, (1, 96, 96), 6),
        ({"full_action_space": True}, (1, 64, 64), 18),
    ],
)
def test_colour_size_and_action_set(kwargs: dict, pixels: tuple, actions: int) -> None:
    env = make("atari_pong", **kwargs)
    td = env.rand_step(env.reset())
    assert td["pixels"].shape == pixels and td["next", "pixels"].shape == pixels
    assert env.observation_spec["pixels"].shape == pixels and env.action_spec.shape == (actions,)


# -- action repeat, max-pooling, no-ops, sticky actions ------------------------------------------------------------
def test_repeat_sums_rewards_and_pools_last_two_frames() -> None:
    repeat, size, steps = 4, 64, 200
    env = make("atari_pong", grayscale=False, sticky_actions=0.0, noop_max=0, action_repeat=repeat, seed=3)
    bare = gymnasium.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, obs_type="rgb")
    frame, _ = bare.reset(seed=3)
    td = env.reset()
    assert torch.equal(td["pixels"], _pool_resize(frame, frame, size))
    total = 0.0
    for index in _actions(env, steps, seed=1):
        _, td = _step(env, td, index)
        reward = 0.0
        for _ in range(repeat):
            prev = frame
            frame, r, *_ = bare.step(index)
            reward += float(r)
        assert float(td["reward"]) == reward
        assert torch.equal(td["pixels"], _pool_resize(prev, frame, size))
        total += abs(reward)
    assert total > 0  # a point was scored within the 800 frames, so the sum was exercised
    bare.close()


def test_noop_starts_are_seeded_and_bounded() -> None:
    def counts(seed: int, resets: int = 6) -> list[int]:
        env = make("atari_pong", noop_max=30, seed=seed)
        out = []
        for _ in range(resets):
            env.reset()
            out.append(env.base_env.last_noops)
        return out

    a, b = counts(0), counts(0)
    assert a == b and all(0 <= n <= 30 for n in a)
    assert counts(1) != a
    env = make("atari_pong", noop_max=0)
    env.reset()
    assert env.base_env.last_noops == 0
    # the no-ops really run in the emulator: the reset screen is the bare env's after as many NOOP frames
    env = make("atari_pong", grayscale=False, sticky_actions=0.0, noop_max=30, seed=2)
    first = env.reset()["pixels"]
    n = env.base_env.last_noops
    assert n >= 2
    bare = gymnasium.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, obs_type="rgb")
    frames = [bare.reset(seed=2)[0]] + [bare.step(0)[0] for _ in range(n)]
    assert torch.equal(first, _pool_resize(frames[-2], frames[-1], 64))
    bare.close()


def test_sticky_actions() -> None:
    def pixels(seed: int, sticky: float) -> torch.Tensor:
        env = make("atari_breakout", sticky_actions=sticky, seed=seed)
        td, out = env.reset(), []
        for index in _actions(env, 60, seed=5):
            _, td = _step(env, td, index)
            out.append(td["pixels"])
        return torch.stack(out)

    assert torch.equal(pixels(4, 0.0), pixels(4, 0.0))
    assert torch.equal(pixels(4, 0.25), pixels(4, 0.25))  # ALE's sticky draws are seeded too
    for p in (0.0, 0.1, 0.25):
        assert make("atari_pong", sticky_actions=p).base_env.ale.getFloat("repeat_action_probability") == (
            pytest.approx(p)
        )


# -- life loss and episode ends ------------------------------------------------------------------------------------
def _play_to_game_over(life_loss: bool) -> tuple[list[bool], list[int], list[bool], list[bool]]:
    env = make("atari_breakout", life_loss=life_loss, sticky_actions=0.0, seed=0)
    td, lost, lives, done, terminated = env.reset(), [], [env.base_env.ale.lives()], [], []
    for index in _actions(env, 3000, seed=7):
        _, td = _step(env, td, index)
        lost.append(bool(td["life_lost"]))
        lives.append(env.base_env.ale.lives())
        done.append(bool(td["done"]))
        terminated.append(bool(td["terminated"]))
        if td["done"]:
            assert not td["truncated"]
            break
    assert done[-1] and terminated[-1], "breakout with random actions ends within 3000 steps"
    return lost, lives, done, terminated


def test_life_loss_flags_lives_decrease_not_done() -> None:
    lost, lives, done, _ = _play_to_game_over(life_loss=True)
    decreased = [after < before for before, after in itertools.pairwise(lives)]
    assert lost == decreased and sum(lost) >= 2
    assert any(flag and not d for flag, d in zip(lost, done))  # a life lost while the game goes on
    assert not any(done[:-1])
    lost_off, lives_off, _, _ = _play_to_game_over(life_loss=False)
    assert lives_off == lives and not any(lost_off)


def test_episode_limit_truncates() -> None:
    env = make("atari_pong", action_repeat=4, max_episode_frames=42, noop_max=0)
    td = env.rollout(100, break_when_any_done=True)
    assert td.shape == (11,)  # 10 full steps (40 frames) + 2 frames
    assert td["next", "truncated"][-1].all() and td["next", "done"][-1].all()
    assert not td["next", "terminated"].any() and not td["next", "done"][:-1].any()


# -- errors --------------------------------------------------------------------------------------------------------
def test_bad_inputs_one_line() -> None:
    with pytest.raises(UnknownTaskError) as info:
        make_env("atari_pongg")
    message = str(info.value)
    assert "\n" not in message and "did you mean: atari_pong" in message and info.value.exit_code == 2
    cases = [
        ({"from_pixels": False}, "atari_ tasks are observed from pixels"),
        ({"sticky_actions": 1.5}, "sticky_actions"),
        ({"noop_max": -1}, "noop_max"),
        ({"action_repeat": "planet"}, "action_repeat"),
        ({"image_size": 0}, "image_size"),
        ({"action_repeat": 4, "max_episode_frames": 3}, "max_episode_frames"),
        ({"stickiness": 0.1}, "unknown env option 'stickiness'"),
    ]
    for kwargs, text in cases:
        with pytest.raises(UserError) as info:
            make_env("atari_pong", **kwargs)
        assert "\n" not in str(info.value) and text in str(info.value), (kwargs, str(info.value))
    for name in ("dmc_cheetah_run", "gym_CartPole-v1"):
        with pytest.raises(UserError, match="'sticky_actions' does not apply to .*atari_ tasks only"):
            make_env(name, from_pixels=False, sticky_actions=0.0)


def test_missing_ale_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ale_py", None)  # `import ale_py` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"'ale-py'.*\.\[atari\]"):
        make("atari_pong")


# -- reference scores ----------------------------------------------------------------------------------------------
def test_reference_scores() -> None:
    scores = reference_scores()
    assert set(scores["games"]) == set(ATARI_GAMES) and len(scores["games"]) == 57
    assert "Agent57" in scores["source"]
    assert scores["games"]["pong"] == {"random": -20.7, "human": 14.6}
    assert scores["games"]["breakout"] == {"random": 1.7, "human": 30.5}
    assert scores["games"]["boxing"] == {"random": 0.1, "human": 12.1}
    assert all(v["human"] > v["random"] for v in scores["games"].values())
    assert human_normalized("pong", 14.6) == pytest.approx(1.0)
    assert human_normalized("atari_pong", -20.7) == pytest.approx(0.0)
    assert human_normalized("breakout", 1.7 + 2 * (30.5 - 1.7)) == pytest.approx(2.0)
    assert json.loads(json.dumps(scores)) == scores
    with pytest.raises(UnknownTaskError):
        human_normalized("pongg", 0.0)
