"""Time alignment of observation, action, reward and episode start (hand-built 3-step episode).

Stored rows (dreamer_rl.replay):   row | obs | action  | reward | is_init
                                    0   | o_0 | 0       | 0      | True
                                    1   | o_1 | a_0     | r_1    | False
                                    2   | o_2 | a_1     | r_2    | False
The RSSM step t consumes row t's action and observation; the policy at env step t consumes o_t and the action it
took at t-1. Both must produce the same recurrent states.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from dreamer_rl.agent import build_dreamer
from dreamer_rl.config import Recipe
from dreamer_rl.policy import DreamerPolicy
from recipes.presets import PRESETS

SMALL = Recipe.model_validate({k: v for k, v in PRESETS["debug"].items() if k in ("model", "behavior", "train")})


def deterministic_agent():
    """An agent whose posterior has (numerically) zero std, so filtering is deterministic."""
    torch.manual_seed(0)
    agent = build_dreamer(SMALL.model_copy(update={"model": SMALL.model.model_copy(update={"min_std": 1e-12})}),
                          (4,), 2)
    post = agent.world_model.rssm.post_out
    S = agent.world_model.rssm.stoch
    with torch.no_grad():
        post.weight[S:].zero_()
        post.bias[S:].fill_(-60.0)  # softplus(-60) ~ 1e-26
    return agent


def three_step_rows() -> TensorDict:
    obs = torch.tensor([[0.0, 0, 0, 1], [1.0, 0, 0, 0], [0.0, 2, 0, 0]])  # o_0, o_1, o_2
    action = torch.tensor([[0.0, 0.0], [0.5, -0.5], [-1.0, 1.0]])  # 0, a_0, a_1
    reward = torch.tensor([[0.0], [1.0], [2.0]])  # 0, r_1, r_2
    is_init = torch.tensor([[True], [False], [False]])
    return TensorDict({"observation": obs, "action": action, "reward": reward, "is_init": is_init,
                       "terminated": torch.zeros(3, 1, dtype=torch.bool)}, [3]).unsqueeze(0)  # [B=1, T=3]


def observe(agent, rows: TensorDict):
    return agent.world_model.observe(rows["observation"], rows["action"], rows["is_init"])


def test_action_of_row_t_drives_step_t_only_from_t_on() -> None:
    agent, rows = deterministic_agent(), three_step_rows()
    base = observe(agent, rows)
    changed = rows.clone()
    changed["action"][0, 2] = torch.tensor([1.0, 1.0])  # a_1 lives in row 2
    out = observe(agent, changed)
    torch.testing.assert_close(out.deter[:, :2], base.deter[:, :2])
    assert not torch.allclose(out.deter[:, 2], base.deter[:, 2])


def test_observation_enters_posterior_not_prior_of_its_step() -> None:
    agent, rows = deterministic_agent(), three_step_rows()
    base = observe(agent, rows)
    changed = rows.clone()
    changed["observation"][0, 1] += 3.0  # o_1
    out = observe(agent, changed)
    torch.testing.assert_close(out.prior_mean[:, :2], base.prior_mean[:, :2])  # p(z_1 | h_1) has not seen o_1
    assert not torch.allclose(out.post_mean[:, 1], base.post_mean[:, 1])  # q(z_1 | h_1, o_1) has
    assert not torch.allclose(out.deter[:, 2], base.deter[:, 2])  # and h_2 carries it on


def test_is_init_resets_the_state() -> None:
    agent, rows = deterministic_agent(), three_step_rows()
    alone = observe(agent, rows)
    # the same episode after the tail of another one: states from its is_init row on must not see the past
    other = rows.clone()
    other["observation"] += 5.0
    other["action"][0, 0] = torch.tensor([0.3, 0.3])
    other["is_init"][0, 0] = False
    joined = torch.cat([other, rows], 1)
    out = observe(agent, joined)
    torch.testing.assert_close(out.deter[:, 3:], alone.deter)
    torch.testing.assert_close(out.post_mean[:, 3:], alone.post_mean)


def test_policy_filters_like_the_model_over_stored_rows() -> None:
    """Acting step by step (o_t, previous action) gives the same states as filtering the stored rows."""
    agent, rows = deterministic_agent(), three_step_rows()
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval")
    td = TensorDict({"observation": rows["observation"][0, 0], "is_init": torch.tensor([True])}, [])
    deters, actions = [], []
    for t in range(3):
        policy(td)
        deters.append(td["next", "recurrent", "deter"].clone())
        actions.append(td["action"].clone())
        if t < 2:
            td = TensorDict({"observation": rows["observation"][0, t + 1], "is_init": torch.tensor([False]),
                             "recurrent": td["next", "recurrent"].clone()}, [])
    # the stored row t+1 carries the action taken at t
    stored = rows.clone()
    stored["action"][0, 1:] = torch.stack(actions[:2])
    out = observe(agent, stored)
    torch.testing.assert_close(torch.stack(deters), out.deter[0], atol=1e-5, rtol=1e-5)
