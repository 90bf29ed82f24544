"""Training-only targets written by StepRowWriter: Atari life loss and reward clipping (returns stay raw)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from dreamer_rl.replay import StepRowWriter


def _transitions(rewards: list[float], life_lost: list[bool] | None = None) -> TensorDict:
    n = len(rewards)
    nxt = {"observation": torch.arange(1, n + 1, dtype=torch.float32).unsqueeze(-1),
           "reward": torch.tensor(rewards).unsqueeze(-1), "done": torch.zeros(n, 1, dtype=torch.bool),
           "terminated": torch.zeros(n, 1, dtype=torch.bool), "truncated": torch.zeros(n, 1, dtype=torch.bool)}
    if life_lost is not None:
        nxt["life_lost"] = torch.tensor(life_lost).unsqueeze(-1)
    is_init = torch.zeros(n, 1, dtype=torch.bool)
    is_init[0] = True
    return TensorDict({"observation": torch.arange(n, dtype=torch.float32).unsqueeze(-1),
                       "action": torch.eye(2)[torch.tensor([0, 1] * n)[:n]], "is_init": is_init,
                       "next": TensorDict(nxt, [n])}, [n])


def test_life_loss_ends_the_continuation_target_but_not_the_episode() -> None:
    rows = StepRowWriter(obs_keys=("observation",))(_transitions([0.0, 1.0, 0.0, 2.0], [False, True, False, False]))
    # rows: reset row, then one row per transition; the life is lost on reaching o_2
    assert rows["terminated"].squeeze(-1).tolist() == [False, False, True, False, False]
    assert rows["is_init"].squeeze(-1).tolist() == [True, False, False, False, False]  # the game goes on
    assert rows["episode"].unique().numel() == 1 and rows["step_count"].squeeze(-1).tolist() == [0, 1, 2, 3, 4]


def test_without_life_lost_key_terminated_is_the_envs() -> None:
    rows = StepRowWriter(obs_keys=("observation",))(_transitions([0.0, 1.0, 0.0]))
    assert not rows["terminated"].any()


@pytest.mark.parametrize(("clip", "expected"), [
    ("none", [0.0, 0.0, 5.0, -3.0, 0.5]),
    ("tanh", [0.0, 0.0, 0.9999092, -0.9950548, 0.4621172]),
    ("sign", [0.0, 0.0, 1.0, -1.0, 1.0]),
])
def test_reward_clipping_applies_to_stored_rewards_only(clip: str, expected: list[float]) -> None:
    transitions = _transitions([0.0, 5.0, -3.0, 0.5])
    rows = StepRowWriter(obs_keys=("observation",), reward_clip=clip)(transitions)
    assert torch.allclose(rows["reward"].squeeze(-1), torch.tensor(expected), atol=1e-6)
    assert transitions["next", "reward"].squeeze(-1).tolist() == [0.0, 5.0, -3.0, 0.5]  # what returns are summed from


def test_unknown_reward_clip_is_refused() -> None:
    with pytest.raises(ValueError, match="reward_clip"):
        StepRowWriter(obs_keys=("observation",), reward_clip="clip")
