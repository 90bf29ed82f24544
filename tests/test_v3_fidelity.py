"""DreamerV3 details checked against the authors' code (``dreamerv3/agent.py``, ``rssm.py``, ``embodied/jax``):
the truncated-normal fan-in initialisation with its output scales, the vector encoder's normalised embedding, the
replay-value loss training the world model (``repval_grad``), and imagination weights that include the start
state's continuation."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe, deep_merge
from dreamer_rl.errors import UserError
from dreamer_rl.losses import ActorLoss
from dreamer_rl.nets.init import trunc_normal_in_
from dreamer_rl.nets.norm_act import RMSNormSiLU
from recipes.presets import apply_presets
from tests.test_v2_v3 import context_of, make_batch


def v3(*extra: str, **overrides: dict) -> Recipe:
    return Recipe.model_validate(deep_merge(apply_presets(["dreamer_v3", "dmc_proprio", *extra]), overrides))


def batch(agent=None) -> TensorDict:
    """Stored rows [B, T], a state vector, 1-D actions (and zero stored start states for ``agent``)."""
    return make_batch(B=2, T=6, A=1, obs_dim=5, context=context_of(agent) if agent is not None else None)


# ------------------------------------------------------------------------------------------------ initialisation
def test_trunc_normal_in_has_unit_variance_over_the_fan_in() -> None:
    torch.manual_seed(0)
    w = trunc_normal_in_(torch.empty(400, 500), fan_in=400)
    assert w.std().item() == pytest.approx(1 / math.sqrt(400), rel=0.02)
    assert w.abs().max().item() <= 2 * 1.1368 / math.sqrt(400) + 1e-6  # truncated at two standard normals


def test_v3_init_scales_every_layer_by_its_fan_in() -> None:
    """size12m-like widths so the empirical std is tight; the reward and critic outputs stay zero, the policy's last
    layer is 0.01 of its fan-in scale, biases zero, and the slow critic starts equal to the critic."""
    torch.manual_seed(0)
    recipe = v3("size12m")
    agent = build_dreamer(recipe, (5,), ActionSpace("continuous", (2,)))
    m, wm = recipe.model, agent.world_model
    cell = wm.rssm.transition
    g, d = m.blocks, m.deter // m.blocks
    fan_hidden = g * (d + 3 * m.hidden)  # the author's BlockLinear fan-in: the whole input width
    assert cell.hid_shared.std().item() == pytest.approx(1 / math.sqrt(fan_hidden), rel=0.03)
    assert cell.hid_block.std().item() == pytest.approx(1 / math.sqrt(fan_hidden), rel=0.03)
    assert cell.gates.std().item() == pytest.approx(1 / math.sqrt(m.deter), rel=0.03)
    assert not cell.gates_bias.detach().any()
    first = cell.in_deter[0]
    assert first.weight.std().item() == pytest.approx(1 / math.sqrt(m.deter), rel=0.03)
    for head in (wm.reward, agent.value):
        assert not head.net[-1].weight.detach().any() and not head.net[-1].bias.detach().any()
    out = agent.actor.net[-1]
    assert out.weight.std().item() == pytest.approx(0.01 / math.sqrt(out.in_features), rel=0.1)
    assert not out.bias.detach().any()
    biases = [mod.bias for mod in agent.modules() if isinstance(mod, nn.Linear) and mod.bias is not None]
    assert biases and not any(b.detach().any() for b in biases)
    for p, q in zip(agent.value.parameters(), agent.slow_value.parameters(), strict=True):
        assert torch.equal(p, q)


def test_torch_init_is_kept_for_the_other_algorithms() -> None:
    torch.manual_seed(0)
    recipe = Recipe.model_validate(apply_presets(["dreamer_v2", "dmc_proprio", "debug"]))
    assert recipe.model.init == "torch"
    agent = build_dreamer(recipe, (5,), 1)
    biases = [mod.bias for mod in agent.world_model.modules() if isinstance(mod, nn.Linear) and mod.bias is not None]
    assert any(b.detach().any() for b in biases)  # PyTorch's random biases


def test_untrained_v3_policy_is_near_uniform_and_centred() -> None:
    """The policy's 0.01 output scale: an untrained one-hot policy is ~uniform, a continuous one ~centred."""
    torch.manual_seed(0)
    recipe = v3("debug")
    agent = build_dreamer(recipe, (5,), ActionSpace("discrete", (3,)))
    feat = torch.randn(256, agent.world_model.rssm.feat_dim)
    probs = agent.actor.dist(feat).probs
    assert (probs - 1 / 3).abs().max().item() < 0.02
    agent = build_dreamer(recipe, (5,), ActionSpace("continuous", (2,)))
    assert agent.actor(feat, sample=False).abs().max().item() < 0.05


