"""The world model as a TorchRL ModelBasedEnvBase: specs, reset from given states, steps equal to the RSSM's own,
and TorchRL's CEMPlanner / MPPIPlanner running on it."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torchrl.envs.model_based import ModelBasedEnvBase

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.model_env import WorldModelEnv
from dreamer_rl.planners import latent_returns
from dreamer_rl.world_model import WorldModel


def _model(action_dim: int = 2) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel((5,), action_dim, stoch=4, deter=8, hidden=8, units=8)


def test_is_a_model_based_env_with_consistent_specs() -> None:
    env = WorldModelEnv(_model())
    assert isinstance(env, ModelBasedEnvBase)
    td = env.rollout(2, auto_reset=False, tensordict=env.reset(TensorDict({}, [3])))
    for key, spec in (("state", env.observation_spec["state"]), ("belief", env.observation_spec["belief"]),
                      ("reward", env.reward_spec)):
        assert td["next", key].shape == (3, 2, *spec.shape), key
        assert spec.is_in(td["next", key][0, 0])
    assert env.action_spec.is_in(td["action"][0, 0]) and not td["next", "done"].any()


def test_reset_keeps_given_states_and_steps_match_the_rssm() -> None:
    wm = _model()
    env = WorldModelEnv(wm, sample=False)
    state, belief = torch.randn(3, 4), torch.randn(3, 8)
    td = env.reset(TensorDict({"state": state, "belief": belief}, [3]))
    torch.testing.assert_close(td["state"], state)
    actions = torch.rand(3, 4, 2) * 2 - 1
    steps = iter(range(4))

    def policy(state: torch.Tensor, belief: torch.Tensor) -> torch.Tensor:  # TorchRL feeds the observation keys
        return actions[:, next(steps)]  # the given action sequence, one step at a time

    rollout = env.rollout(4, policy=policy, auto_reset=False, tensordict=td)
    rssm = wm.rssm
    with torch.no_grad():
        d, s = belief, state
        for k in range(4):
            d = rssm.transition(d, s, rssm.transition.action_input(actions[:, k]))
            s = rssm.mode(rssm.prior(d))
            torch.testing.assert_close(rollout["next", "belief"][:, k], d)
            torch.testing.assert_close(rollout["next", "reward"][:, k], wm.reward(rssm.feat(s, d)))
        # the summed rewards are what our planners score
        total = latent_returns(rssm, wm.reward, belief, state, actions[:, None], sample=False)
    torch.testing.assert_close(rollout["next", "reward"].sum((1, 2)), total[:, 0])


def test_torchrl_planners_run_on_it() -> None:
    from torchrl.modules.planners import CEMPlanner, MPPIPlanner
    from tensordict.nn import TensorDictModule
    from torch import nn

    wm = _model()
    env = WorldModelEnv(wm)
    start = TensorDict({"state": torch.randn(2, 4), "belief": torch.randn(2, 8)}, [2])
    cem = CEMPlanner(env, planning_horizon=3, optim_steps=2, num_candidates=16, top_k=4)
    action = cem.planning(env.reset(start.clone()))
    assert action.shape == (2, 2) and action.abs().max() <= 1
    value = TensorDictModule(nn.Linear(4, 1), in_keys=["state"], out_keys=["state_value"])
    from torchrl.objectives.value import TDLambdaEstimator

    mppi = MPPIPlanner(env, TDLambdaEstimator(gamma=0.99, lmbda=0.95, value_network=value), temperature=1.0,
                       planning_horizon=3, optim_steps=2, num_candidates=16, top_k=4)
    assert mppi.planning(env.reset(start.clone())).shape == (2, 2)


def test_discrete_action_specs() -> None:
    env = WorldModelEnv(_model(5), ActionSpace("discrete", (2, 3)))
    action = env.action_spec.rand()
    assert action.shape == (5,) and action[:2].sum() == 1 and action[2:].sum() == 1
    td = env.rollout(3, auto_reset=False, tensordict=env.reset(TensorDict({}, [2])))
    assert td["next", "reward"].shape == (2, 3, 1)
