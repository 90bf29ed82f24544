"""``train.compile``: the world model's filter and imagination steps through ``torch.compile``.

What each test would catch: a compiled step computing something else than the eager one (values or gradients), a
compiled model whose parameters or checkpoint keys differ from the eager model's, ``compile none`` not restoring
eager steps, the option not reaching the learner from the command line, a resume refused because the option
changed, and a transition model whose loop does not go through its step function (so nothing would be compiled).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.compile import STEP_METHODS, compile_steps, is_compiled
from dreamer_rl.config import Recipe, deep_merge
from recipes.presets import apply_presets
from tests.helpers import train_then_resume_without
from tests.test_v2_v3 import context_of, make_batch


def learner(presets: str, compile: str, seed: int = 0) -> Learner:
    recipe = Recipe.model_validate(deep_merge(apply_presets([*presets.split(), "dmc_proprio", "debug"]),
                                              {"train": {"compile": compile}}))
    torch.manual_seed(seed)
    return Learner(build_dreamer(recipe, (5,), 2), recipe, obs_key="observation")


def step_inputs(lrn: Learner, B: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of one ``filter_step``: a nonzero state, one reset row, projected action and embedding, noise."""
    wm = lrn.agent.world_model
    rssm = wm.rssm
    g = torch.Generator().manual_seed(seed)
    deter = torch.randn(B, rssm.deter, generator=g)
    stoch = torch.randn(B, rssm.stoch, generator=g)
    keep = torch.ones(B, 1)
    keep[0] = 0.0
    act_in = rssm.transition.action_input(torch.rand(B, 2, generator=g) * 2 - 1).detach()
    emb_in = rssm.post_in_embed(wm.embed(torch.randn(B, 5, generator=g))).detach()
    noise = rssm._noise(B, device=deter.device, dtype=deter.dtype)
    return deter, stoch, keep, act_in, emb_in, noise


@pytest.mark.parametrize("presets", ["dreamer_v3", "dreamer_v1", "planet clockwork"])
def test_compiled_filter_step_equals_eager_in_values_and_gradients(presets: str) -> None:
    lrn = learner(presets, "none")
    rssm = lrn.agent.world_model.rssm
    inputs = step_inputs(lrn)
    eager = rssm.filter_step(*inputs)
    eager_grads = torch.autograd.grad(sum(o.square().sum() for o in eager), list(rssm.parameters()),
                                      allow_unused=True)
    assert compile_steps(rssm, "default") == list(STEP_METHODS)
    compiled = rssm.filter_step(*inputs)
    assert type(rssm.filter_step).__name__ != "method"  # the instance's step is the compiled one
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad(sum(o.square().sum() for o in compiled), list(rssm.parameters()), allow_unused=True)
    assert sum(g is not None for g in grads) == sum(g is not None for g in eager_grads) > 0
    for e, c in zip(eager_grads, grads):
        if e is not None:
            torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("presets", ["dreamer_v3", "planet clockwork"])
def test_compiled_imagination_and_planner_steps_equal_eager(presets: str) -> None:
    lrn = learner(presets, "none")
    rssm = lrn.agent.world_model.rssm
    deter, stoch, _, act_in = step_inputs(lrn)[:4]
    action = torch.rand(4, 2) * 2 - 1
    eager = rssm.img_step(deter, stoch, action, sample=False), rssm.prior_step(deter, stoch, act_in, False)
    compile_steps(rssm, "default")
    compiled = rssm.img_step(deter, stoch, action, sample=False), rssm.prior_step(deter, stoch, act_in, False)
    for e, c in zip([*eager[0], *eager[1]], [*compiled[0], *compiled[1]]):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-5)
    if presets != "dreamer_v3":
        return
    _, sample = rssm.img_step(deter, stoch, action)  # sampled: a one-hot per categorical variable
    onehot = sample.unflatten(-1, (rssm.variables, rssm.classes))
    assert torch.equal(onehot.sum(-1), torch.ones(4, rssm.variables))


def test_compile_keeps_parameters_and_checkpoint_keys_and_none_restores_eager() -> None:
    eager = learner("dreamer_v3", "none")
    compiled = learner("dreamer_v3", "default")
    rssm = compiled.agent.world_model.rssm
    assert compiled.compiled == list(STEP_METHODS) and is_compiled(rssm)
    assert eager.compiled == [] and not is_compiled(eager.agent.world_model.rssm)
    assert list(compiled.agent.state_dict()) == list(eager.agent.state_dict())
    compiled.agent.load_state_dict(eager.agent.state_dict())  # checkpoints move between the two
    assert compile_steps(rssm, "none") == [] and not is_compiled(rssm)
    assert all(type(getattr(rssm, name)).__name__ == "method" for name in STEP_METHODS)
    with pytest.raises(ValueError, match="available: none, default"):
        compile_steps(rssm, "fast")


def test_a_compiled_update_trains_like_an_eager_one() -> None:
    """Same weights, same batch, same seed: the compiled update's losses equal the eager update's (the filter's
    noise is drawn outside the compiled step; imagination's inside it, where inductor's own random numbers differ
    from eager ones unless ``fallback_random`` asks for eager's)."""
    import torch._inductor.config as inductor_config

    results = {}
    for mode in ("none", "default"):
        lrn = learner("dreamer_v3", mode)
        batch = make_batch(B=3, T=6, A=2, obs_dim=5, context=context_of(lrn.agent))
        torch.manual_seed(1)
        with inductor_config.patch(fallback_random=True):
            metrics = lrn.update(batch)
        results[mode] = {k: float(v) for k, v in metrics.items() if k.startswith("train/loss/")}
    assert results["default"].keys() == results["none"].keys()
    for key, value in results["none"].items():
        assert results["default"][key] == pytest.approx(value, rel=1e-3, abs=1e-5), key


def test_compile_from_the_command_line_trains_and_resumes_eager(tmp_path: Path) -> None:
    """``--train.compile default`` reaches the learner; the option may change on resume (no part of the math)."""
    train_then_resume_without(tmp_path, "train.compile", "default")
