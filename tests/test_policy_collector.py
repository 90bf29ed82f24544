"""The acting policy inside a TorchRL Collector: the recurrent state is carried across steps and reset at starts."""

from __future__ import annotations

import pytest
import torch
from torchrl.collectors import Collector

from dreamer_rl.agent import build_dreamer
from dreamer_rl.config import Recipe
from dreamer_rl.policy import DreamerPolicy
from dreamer_rl.replay import StepRowWriter
from envs import make_env
from recipes.presets import PRESETS

SMALL = Recipe.model_validate({k: v for k, v in PRESETS["debug"].items() if k in ("model", "behavior", "train")})


def collect(mode: str, frames: int = 50):
    torch.manual_seed(0)
    env = make_env("dmc_cartpole_balance", from_pixels=False, max_episode_frames=40, seed=1)  # 20-step episodes
    agent = build_dreamer(SMALL, tuple(env.observation_spec["observation"].shape), env.action_spec.shape[-1])
    policy = DreamerPolicy(agent, obs_key="observation", mode=mode)
    env.append_transform(policy.primer())
    collector = Collector(env, policy, frames_per_batch=frames, total_frames=frames)
    batch = next(iter(collector))
    collector.shutdown()
    return batch


def test_recurrent_state_carried_and_reset_at_episode_starts() -> None:
    batch = collect("explore")
    is_init = batch["is_init"].squeeze(-1)
    assert is_init.sum() == 3 and is_init[0] and is_init[20] and is_init[40]
    deter_in, deter_out = batch["recurrent", "deter"], batch["next", "recurrent", "deter"]
    assert torch.all(deter_in[is_init] == 0), "the primer resets the state at episode starts"
    carried = ~is_init[1:]
    torch.testing.assert_close(deter_in[1:][carried], deter_out[:-1][carried])  # step t reads what t-1 wrote
    prev_action = batch["recurrent", "action"]
    torch.testing.assert_close(prev_action[1:][carried], batch["action"][:-1][carried])
    assert batch["action"].abs().max() <= 1


def test_random_prefill_mode_gives_uniform_actions_and_rows() -> None:
    batch = collect("random", frames=40)
    a = batch["action"]
    assert a.min() < -0.5 and a.max() > 0.5
    rows = StepRowWriter(obs_keys=("observation",))(batch)
    assert rows.shape[0] == 40 + 2  # two episodes: one reset row each
    torch.testing.assert_close(rows["action"][1:21], a[:20])  # row t+1 stores the action taken at t


def test_evaluate_carries_the_recurrent_state_on_an_env_without_the_primer() -> None:
    """``evaluate`` on a bare env acts exactly as on an env that has the primer (the state is carried)."""
    from dreamer_rl.training import evaluate

    def bare_env():
        return make_env("dmc_cartpole_balance", from_pixels=False, max_episode_frames=60, seed=5)

    torch.manual_seed(0)
    env = bare_env()
    agent = build_dreamer(SMALL, tuple(env.observation_spec["observation"].shape), env.action_spec.shape[-1])
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval")
    primed = bare_env()
    primed.append_transform(policy.primer())
    torch.manual_seed(1)  # the posterior is sampled
    expected, _ = evaluate(primed, policy, 2, 30)
    torch.manual_seed(1)
    got, _ = evaluate(env, policy, 2, 30)
    assert got == expected


def test_policy_refuses_a_missing_state_mid_episode() -> None:
    env = make_env("dmc_cartpole_balance", from_pixels=False, max_episode_frames=60, seed=5)
    agent = build_dreamer(SMALL, tuple(env.observation_spec["observation"].shape), env.action_spec.shape[-1])
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval")
    with pytest.raises(ValueError, match="recurrent state is missing mid-episode.*policy.primer"):
        env.rollout(3, policy)
