"""Plan2Explore: the disagreement ensemble's loss and reward, who gets gradients, who collects, debug runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from tensordict import TensorDict

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe, deep_merge
from dreamer_rl.losses.plan2explore import DisagreementEnsemble
from dreamer_rl.policy import DreamerPolicy
from recipes.presets import apply_presets
from tests.helpers import figures, run_recipe_here


def _recipe(*presets: str) -> Recipe:
    return Recipe.model_validate(apply_presets(list(presets)))


def _batch(B: int = 3, T: int = 6, obs: int = 5, act: int = 1) -> TensorDict:
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[0, 3] = True
    return TensorDict({"observation": torch.randn(B, T, obs), "action": torch.rand(B, T, act) * 2 - 1,
                       "reward": torch.randn(B, T, 1), "is_init": is_init,
                       "terminated": torch.zeros(B, T, 1, dtype=torch.bool)}, [B, T])


def test_ensemble_loss_and_reward_against_a_member_by_member_computation() -> None:
    torch.manual_seed(0)
    ens = DisagreementEnsemble(4, 2, 3, members=5, units=8, layers=2, log=False)
    feat, action, target = torch.randn(2, 4, 4), torch.randn(2, 4, 2), torch.randn(2, 4, 3)
    is_init = torch.zeros(2, 4, 1, dtype=torch.bool)
    is_init[1, 2] = True  # the pair (t=1 -> t=2) of sequence 1 crosses an episode start
    preds = ens.predict(feat, action)  # [K, 2, 4, 3]
    assert preds.shape == (5, 2, 4, 3)
    # member k alone, as a plain MLP: the batched weights are K independent layers
    k = 3
    x = torch.cat([feat, action], -1)
    for i, layer in enumerate(ens.net):
        x = x @ layer.weight[k] + layer.bias[k] if hasattr(layer, "weight") else layer(x)
    torch.testing.assert_close(preds[k], x)
    pairs = [(b, t) for b in range(2) for t in range(3) if not (b == 1 and t == 1)]
    expected = sum(0.5 * ((ens.predict(feat[b, t], action[b, t + 1])[m] - target[b, t + 1]) ** 2).sum()
                   for m in range(5) for b, t in pairs) / len(pairs)
    torch.testing.assert_close(ens.loss(feat, action, target, is_init), expected)
    disag = preds.std(0).mean(-1, keepdim=True)
    torch.testing.assert_close(ens.intrinsic(feat, action), disag)
    ens.log, ens.extr_scale = True, 0.5
    torch.testing.assert_close(ens.reward(feat, action, torch.ones(2, 4, 1)), disag.log() + 0.5)


def test_update_trains_ensemble_and_both_behaviours_with_their_own_gradients() -> None:
    recipe = _recipe("dreamer_v2", "plan2explore", "dmc_proprio", "debug")
    assert recipe.run.algo == "dreamer_v2_plan2explore" and recipe.model.deter == 32  # domain + debug still apply
    torch.manual_seed(0)
    agent = build_dreamer(recipe, (5,), 1)
    learner = Learner(agent, recipe, obs_key="observation")
    mods = {"ensemble": agent.ensemble, "expl_actor": agent.expl_actor, "expl_value": agent.expl_value,
            "actor": agent.actor, "world_model": agent.world_model}
    before = {k: [p.clone() for p in m.parameters()] for k, m in mods.items()}
    metrics = learner.update(_batch())
    for key in ("train/loss/ensemble", "train/loss/expl_actor", "train/loss/expl_value", "train/loss/actor"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    for k, m in mods.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters())), f"{k} did not change"
    # the exploration actor's loss reaches its actor only: model and ensemble are held out
    agent.zero_grad(set_to_none=True)
    _, states = learner.world_model_loss(_batch())
    learner.explorer.actor_loss(states)[0]["loss_actor"].backward()
    assert all(p.grad is None for p in agent.world_model.parameters())
    assert all(p.grad is None for p in agent.ensemble.parameters())
    assert any(p.grad is not None for p in agent.expl_actor.parameters())
    assert set(learner.optim_state()["explore"]) == {"ensemble", "actor", "value"}


def test_exploration_actor_collects_and_the_task_actor_is_evaluated() -> None:
    recipe = _recipe("dreamer_v3", "plan2explore", "dmc_proprio", "debug")
    torch.manual_seed(0)
    agent = build_dreamer(recipe, (5,), 1)
    obs = torch.randn(4, 5)
    td = lambda: TensorDict({"observation": obs, "is_init": torch.ones(4, 1, dtype=torch.bool)}, [4])  # noqa: E731
    with torch.no_grad():
        torch.nn.init.constant_(agent.expl_actor.net[-1].bias, 3.0)  # exploration actor pushes actions up
        torch.nn.init.constant_(agent.actor.net[-1].bias, -3.0)  # task actor pushes them down
    explore = DreamerPolicy(agent, obs_key="observation", mode="explore", expl="none")
    evaluate = DreamerPolicy(agent, obs_key="observation", mode="eval")
    assert (explore(td())["action"] > 0).float().mean() > 0.7
    assert (evaluate(td())["action"] < 0).all()


def test_plan2explore_needs_an_actor() -> None:
    with pytest.raises(ValueError, match="plan2explore trains an exploration actor"):
        Recipe.model_validate(deep_merge(apply_presets(["planet", "plan2explore"]), {}))


@pytest.mark.parametrize("algo", ["dreamer_v2", "dreamer_v3"])
def test_plan2explore_debug_run(tmp_path: Path, algo: str) -> None:
    done = run_recipe_here(tmp_path, "--task", "cartpole_balance", "--preset", algo, "plan2explore", "dmc_proprio",
                      "debug", "--run.name", "p", "--run.steps", "500", "--tracking.video", "false")
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(figures(done.stdout)["updates"]) > 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("dreamer_rl").experiment_id])
    assert run.data.tags["algo"] == f"{algo}_plan2explore"
    for key in ("train/loss/ensemble", "train/loss/expl_actor", "eval/return"):
        assert key in run.data.metrics, key
