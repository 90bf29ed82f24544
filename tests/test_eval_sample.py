"""Evaluation by sampling the actor (``behavior.eval_sample``), as DreamerV3's authors act in every mode.

An untrained actor is steered with a fixed output bias so its action distribution is known: for one-hot actions
class 0 has probability ``σ(2b)`` against one other class, so the mode is always class 0 while samples are class 0 at
that rate; for continuous actions a sample differs between calls and stays in the env's range.
"""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.agent import build_dreamer
from dreamer_rl.policy import DreamerPolicy
from recipes import make_recipe

OBS = 4
PROPRIO = {"env.from_pixels": False, "model.obs_loss": "symlog_mse"}


def first_step(E: int) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    return TensorDict({"observation": torch.randn(E, OBS, generator=g),
                       "is_init": torch.ones(E, 1, dtype=torch.bool)}, [E])


def test_only_the_dreamer_v3_preset_samples_at_evaluation() -> None:
    assert make_recipe("dreamer_v3").behavior.eval_sample
    for algo in ("dreamer_v1", "dreamer_v2", "kl_balance", "planet"):
        assert not make_recipe(algo).behavior.eval_sample, algo


@pytest.mark.parametrize("eval_sample", [False, True])
def test_one_hot_evaluation_takes_the_mode_or_samples_at_the_actor_probability(eval_sample: bool) -> None:
    torch.manual_seed(0)
    recipe = make_recipe("dreamer_v3", "debug", overrides={**PROPRIO, "behavior.actor_unimix": 0.0})
    agent = build_dreamer(recipe, (OBS,), ActionSpace("discrete", (2,)))
    bias = 0.75  # logits (+b, -b): P(class 0) = σ(2b) ≈ 0.818
    with torch.no_grad():
        agent.actor.net[-1].weight.zero_()
        agent.actor.net[-1].bias.copy_(torch.tensor([bias, -bias]))
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval", eval_sample=eval_sample)
    action = policy(first_step(20_000))["action"]
    class_zero = (action.argmax(-1) == 0).float().mean().item()
    p = 1 / (1 + math.exp(-2 * bias))
    assert class_zero == (pytest.approx(p, abs=0.012) if eval_sample else 1.0)


def test_continuous_evaluation_sample_varies_and_stays_in_range() -> None:
    torch.manual_seed(0)
    recipe = make_recipe("dreamer_v3", "debug", overrides=PROPRIO)
    agent = build_dreamer(recipe, (OBS,), ActionSpace("continuous", (3,)))
    td = first_step(4096)

    def act(policy: DreamerPolicy) -> torch.Tensor:
        torch.manual_seed(1)  # the same posterior latent sample for every call
        return policy(td.clone())["action"]

    mode = DreamerPolicy(agent, obs_key="observation", mode="eval")
    sampled = DreamerPolicy(agent, obs_key="observation", mode="eval", eval_sample=True)
    assert torch.equal(act(mode), act(mode)), "the mode is a function of the state"
    a = act(sampled)
    assert a.abs().max() <= 1.0
    assert (a - act(mode)).abs().mean() > 0.05, "a sample scatters around the mode"