# ------------------------------------------------------------------------------------------------ norms
def test_v3_norms_have_eps_1e4_and_a_bias_before_each() -> None:
    """The author's ``nn.Norm`` (eps 1e-4) follows ``Linear``/``Conv2D`` layers that keep their bias; every hidden
    layer of a V3 agent, from pixels and from state, is so (V2's LayerNorm GRU keeps 1e-3)."""
    from dreamer_rl.nets.conv_v3 import ChannelNormAct

    recipe = Recipe.model_validate(apply_presets(["dreamer_v3", "dmc_vision", "debug"]))
    for agent in (build_dreamer(v3("debug"), (5,), 1), build_dreamer(recipe, (3, 64, 64), 1)):
        norms = [m for m in agent.modules() if isinstance(m, (RMSNormSiLU, nn.RMSNorm))]
        norms += [m.norm for m in agent.modules() if isinstance(m, ChannelNormAct)]
        assert len(norms) > 10 and all(m.eps == 1e-4 for m in norms)
        layers = {n: m for n, m in agent.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))}
        # the posterior's ``W [h, e] + b`` is two summed linears; the bias sits in the ``h`` one
        assert [n for n, m in layers.items() if m.bias is None] == ["world_model.rssm.post_in_embed"]
        cell = agent.world_model.rssm.transition
        assert cell.hid_bias is not None  # the block-linear hidden layer before its norm
        with torch.no_grad():  # the bias is not cancelled by RMSNorm: it moves the output
            before = cell.in_deter(torch.zeros(3, cell.deter)).clone()
            cell.in_deter[0].bias.fill_(0.5)
            assert not torch.allclose(cell.in_deter(torch.zeros(3, cell.deter)), before)
    v2 = build_dreamer(Recipe.model_validate(apply_presets(["dreamer_v2", "dmc_proprio", "debug"])), (5,), 1)
    assert all(m.eps == 1e-3 for m in v2.modules() if isinstance(m, nn.LayerNorm))


# ------------------------------------------------------------------------------------------------ vector encoder
def test_v3_vector_encoder_embeds_through_its_last_normalised_layer() -> None:
    torch.manual_seed(0)
    recipe = v3("debug")
    assert recipe.model.vector_embed == "hidden"
    enc = build_dreamer(recipe, (5,), 1).world_model.encoder
    linears = [mod for mod in enc if isinstance(mod, nn.Linear)]
    assert len(linears) == recipe.model.mlp_layers  # every layer hidden, none a plain linear output
    assert isinstance(enc[-2], RMSNormSiLU) and isinstance(enc[-1], nn.Identity)
    assert enc(torch.randn(64, 5)).min().item() >= -0.2785  # SiLU's minimum: the embedding is activated
    v2 = Recipe.model_validate(apply_presets(["dreamer_v2", "dmc_proprio", "debug"]))
    enc = build_dreamer(v2, (5,), 1).world_model.encoder
    assert isinstance(enc[-1], nn.Linear) and len([m for m in enc if isinstance(m, nn.Linear)]) == v2.model.mlp_layers


