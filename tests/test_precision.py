"""``train.precision bf16``: the update's forward passes under bfloat16 autocast, everything that is not a matmul or
a convolution in float32.

What each test would catch: matmuls silently left in float32 (no speed-up), a distribution or recurrent state left
in bfloat16 (losses, KLs and λ-returns to 3 significant digits), gradients or optimiser states in bfloat16, a
stop-gradient lost on the way (a module trained by a loss it must not see), the option not reaching the learner
from the command line, or a resume refused because the precision changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe, deep_merge
from recipes.presets import apply_presets
from tests.helpers import figures, run_recipe_here, train_then_resume_without
from tests.test_v2_v3 import context_of, make_batch

# the algorithms, and PlaNet's transition models (each a state update of its own)
ALGOS = ["dreamer_v1", "dreamer_v2", "dreamer_v3", "planet", "planet ssm", "planet rssm_ma", "planet clockwork",
         "dreamer_v3 plan2explore"]


def learner(algo: str, precision: str, seed: int = 0, obs_dim: int = 5) -> Learner:
    """``algo``: presets, space-separated, before ``dmc_proprio debug``."""
    recipe = Recipe.model_validate(deep_merge(apply_presets([*algo.split(), "dmc_proprio", "debug"]),
                                              {"train": {"precision": precision}}))
    torch.manual_seed(seed)
    return Learner(build_dreamer(recipe, (obs_dim,), 2), recipe, obs_key="observation")


def batch_for(lrn: Learner):
    ctx = context_of(lrn.agent) if lrn.world_model_loss.replay_context else None
    return make_batch(B=3, T=6, A=2, obs_dim=5, context=ctx)


def losses(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith("train/loss/")}


def linear_output_dtypes(lrn: Learner) -> set[torch.dtype]:
    """The dtypes every ``nn.Linear`` / conv of the agent produced during one update."""
    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
             for m in lrn.agent.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    try:
        lrn.update(batch_for(lrn))
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("algo", ALGOS)
def test_bf16_runs_every_layer_in_bfloat16_and_fp32_none(algo: str) -> None:
    assert linear_output_dtypes(learner(algo, "bf16")) == {torch.bfloat16}
    assert linear_output_dtypes(learner(algo, "fp32")) == {torch.float32}


@pytest.mark.parametrize("algo", ALGOS)
def test_bf16_keeps_weights_gradients_states_and_losses_float32(algo: str) -> None:
    lrn = learner(algo, "bf16")
    metrics = lrn.update(batch_for(lrn))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in metrics.values()), metrics
    for name, p in lrn.agent.named_parameters():
        assert p.dtype == torch.float32, name
        assert p.grad is None or p.grad.dtype == torch.float32, name
    states = lrn.last_states
    for key in (("posterior", "deter"), ("posterior", "stoch")):
        assert states.get(key).dtype == torch.float32, key
    for opt in ([lrn.opt] if lrn.joint else [lrn.model_opt, lrn.actor_opt, lrn.value_opt]):
        if opt is None:
            continue
        for p, state in opt.state.items():
            moments = [v for v in state.values() if isinstance(v, torch.Tensor) and v.shape == p.shape]
            assert moments and all(v.dtype == torch.float32 for v in moments)


@pytest.mark.parametrize("algo", ALGOS)
def test_bf16_losses_match_fp32_on_the_same_weights_and_batch(algo: str) -> None:
    """Same seed, same weights, same batch, same noise: the losses agree to bfloat16's ~3 significant digits
    (the largest gap measured is 0.3% of the loss), so nothing is computed on a different scale or a different
    target."""
    results = {}
    for precision in ("fp32", "bf16"):
        lrn = learner(algo, precision)
        b = batch_for(lrn)
        torch.manual_seed(1)
        results[precision] = losses(lrn.update(b))
    fp32, bf16 = results["fp32"], results["bf16"]
    assert fp32.keys() == bf16.keys()
    for k in fp32:
        assert bf16[k] == pytest.approx(fp32[k], rel=2e-2, abs=2e-3), (k, fp32[k], bf16[k])


@pytest.mark.parametrize("algo", ["dreamer_v1", "dreamer_v3"])
def test_bf16_moves_exactly_the_parameters_fp32_moves(algo: str) -> None:
    """Stop-gradients survive the casts: a parameter gets a nonzero gradient in bfloat16 iff it does in float32."""
    moved = {}
    for precision in ("fp32", "bf16"):
        lrn = learner(algo, precision)
        b = batch_for(lrn)
        torch.manual_seed(1)
        lrn.update(b)
        moved[precision] = {n for n, p in lrn.agent.named_parameters() if p.grad is not None and p.grad.any()}
    assert moved["bf16"] == moved["fp32"]
    assert moved["fp32"]


def test_bf16_from_the_command_line_trains_and_resumes_in_fp32(tmp_path: Path) -> None:
    """``--train.precision bf16`` reaches the learner; the precision may change on resume (it is no part of the
    recipe's math), as ``--run.device`` may."""
    train_then_resume_without(tmp_path, "train.precision", "bf16")


# ------------------------------------------------------------------------------------------------ planning
def test_bf16_planner_scores_candidates_like_fp32_with_bfloat16_matmuls() -> None:
    """``planner.precision bf16``: the candidates' rollouts run their layers in bfloat16, the returns come back
    float32 and rank the candidates as fp32 does (same weights, same candidates, same prior noise)."""
    from dreamer_rl.action_space import ActionSpace
    from dreamer_rl.planners import CEMPlanner
    from dreamer_rl.world_model import WorldModel

    torch.manual_seed(0)
    wm = WorldModel((5,), 2, stoch=30, deter=200, hidden=200, units=100, act="relu", reward_layers=2)
    with torch.no_grad():
        wm.reward.net[-1].weight.mul_(30)  # spread the predicted rewards so the ranking means something
    space = ActionSpace("continuous", (2,))
    deter, stoch = torch.randn(2, 200), torch.randn(2, 30)
    actions = torch.rand(2, 64, 12, 2) * 2 - 1
    returns, seen = {}, {}
    for precision in ("fp32", "bf16"):
        planner = CEMPlanner(wm.rssm, wm.reward, space, horizon=12, candidates=64, iterations=2, top_k=8,
                             precision=precision)
        dtypes: set[torch.dtype] = set()
        hooks = [m.register_forward_hook(lambda _m, _i, out: dtypes.add(out.dtype))
                 for m in wm.modules() if isinstance(m, nn.Linear)]
        torch.manual_seed(1)
        with torch.no_grad():
            returns[precision] = planner.returns(deter, stoch, actions)
            action, plan = planner(deter, stoch)
        for h in hooks:
            h.remove()
        seen[precision] = dtypes
        assert returns[precision].dtype == action.dtype == plan.dtype == torch.float32
    assert seen == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    fp32, bf16 = returns["fp32"], returns["bf16"]
    assert fp32.std() > 0.5
    torch.testing.assert_close(bf16, fp32, rtol=0.0, atol=0.05 * float(fp32.std()))
    top = fp32.topk(8, dim=1).indices
    shared = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top, bf16.topk(8, dim=1).indices)]
    assert min(shared) >= 6, shared  # the elites are (nearly) the same candidates


def test_bf16_planning_from_the_command_line(tmp_path: Path) -> None:
    args = ["--task", "cartpole_balance", "--preset", "planet", "dmc_proprio", "debug", "--run.name", "p",
            "--tracking.video", "false", "--env.max_episode_frames", "100", "--planner.precision", "bf16",
            "--train.precision", "bf16", "--run.steps", "400", "--run.eval_every", "400"]
    result = run_recipe_here(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(figures(result.stdout)["frames"]) >= 400  # PlaNet's cartpole action repeat 8: whole agent steps


def test_bf16_without_native_support_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import dreamer_rl.agent

    monkeypatch.setattr(dreamer_rl.agent, "bf16_is_native", lambda device: False)
    with caplog.at_level("WARNING", logger="dreamer_rl.agent"):
        learner("dreamer_v1", "bf16")
    assert "no native bfloat16 matmuls" in caplog.text and "--train.precision fp32" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="dreamer_rl.agent"):
        learner("dreamer_v1", "fp32")
    assert not caplog.text
