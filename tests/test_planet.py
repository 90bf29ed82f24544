"""PlaNet as a recipe: the planner acting through the policy (what it receives, warm starts carried by the env),
end-to-end debug runs of `planet`, `planet` + MPPI, discrete CEM, the `actor` preset, and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from tensordict import TensorDict

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe, deep_merge
from dreamer_rl.policy import PLAN_KEY, DreamerPolicy
from recipes.presets import apply_presets
from tests.helpers import figures, run_recipe_here


def _recipe(*presets: str, **sections) -> Recipe:
    return Recipe.model_validate(deep_merge(apply_presets(list(presets)), sections))


def _agent(recipe: Recipe, obs_dim: int = 5, action_dim: int = 1):
    torch.manual_seed(0)
    return build_dreamer(recipe, (obs_dim,), action_dim)


def test_planet_agent_has_no_actor_or_critic_and_learns_the_model_only() -> None:
    recipe = _recipe("planet", "dmc_proprio", "debug")
    agent = _agent(recipe)
    assert agent.actor is None and agent.value is None and agent.planner is not None
    assert recipe.planner.candidates == 64 and recipe.model.act == "relu"
    learner = Learner(agent, recipe, obs_key="observation")
    B, T = 3, 6
    batch = TensorDict({"observation": torch.randn(B, T, 5), "action": torch.rand(B, T, 1) * 2 - 1,
                        "reward": torch.randn(B, T, 1), "is_init": torch.zeros(B, T, 1, dtype=torch.bool),
                        "terminated": torch.zeros(B, T, 1, dtype=torch.bool)}, [B, T])
    before = [p.clone() for p in agent.world_model.parameters()]
    metrics = learner.update(batch)  # PlaNet's ramp: the first update runs at learning rate 0
    metrics = learner.update(batch)
    assert "train/loss/actor" not in metrics and "train/loss/kl" in metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.world_model.parameters()))
    assert set(learner.optim_state()) - {"lr_schedulers"} == {"model"}


def test_policy_acts_with_the_planner_on_the_filtered_state() -> None:
    """The policy's action is the planner's, on the posterior the policy filtered (same RNG stream)."""
    recipe = _recipe("planet", "dmc_proprio", "debug")
    agent = _agent(recipe)
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval")
    obs = torch.randn(2, 5)
    td = TensorDict({"observation": obs, "is_init": torch.ones(2, 1, dtype=torch.bool)}, [2])
    torch.manual_seed(1)
    policy(td)
    torch.manual_seed(1)
    rssm = agent.world_model.rssm
    with torch.no_grad():
        deter, stoch = rssm.obs_step(*rssm.initial((2,)), torch.zeros(2, 1), agent.world_model.embed(obs),
                                     torch.ones(2, 1, dtype=torch.bool))
        action, _ = agent.planner(deter, stoch)
    torch.testing.assert_close(td["next", "recurrent", "deter"], deter)
    torch.testing.assert_close(td["action"], action)


def test_warm_start_travels_with_the_env_and_resets_at_episode_start() -> None:
    from envs import make_env
    from dreamer_rl.policy import with_recurrent_state

    recipe = _recipe("planet", "dmc_proprio", "debug", planner={"warm_start": True})
    env = make_env("dmc_cartpole_balance", from_pixels=False, action_repeat=4, max_episode_frames=40, seed=0)
    agent = build_dreamer(recipe, tuple(env.observation_spec["observation"].shape), 1)
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval", warm_start=True)
    assert PLAN_KEY in policy.in_keys and ("next", *PLAN_KEY) in policy.out_keys
    env = with_recurrent_state(env, policy)
    seen = []
    original = agent.planner.forward

    def spy(deter, stoch, plan=None):
        seen.append(plan.clone())
        return original(deter, stoch, plan)

    agent.planner.forward = spy
    td = env.rollout(14, policy, break_when_any_done=False)  # 10-step episodes: a reset at step 10
    H, A = recipe.planner.horizon, 1
    out = td["next", *PLAN_KEY].reshape(-1, H, A)
    assert (seen[0] == 0).all()  # cold start at the first step
    for t in range(1, 14):
        expected = torch.zeros(1, H, A) if t == 10 else torch.cat([out[t - 1:t, 1:], torch.zeros(1, 1, A)], 1)
        torch.testing.assert_close(seen[t], expected, msg=f"step {t}")
    assert not (out[9] == 0).all()


def test_actor_preset_trains_the_actor_without_a_critic() -> None:
    recipe = _recipe("actor", "dmc_proprio", "debug")
    agent = _agent(recipe)
    assert agent.value is None and agent.actor is not None and agent.planner is None
    learner = Learner(agent, recipe, obs_key="observation")
    B, T = 2, 5
    batch = TensorDict({"observation": torch.randn(B, T, 5), "action": torch.rand(B, T, 1) * 2 - 1,
                        "reward": torch.randn(B, T, 1), "is_init": torch.zeros(B, T, 1, dtype=torch.bool),
                        "terminated": torch.zeros(B, T, 1, dtype=torch.bool)}, [B, T])
    metrics = learner.update(batch)
    assert "train/loss/actor" in metrics and "train/loss/value" not in metrics
    assert set(learner.optim_state()) - {"lr_schedulers"} == {"model", "actor"}


def test_actor_returns_are_reward_sums_without_bootstrap() -> None:
    from dreamer_rl.losses import ActorLoss

    recipe = _recipe("actor", "dmc_proprio", "debug")
    agent = _agent(recipe)
    loss = ActorLoss(agent.world_model, agent.actor, None, horizon=3, gamma=0.5, lambda_=0.95)
    reward = torch.tensor([[[1.0]], [[2.0]], [[4.0]]])  # [H, N, 1]
    value = torch.zeros(4, 1, 1)
    returns = loss.returns(reward, value, torch.full_like(reward, 0.5))
    torch.testing.assert_close(returns[:, 0, 0], torch.tensor([1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0]))


@pytest.mark.parametrize("text,message", [
    ({"behavior": {"action_head": False}}, "set planner.kind cem or mppi"),
    ({"planner": {"kind": "cem", "objective": "value"}, "behavior": {"value_head": False}}, "needs a critic"),
    ({"planner": {"kind": "cem", "candidates": 10, "top_k": 20}}, "top_k 20 exceeds candidates 10"),
])
def test_inconsistent_planner_settings_are_refused(text: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recipe.model_validate(text)


def test_cli_refuses_planning_without_a_planner_in_one_line(tmp_path: Path) -> None:
    out = run_recipe_here(tmp_path, "--task", "cartpole_balance", "--preset", "planet", "debug", "--planner.kind", "none")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "planner.kind cem or mppi" in out.stderr and len(out.stderr.strip().splitlines()) == 1


CASES = [
    ("planet", "dmc_proprio", "cartpole_swingup", ["--planner.summarise_plan_returns", "true"]),
    ("planet", "dmc_vision", "cartpole_swingup", []),
    ("planet", "dmc_proprio", "cartpole_balance_da", ["--planner.warm_start", "true"]),
    ("planet", "dmc_proprio", "cartpole_balance", ["--planner.kind", "mppi"]),
    ("actor", "dmc_proprio", "cartpole_balance", []),
    ("planet_paper", "dmc_vision", "cartpole_swingup", []),
    ("dreamer_v1 tap", "dmc_vision", "cartpole_balance", []),
]


@pytest.mark.parametrize("algo,domain,task,extra", CASES, ids=[f"{c[0].replace(' ', '+')}-{c[1]}-{c[2]}-{len(c[3])}" for c in CASES])
def test_planet_recipes_debug_run(tmp_path: Path, algo: str, domain: str, task: str, extra: list[str]) -> None:
    args = ["--task", task, "--preset", *algo.split(), domain, "debug", "--run.name", "p", "--run.steps", "600",
            "--run.eval_every", "600", "--tracking.video", "false", *extra]
    done = run_recipe_here(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    out = figures(done.stdout)
    assert int(out["frames"]) >= 600 and int(out["updates"]) > 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("dreamer_rl").experiment_id])
    assert run.data.tags["algo"] == algo.split()[0]
    assert "eval/return" in run.data.metrics and "train/loss/image" in run.data.metrics
    if algo == "planet_paper":
        assert "train/loss/overshooting" in run.data.metrics and "train/loss/global_kl" in run.data.metrics
    if "tap" in algo:
        assert "train/loss/tap" in run.data.metrics
    if "--planner.summarise_plan_returns" in extra:
        for key in ("plan/return_first_mean", "plan/return_last_mean", "plan/return_last_max"):
            assert key in run.data.metrics, key
        hists = [a.path for a in client.list_artifacts(run.info.run_id, "plan")]
        assert hists and all(p.endswith(".json") for p in hists)


def test_cli_keeps_a_choice_named_none() -> None:
    """``--planner.kind none`` / ``--behavior.expl none`` are choices, not a null (``--run.name none`` is)."""
    from recipes.cli import _accepts_none, _leaf_fields, _parse_value
    from dreamer_rl.config import Recipe

    fields = dict(_leaf_fields(Recipe))
    assert _parse_value("none", _accepts_none(fields["planner.kind"].annotation)) == "none"
    assert _parse_value("none", _accepts_none(fields["behavior.expl"].annotation)) == "none"
    assert _parse_value("none", _accepts_none(fields["run.name"].annotation)) is None


VARIANTS = ["ssm", "deterministic", "rssm_ma", "clockwork", "cell_as_prior", "tap"]


@pytest.mark.parametrize("domain", ["dmc_proprio", "dmc_vision"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_planet_combines_with_every_variant(variant: str, domain: str) -> None:
    """`--preset planet <variant> <domain> debug`: the model trains one step and the planner acts on its states."""
    recipe = _recipe("planet", variant, domain, "debug")
    pixels = domain == "dmc_vision"
    obs_shape = (3, 64, 64) if pixels else (5,)
    torch.manual_seed(0)
    agent = build_dreamer(recipe, obs_shape, 1)
    key = "pixels" if pixels else "observation"
    learner = Learner(agent, recipe, obs_key=key)
    B, T = 2, 6
    obs = torch.randint(0, 255, (B, T, *obs_shape), dtype=torch.uint8) if pixels else torch.randn(B, T, 5)
    batch = TensorDict({key: obs, "action": torch.rand(B, T, 1) * 2 - 1, "reward": torch.randn(B, T, 1),
                        "is_init": torch.zeros(B, T, 1, dtype=torch.bool),
                        "terminated": torch.zeros(B, T, 1, dtype=torch.bool)}, [B, T])
    for _ in range(2):
        metrics = learner.update(batch)
    assert all(torch.isfinite(v) for v in metrics.values())
    if variant == "tap":
        assert "train/loss/tap" in metrics
    policy = DreamerPolicy(agent, obs_key=key, mode="eval")
    td = policy(TensorDict({key: obs[:, 0], "is_init": torch.ones(B, 1, dtype=torch.bool)}, [B]))
    assert td["action"].shape == (B, 1) and td["action"].abs().max() <= 1


def test_five_bit_quantisation_golden_values() -> None:
    """PlaNet's preprocessing: floor(p / 8) / 32 + U[0, 1/32) - 0.5 at 5 bits; pixels in one bin share its interval."""
    from dreamer_rl.nets.conv import quantise
    from dreamer_rl.world_model import WorldModel

    torch.manual_seed(0)
    pixels = torch.tensor([0, 7, 8, 200, 207, 255], dtype=torch.uint8).repeat(2000, 1)
    x = quantise(pixels, 5)
    low = torch.tensor([0, 0, 1, 25, 25, 31]) / 32 - 0.5
    assert bool(((x >= low) & (x < low + 1 / 32)).all())
    torch.testing.assert_close(x.mean(0), low + 1 / 64, atol=5e-4, rtol=0)  # the noise is uniform over the bin
    assert float(x[:, 3].max() - x[:, 3].min()) > 0.9 / 32  # drawn afresh per pixel

    wm = WorldModel((3, 64, 64), 2, image_bits=5)
    frame = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    as_float = frame.to(torch.float32) / 255  # TorchRL's ToTensorImage scale reaches the same bins
    lo = torch.div(frame, 8, rounding_mode="floor").to(torch.float32) / 32 - 0.5
    for target in (wm.target(frame), wm.target(as_float)):
        assert bool(((target >= lo) & (target < lo + 1 / 32)).all())
    assert torch.equal(WorldModel((3, 64, 64), 2).target(frame), frame.to(torch.float32) / 255 - 0.5)  # 8 bits


def test_planet_preset_quantises_to_five_bits() -> None:
    from recipes import make_recipe

    assert make_recipe("planet").model.image_bits == 5
    assert make_recipe("planet_paper").model.image_bits == 5
    assert make_recipe("dreamer_v1").model.image_bits == 8