# -------------------------------------------------------------------------------------------------- repval_grad
@pytest.mark.parametrize("repval_grad", [True, False])
def test_replay_value_loss_reaches_the_world_model_only_with_repval_grad(repval_grad: bool) -> None:
    torch.manual_seed(0)
    recipe = v3("debug", behavior={"repval_grad": repval_grad})
    agent = build_dreamer(recipe, (5,), 1)
    with torch.no_grad():  # a zero-initialised two-hot output passes no gradient back; give the critic an opinion
        agent.value.net[-1].weight.normal_(0.0, 0.1)
    learner = Learner(agent, recipe, obs_key="observation")
    data = batch(agent)
    _, states = learner.world_model_loss(data)
    _, imagined = learner.actor_loss(states)
    repval = learner._critic_losses(data, states, imagined)["loss_repval"]
    agent.zero_grad(set_to_none=True)
    repval.backward()
    encoder_grads = [p.grad for p in agent.world_model.encoder.parameters()]
    if repval_grad:
        assert all(g is not None and float(g.abs().sum()) > 0 for g in encoder_grads)
    else:
        assert all(g is None for g in encoder_grads)
    assert all(p.grad is not None for p in agent.value.parameters())


def test_repval_grad_with_separate_optimisers_is_one_clear_error() -> None:
    recipe = v3("debug", behavior={"repval_grad": True}, train={"optimizer": "adam"})
    agent = build_dreamer(recipe, (5,), 1)
    with pytest.raises(UserError, match="repval_grad true needs the joint optimiser"):
        Learner(agent, recipe, obs_key="observation")


# ------------------------------------------------------------------------------------------ imagination weights
@pytest.mark.parametrize("start_bias, expected", [(-30.0, 0.0), (30.0, 1.0)])
def test_imagination_weights_include_the_start_states_continuation(start_bias: float, expected: float) -> None:
    """A continuation head saying 'terminal' everywhere zeroes every weight, w_0 included (V3's cumprod over s_0..s_k);
    one saying 'continue' leaves w = 1."""
    torch.manual_seed(0)
    agent = build_dreamer(v3("debug"), (5,), 1)
    wm = agent.world_model
    with torch.no_grad():
        wm.pcont[-1].weight.zero_()
        wm.pcont[-1].bias.fill_(start_bias)
    rssm = wm.rssm
    states = TensorDict({("posterior", "deter"): torch.randn(8, rssm.deter),
                         ("posterior", "stoch"): torch.zeros(8, rssm.stoch)}, [8])
    _, imagined = ActorLoss(wm, agent.actor, agent.value, horizon=4, gamma=0.9, actor_grad="reinforce")(states)
    torch.testing.assert_close(imagined["weight"], torch.full_like(imagined["weight"], expected))


# ------------------------------------------------------------------------------------------------ slice starts
@pytest.mark.parametrize("reset", [True, False])
def test_slice_start_reset_ignores_the_stored_previous_action(reset: bool) -> None:
    """With ``train.slice_start_reset`` (V3 without replay context) a slice's first row starts from the zero state
    and zero action, so the action stored in row 0 (a_{-1}, from before the slice) changes nothing; without it, it
    does (V1, V2)."""
    torch.manual_seed(0)
    recipe = v3("debug", train={"slice_start_reset": reset, "replay_context": 0})
    agent = build_dreamer(recipe, (5,), 1)
    learner = Learner(agent, recipe, obs_key="observation")
    data = batch()
    data["is_init"][:, 0] = False  # a slice from the middle of an episode
    other = data.clone()
    other["action"][:, 0] = -data["action"][:, 0] + 0.5

    def posterior(td: TensorDict) -> torch.Tensor:
        torch.manual_seed(1)
        with torch.no_grad():
            _, states = learner.world_model_loss(learner.prepare(td))
        return states.get(("posterior", "deter"))

    assert torch.equal(posterior(data), posterior(other)) == reset
    assert not data["is_init"][:, 0].any(), "prepare leaves the sampled batch as it was"
