"""DreamerV2/V3 options: KL kinds, categorical latents, cells, return normalisation, slow critic, heads, the V2/V3
stop-gradients and updates, actor-gradient mixing, TorchRL estimators and key contract, and the size presets.

Golden values are computed by hand in the comments; gradients are checked against autograd of the hand formulas
(with their stop-gradients written out), and references come from ``torch.distributions`` and TorchRL. Every model
is ``debug``-sized: the whole file runs in seconds on one CPU core.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import distributions as D
from torch import nn
from torchrl.objectives import ValueEstimators
from torchrl.objectives.value.functional import td_lambda_return_estimate

from dreamer_rl.agent import Dreamer, Learner, build_dreamer
from dreamer_rl.config import Recipe, deep_merge
from dreamer_rl.losses import ActorLoss, ValueLoss, WorldModelLoss
from dreamer_rl.losses.kl import kl_terms
from dreamer_rl.losses.return_norm import PercentileReturnNorm
from dreamer_rl.losses.returns import lambda_return
from dreamer_rl.losses.slow_critic import SlowCritic
from dreamer_rl.nets.cells import BlockGRU, GRUTransition, LayerNormGRUCell, make_transition
from dreamer_rl.nets.heads import ScalarHead
from dreamer_rl.nets.outputs import twohot_bins, twohot_nll
from dreamer_rl.rssm import RSSM
from recipes.presets import apply_presets

LOG_2PI = math.log(2 * math.pi)


def recipe(*names: str, **model: object) -> Recipe:
    """The recipe of the presets ``names`` with ``model`` overrides."""
    return Recipe.model_validate(deep_merge(apply_presets(list(names)), {"model": model} if model else {}))


V2 = recipe("dreamer_v2", "dmc_proprio", "debug")
V3 = recipe("dreamer_v3", "dmc_proprio", "debug")


def make_batch(B: int = 3, T: int = 6, A: int = 2, obs_dim: int = 5, seed: int = 0,
               context: tuple[int, int] | None = None) -> TensorDict:
    """Stored rows ``[B, T]`` with a state-vector observation (as tests/test_losses.py); with ``context = (D, S)``
    also zero stored start states (``train.replay_context``, V3's preset)."""
    g = torch.Generator().manual_seed(seed)
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[:, 0] = True
    rows = TensorDict({"observation": torch.randn(B, T, obs_dim, generator=g),
                       "action": torch.rand(B, T, A, generator=g) * 2 - 1,
                       "reward": torch.randn(B, T, 1, generator=g), "is_init": is_init,
                       "terminated": torch.zeros(B, T, 1, dtype=torch.bool)}, [B, T])
    if context is not None:
        rows["context_deter"] = torch.zeros(B, T, context[0], dtype=torch.float16)
        rows["context_stoch"] = torch.zeros(B, T, context[1], dtype=torch.float16)
    return rows


def context_of(agent: Dreamer) -> tuple[int, int]:
    """``(D, S)`` of ``agent``'s model state, the sizes of its stored replay context."""
    return agent.world_model.rssm.deter, agent.world_model.rssm.stoch


def posterior_states(agent: Dreamer, B: int = 2, T: int = 3, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    rssm = agent.world_model.rssm
    return TensorDict({"posterior": {"deter": torch.randn(B, T, rssm.deter, generator=g),
                                     "stoch": torch.randn(B, T, rssm.stoch, generator=g)}}, [B, T])


def cat_rssm(stoch: int = 2, classes: int = 2, unimix: float = 0.0, **kw: object) -> RSSM:
    return RSSM(2, 3, stoch=stoch, classes=classes, deter=6, hidden=8, latent="categorical", unimix=unimix, **kw)


# ------------------------------------------------------------------------------------------------------ 1. KL kinds


def gaussian_stats(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return torch.cat([mean, std], -1)


def hand_gaussian_kl(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``KL(q || p)`` summed over the latent with torch.distributions, ``[B, T, 2S] -> [B, T]``."""
    return D.kl_divergence(D.Normal(*q.chunk(2, -1)), D.Normal(*p.chunk(2, -1))).sum(-1)


def hand_categorical_kl(S: int, K: int):  # noqa: ANN201
    def kl(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return D.kl_divergence(D.Categorical(logits=q.unflatten(-1, (S, K))),
                               D.Categorical(logits=p.unflatten(-1, (S, K)))).sum(-1)
    return kl


# Gaussian golden, S = 1, std 1 everywhere, prior mean 0, posterior means d = [[1, 2], [0.5, 3]] ([B=2, T=2]):
#   KL = d²/2 = [[0.5, 2], [0.125, 4.5]];   mean 7.125 / 4 = 1.78125 (> F = 1: the clamp of the mean is inactive)
#   per-step clamp at F = 1: [[1, 2], [1, 4.5]], mean 8.5 / 4 = 2.125
GAUSS_D = torch.tensor([[1.0, 2.0], [0.5, 3.0]])[..., None]  # [B, T, 1]


def gaussian_golden_stats() -> tuple[torch.Tensor, torch.Tensor]:
    post = gaussian_stats(GAUSS_D, torch.ones_like(GAUSS_D)).requires_grad_(True)
    prior = gaussian_stats(torch.zeros_like(GAUSS_D), torch.ones_like(GAUSS_D)).requires_grad_(True)
    return post, prior


# Categorical golden, 2 variables x 2 classes, [B=1, T=2]:
#   step 0: both variables q = (1/2, 1/2), p = (1/5, 4/5):
#           KL = 2 [½ ln(½ / ⅕) + ½ ln(½ / ⅘)] = ln 2.5 + ln 0.625 = ln 1.5625 = 0.446287
#   step 1: variable 1 q = p = (1/2, 1/2): 0;  variable 2 q = (0.9, 0.1), p = (0.1, 0.9):
#           0.9 ln 9 + 0.1 ln(1/9) = 0.8 ln 9 = 1.757780
#   mean (1.757780 + 0.446287) / 2 = 1.102033 (> 1);   per-step clamp at 1: (1 + 1.757780) / 2 = 1.378890
CAT_Q = torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.9, 0.1]]]).log()
CAT_P = torch.tensor([[[0.2, 0.8, 0.2, 0.8], [0.5, 0.5, 0.1, 0.9]]]).log()


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_kl_kinds_golden_values(latent: str) -> None:
    if latent == "gaussian":
        post, prior = gaussian_golden_stats()
        kl, mean, per_step = RSSM(2, 3, stoch=1, deter=4, hidden=4).kl, 1.78125, 2.125
    else:
        post, prior = CAT_Q.clone(), CAT_P.clone()
        kl, mean, per_step = cat_rssm().kl, 1.1020334, 1.3788898
    common = dict(free_nats=1.0, kl=kl)
    # balanced, α = 0.8: both terms have the same value, so α·x + (1 - α)·x = x
    terms, raw = kl_terms(post, prior, kind="balanced", balance=0.8, free_avg=True, **common)
    assert set(terms) == {"kl"}
    assert terms["kl"].item() == pytest.approx(mean, abs=1e-6)  # clamp of the mean: inactive
    assert raw.item() == pytest.approx(mean, abs=1e-6) and not raw.requires_grad
    terms, _ = kl_terms(post, prior, kind="balanced", balance=0.8, free_avg=False, **common)
    assert terms["kl"].item() == pytest.approx(per_step, abs=1e-6)  # clamp per step: active
    # dyn_rep: dyn 1.0 · per-step-clamped mean, rep 0.1 · the same
    terms, raw = kl_terms(post, prior, kind="dyn_rep", dyn_scale=1.0, rep_scale=0.1, **common)
    assert set(terms) == {"dyn", "rep"}
    assert terms["dyn"].item() == pytest.approx(per_step, abs=1e-6)
    assert terms["rep"].item() == pytest.approx(0.1 * per_step, abs=1e-6)
    assert raw.item() == pytest.approx(mean, abs=1e-6)
    # V1's free_nats: the clamp of the mean
    terms, _ = kl_terms(post, prior, kind="free_nats", **common)
    assert terms["kl"].item() == pytest.approx(mean, abs=1e-6)


def test_balanced_kl_gradient_golden_gaussian() -> None:
    # L = 0.8 mean(max(KL(sg q, p), 1)) + 0.2 mean(max(KL(q, sg p), 1)), KL = (m_q - m_p)² / 2 with unit stds.
    # dKL/dm_q = d, dKL/dm_p = -d, dKL/ds_q = s_q/s_p² - 1/s_q = 0, dKL/ds_p = 1/s_p - (s_q² + d²)/s_p³ = -d².
    # Per-step clamp: only the steps with KL > 1 (d = 2 and 3) have a gradient, each mean-weighted 1/4:
    #   post mean   0.2/4 · [[0, 2], [0, 3]]   = [[0, 0.1], [0, 0.15]]
    #   prior mean  0.8/4 · [[0, -2], [0, -3]] = [[0, -0.4], [0, -0.6]]
    #   prior std   0.8/4 · [[0, -4], [0, -9]] = [[0, -0.8], [0, -1.8]],   post std 0
    post, prior = gaussian_golden_stats()
    terms, _ = kl_terms(post, prior, kind="balanced", balance=0.8, free_avg=False, free_nats=1.0)
    g_post, g_prior = torch.autograd.grad(terms["kl"], [post, prior])
    torch.testing.assert_close(g_post[..., 0], torch.tensor([[0.0, 0.1], [0.0, 0.15]]))
    torch.testing.assert_close(g_post[..., 1], torch.zeros(2, 2))
    torch.testing.assert_close(g_prior[..., 0], torch.tensor([[0.0, -0.4], [0.0, -0.6]]))
    torch.testing.assert_close(g_prior[..., 1], torch.tensor([[0.0, -0.8], [0.0, -1.8]]))
    # Clamp of the mean (1.78 > 1): every step has a gradient, 0.2/4 · d and 0.8/4 · (-d), 0.8/4 · (-d²)
    post, prior = gaussian_golden_stats()
    terms, _ = kl_terms(post, prior, kind="balanced", balance=0.8, free_avg=True, free_nats=1.0)
    g_post, g_prior = torch.autograd.grad(terms["kl"], [post, prior])
    d = GAUSS_D[..., 0]
    torch.testing.assert_close(g_post[..., 0], 0.05 * d)
    torch.testing.assert_close(g_prior[..., 0], -0.2 * d)
    torch.testing.assert_close(g_prior[..., 1], -0.2 * d.square())


def random_stats(latent: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, object, object]:
    """Random leaf stats ``[B=3, T=4, .]``, the RSSM's ``kl`` and the torch.distributions reference KL."""
    g = torch.Generator().manual_seed(seed)
    if latent == "gaussian":
        S = 3
        post = torch.cat([torch.randn(3, 4, S, generator=g), torch.rand(3, 4, S, generator=g) + 0.3], -1)
        prior = torch.cat([torch.randn(3, 4, S, generator=g), torch.rand(3, 4, S, generator=g) + 0.3], -1)
        return post.requires_grad_(), prior.requires_grad_(), RSSM(2, 3, stoch=S, deter=4, hidden=4).kl, \
            hand_gaussian_kl
    S, K = 3, 4
    post = (2 * torch.randn(3, 4, S * K, generator=g)).requires_grad_()
    prior = (2 * torch.randn(3, 4, S * K, generator=g)).requires_grad_()
    return post, prior, cat_rssm(S, K).kl, hand_categorical_kl(S, K)


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
@pytest.mark.parametrize("free_avg", [True, False])
def test_balanced_kl_splits_gradient_alpha_to_prior_and_one_minus_alpha_to_posterior(latent: str,
                                                                                     free_avg: bool) -> None:
    post, prior, kl, ref = random_stats(latent)
    with torch.no_grad():
        steps = ref(post, prior).flatten()
    free = steps.median().item()  # some steps below the free nats, the mean above them
    assert (steps < free).any() and steps.mean() > free

    def clamped(value: torch.Tensor) -> torch.Tensor:
        return value.mean().clamp(min=free) if free_avg else value.clamp(min=free).mean()

    alpha = 0.8
    terms, _ = kl_terms(post, prior, kind="balanced", balance=alpha, free_avg=free_avg, free_nats=free, kl=kl)
    g_post, g_prior = torch.autograd.grad(terms["kl"], [post, prior])
    # hand formula without stop-gradient: its gradients, split α to the prior and 1 - α to the posterior
    r_post, r_prior = torch.autograd.grad(clamped(ref(post, prior)), [post, prior])
    torch.testing.assert_close(g_prior, alpha * r_prior)
    torch.testing.assert_close(g_post, (1 - alpha) * r_post)
    # the same through the hand formula with its stop-gradients written out
    hand = alpha * clamped(ref(post.detach(), prior)) + (1 - alpha) * clamped(ref(post, prior.detach()))
    torch.testing.assert_close(terms["kl"], hand)
    assert g_prior.abs().sum() > 0 and g_post.abs().sum() > 0


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_dyn_rep_dyn_trains_only_the_prior_and_rep_only_the_posterior(latent: str) -> None:
    post, prior, kl, ref = random_stats(latent, seed=1)
    free = 1.0
    terms, _ = kl_terms(post, prior, kind="dyn_rep", free_nats=free, dyn_scale=1.0, rep_scale=0.1, kl=kl)
    g_post, g_prior = torch.autograd.grad(terms["dyn"], [post, prior], retain_graph=True, allow_unused=True)
    assert g_post is None, "L_dyn = KL(sg(q) || p) must not reach the posterior"
    r_prior, = torch.autograd.grad(ref(post.detach(), prior).clamp(min=free).mean(), [prior])
    torch.testing.assert_close(g_prior, r_prior)
    assert g_prior.abs().sum() > 0
    g_post, g_prior = torch.autograd.grad(terms["rep"], [post, prior], allow_unused=True)
    assert g_prior is None, "L_rep = KL(q || sg(p)) must not reach the prior"
    r_post, = torch.autograd.grad(0.1 * ref(post, prior.detach()).clamp(min=free).mean(), [post])
    torch.testing.assert_close(g_post, r_post)
    assert g_post.abs().sum() > 0


# -------------------------------------------------------------------------------------------- 2. categorical latent


def test_categorical_stats_are_unimix_logits_with_a_probability_floor() -> None:
    torch.manual_seed(0)
    S, K, u = 4, 5, 0.01
    rssm = cat_rssm(S, K, unimix=u)
    with torch.no_grad():
        rssm.prior_out.weight.mul_(200)  # near one-hot softmax: without unimix some probabilities are ~0
    deter = torch.randn(7, rssm.deter)
    stats = rssm.prior(deter)  # [7, S K]
    assert stats.shape == (7, S * K) and rssm.stats_dim == S * K and rssm.stoch == S * K
    raw = rssm.prior_out(rssm.prior_hidden(deter)).unflatten(-1, (S, K))
    probs = stats.unflatten(-1, (S, K)).exp()
    # the stats are log((1 - u) softmax(raw) + u / K): normalised log-probabilities, each >= u / K = 0.002
    torch.testing.assert_close(probs, (1 - u) * raw.softmax(-1) + u / K)
    torch.testing.assert_close(probs.sum(-1), torch.ones(7, S))
    assert probs.min() >= u / K * (1 - 1e-5)
    assert raw.softmax(-1).min() < 1e-4 and probs.min() < 1.1 * u / K  # the floor is what holds them up


def test_categorical_samples_are_onehot_with_straight_through_gradient_and_mode() -> None:
    torch.manual_seed(0)
    S, K = 3, 4
    rssm = cat_rssm(S, K, unimix=0.01)
    stats = torch.randn(5, S * K).log_softmax(-1).requires_grad_()
    noise = torch.rand(5, S, 1)  # one uniform per variable: the class whose CDF interval holds it
    sample = rssm.sample(stats, noise)  # [5, S K]
    per_var = sample.detach().unflatten(-1, (S, K))
    assert set(per_var.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(per_var.sum(-1), torch.ones(5, S))
    cdf = stats.detach().unflatten(-1, (S, K)).softmax(-1).cumsum(-1)  # [5, S, K]
    index = torch.tensor([[next(k for k in range(K) if noise[b, v, 0] < cdf[b, v, k] or k == K - 1)
                           for v in range(S)] for b in range(5)])
    expected = F.one_hot(index, K).float()
    torch.testing.assert_close(per_var, expected)
    # straight-through: d(sample · c)/d stats equals d(softmax(stats) · c)/d stats
    c = torch.randn(5, S * K)
    g_sample, = torch.autograd.grad((sample * c).sum(), [stats])
    probs = stats.unflatten(-1, (S, K)).softmax(-1).flatten(-2)
    g_probs, = torch.autograd.grad((probs * c).sum(), [stats])
    torch.testing.assert_close(g_sample, g_probs)
    assert g_sample.abs().sum() > 0
    # mode: one-hot argmax per variable
    mode = rssm.mode(stats.detach()).unflatten(-1, (S, K))
    torch.testing.assert_close(mode, F.one_hot(stats.detach().unflatten(-1, (S, K)).argmax(-1), K).float())


def test_categorical_sample_frequencies_follow_the_probabilities() -> None:
    torch.manual_seed(0)
    rssm = cat_rssm(1, 4)
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    samples = rssm.sample(p.log().expand(8000, 4))  # noise drawn inside
    torch.testing.assert_close(samples.mean(0), p, atol=0.02, rtol=0)


def test_categorical_kl_equals_torch_categorical_summed_over_variables() -> None:
    S, K = 3, 4
    rssm = cat_rssm(S, K, unimix=0.01)
    g = torch.Generator().manual_seed(0)
    q, p = rssm._stats(torch.randn(2, 5, S * K, generator=g)), rssm._stats(torch.randn(2, 5, S * K, generator=g))
    expected = D.kl_divergence(D.Categorical(logits=q.unflatten(-1, (S, K))),
                               D.Categorical(logits=p.unflatten(-1, (S, K)))).sum(-1)  # [2, 5]
    out = rssm.kl(q, p)
    assert out.shape == (2, 5)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(rssm.kl(q, q), torch.zeros(2, 5))


def test_categorical_observe_shapes_and_onehot_states() -> None:
    torch.manual_seed(0)
    S, K = 4, 3
    rssm = RSSM(2, 5, stoch=S, classes=K, deter=8, hidden=8, latent="categorical", unimix=0.01, cell="block_gru",
                blocks=2, act="silu", norm="rms", prior_layers=2)
    assert rssm.feat_dim == S * K + 8
    is_init = torch.zeros(2, 3, 1, dtype=torch.bool)
    is_init[:, 0] = True
    st = rssm.observe(torch.randn(2, 3, 5), torch.randn(2, 3, 2), is_init)
    assert st.deter.shape == (2, 3, 8) and st.stoch.shape == (2, 3, S * K)
    assert st.post.shape == st.prior.shape == (2, 3, S * K)
    torch.testing.assert_close(st.stoch.detach().unflatten(-1, (S, K)).sum(-1), torch.ones(2, 3, S))


# --------------------------------------------------------------------------------------------------------- 3. cells


def test_layer_norm_gru_cell_one_step_by_hand() -> None:
    torch.manual_seed(0)
    I, Dh, N = 3, 2, 4
    cell = LayerNormGRUCell(I, Dh)
    with torch.no_grad():
        cell.norm.weight.uniform_(0.5, 1.5)
        cell.norm.bias.uniform_(-0.5, 0.5)
    x, h = torch.randn(N, I), torch.randn(N, Dh)
    with torch.no_grad():
        cell.layer.bias.uniform_(-0.5, 0.5)
    z = torch.cat([x, h], -1) @ cell.layer.weight.T + cell.layer.bias  # [N, 3D], the author's Dense keeps its bias
    mu = z.mean(-1, keepdim=True)
    var = (z - mu).square().mean(-1, keepdim=True)  # biased variance, eps 1e-3 (DreamerV2)
    n = (z - mu) / torch.sqrt(var + 1e-3) * cell.norm.weight + cell.norm.bias
    r, c, u = n[:, :Dh], n[:, Dh:2 * Dh], n[:, 2 * Dh:]
    expected = torch.sigmoid(u - 1) * torch.tanh(torch.sigmoid(r) * c) + (1 - torch.sigmoid(u - 1)) * h
    torch.testing.assert_close(cell(x, h), expected)


def test_gru_ln_transition_is_input_layer_then_layer_norm_gru() -> None:
    torch.manual_seed(0)
    tr = make_transition("gru_ln", 5, 2, 4, 6, act="elu", norm="none")
    assert isinstance(tr, GRUTransition) and isinstance(tr.cell, LayerNormGRUCell)
    deter, stoch, action = torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 2)
    x = F.elu(tr.img_in_stoch(stoch) + tr.img_in_action(action))
    torch.testing.assert_close(tr(deter, stoch, tr.action_input(action)), tr.cell(x, deter))


def naive_block_gru(m: BlockGRU, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:
    """Block by block, as ``dreamerv3/rssm.py`` ``_core``: block ``g`` reads ``[h_g, x_h, x_z, x_a]``."""
    G, d = m.blocks, m.deter // m.blocks
    x = torch.cat([m.in_deter(deter), m.in_stoch(stoch), action_in], -1)  # [N, 3H], shared by all blocks
    ys = []
    for g in range(G):
        block = slice(g * d, (g + 1) * d)
        weight = torch.cat([m.hid_block[g], m.hid_shared[:, block]], 0)  # [d + 3H, d]
        ys.append(torch.cat([deter[:, block], x], -1) @ weight)
    y = torch.cat(ys, -1)
    if m.hid_bias is not None:
        y = y + m.hid_bias
    y = m.hid_act(m.hid_norm(y))  # the norm spans all D units, as the author's Norm after the flat BlockLinear
    outs = []
    for g in range(G):
        block = slice(g * d, (g + 1) * d)
        parts = y[:, block] @ m.gates[g] + m.gates_bias[g]  # [N, 3d]
        r, c, u = parts[:, :d], parts[:, d:2 * d], parts[:, 2 * d:]
        u = torch.sigmoid(u - 1)
        outs.append(u * torch.tanh(torch.sigmoid(r) * c) + (1 - u) * deter[:, block])
    return torch.cat(outs, -1)


@pytest.mark.parametrize("norm", ["rms", "none"])
def test_block_gru_equals_a_naive_per_block_loop(norm: str) -> None:
    torch.manual_seed(0)
    m = BlockGRU(5, 2, 8, 3, blocks=4, act="silu", norm=norm)
    with torch.no_grad():
        m.gates_bias.uniform_(-0.5, 0.5)
        if m.hid_bias is not None:
            m.hid_bias.uniform_(-0.5, 0.5)
        for mod in m.modules():
            if isinstance(mod, nn.RMSNorm):
                mod.weight.uniform_(0.5, 1.5)
    deter, stoch, action = torch.randn(6, 8), torch.randn(6, 5), torch.randn(6, 2) * 3
    torch.testing.assert_close(m(deter, stoch, m.action_input(action)), naive_block_gru(m, deter, stoch,
                                                                                         m.action_input(action)))


def test_block_gru_action_input_scales_actions_into_unit_range() -> None:
    torch.manual_seed(0)
    m = BlockGRU(5, 2, 8, 3, blocks=4)
    a = torch.tensor([[3.0, -0.5], [-2.0, 0.25]])
    torch.testing.assert_close(m.action_input(a), m.in_action(torch.tensor([[1.0, -0.5], [-1.0, 0.25]])))


def test_block_gru_mixes_blocks_only_through_the_shared_input() -> None:
    # No norm over D, and the h branch x_h = act(W_0 h) held constant: perturbing block g of h changes block g only.
    torch.manual_seed(0)
    G, Dh = 4, 8
    m = BlockGRU(5, 2, Dh, 3, blocks=G, act="silu", norm="none")
    deter, stoch, act_in = torch.randn(2, Dh), torch.randn(2, 5), m.action_input(torch.randn(2, 2))
    bumped = deter.clone()
    bumped[:, 2:4] += 1.0  # block 1
    out, out_b = m(deter, stoch, act_in), m(bumped, stoch, act_in)
    changed = (out - out_b).abs().amax(0).view(G, -1).amax(-1) > 1e-6
    assert changed.tolist() == [True, True, True, True]  # the shared branch x_h spreads it to every block
    with torch.no_grad():
        m.in_deter[0].weight.zero_()
    out, out_b = m(deter, stoch, act_in), m(bumped, stoch, act_in)
    changed = (out - out_b).abs().amax(0).view(G, -1).amax(-1) > 0
    assert changed.tolist() == [False, True, False, False]


@pytest.mark.parametrize("lead", [(), (2, 3)])
def test_layer_norm_gru_cell_leading_dims(lead: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    cell = LayerNormGRUCell(3, 2)
    x, h = torch.randn(*lead, 3), torch.randn(*lead, 2)
    out = cell(x, h)
    assert out.shape == (*lead, 2)
    torch.testing.assert_close(out.reshape(-1, 2), cell(x.reshape(-1, 3), h.reshape(-1, 2)))


@pytest.mark.parametrize("lead", [(), (2, 3)])
def test_block_gru_leading_dims(lead: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    m = BlockGRU(5, 2, 8, 3, blocks=4)
    deter, stoch, action = torch.randn(*lead, 8), torch.randn(*lead, 5), torch.randn(*lead, 2)
    out = m(deter, stoch, m.action_input(action))
    assert out.shape == (*lead, 8)
    flat = m(deter.reshape(-1, 8), stoch.reshape(-1, 5), m.action_input(action.reshape(-1, 2)))
    torch.testing.assert_close(out.reshape(-1, 8), flat)


def test_block_gru_needs_divisible_deter() -> None:
    with pytest.raises(ValueError, match="divisible"):
        BlockGRU(5, 2, 10, 3, blocks=4)


# ---------------------------------------------------------------------------------------- 4. return normalisation


def test_percentile_return_norm_golden() -> None:
    norm = PercentileReturnNorm(decay=0.01)
    returns = torch.tensor([[-10.0, 0.0], [30.0, 200.0]])  # sorted [-10, 0, 30, 200], n - 1 = 3
    # torch.quantile (linear): P_5 at position 0.05·3 = 0.15 -> -10 + 0.15·10 = -8.5
    #                          P_95 at position 0.95·3 = 2.85 -> 30 + 0.85·170 = 174.5
    # lo = 0.99·0 + 0.01·(-8.5) = -0.085, hi = 0.01·174.5 = 1.745, S = max(1, 1.83) = 1.83
    scale = norm(returns)
    assert norm.lo.item() == pytest.approx(-0.085, abs=1e-6)
    assert norm.hi.item() == pytest.approx(1.745, abs=1e-6)
    assert scale.item() == pytest.approx(1.83, abs=1e-6) and scale.dim() == 0
    # second update: lo = 0.99·(-0.085) - 0.085 = -0.16915, hi = 0.99·1.745 + 1.745 = 3.47255, S = 3.6417
    assert norm(returns).item() == pytest.approx(3.6417, abs=1e-5)
    # update=False reads S without moving the statistics
    assert norm(returns * 100, update=False).item() == pytest.approx(3.6417, abs=1e-5)
    assert norm.hi.item() == pytest.approx(3.47255, abs=1e-5)
    # statistics are checkpointed
    assert set(norm.state_dict()) == {"lo", "hi"}


def test_percentile_return_norm_floors_at_the_limit() -> None:
    norm = PercentileReturnNorm(decay=0.01, limit=1.0)
    # small returns: P_95 - P_5 = 0.285 - 0.015 -> after one update hi - lo = 0.0027 < 1, so S = 1
    assert norm(torch.tensor([0.0, 0.1, 0.2, 0.3])).item() == 1.0
    big = PercentileReturnNorm(decay=1.0, limit=1.0)  # rate 1: the statistics are the batch percentiles
    assert big(torch.tensor([0.0, 0.1, 0.2, 0.3])).item() == 1.0
    assert big(torch.arange(11.0) * 100).item() == pytest.approx(900.0)  # P_95 - P_5 = 950 - 50


# --------------------------------------------------------------------------------------------------- 5. slow critic


def test_slow_critic_hard_copies_only_every_nth_update() -> None:
    torch.manual_seed(0)
    critic = nn.Linear(3, 1)
    slow = SlowCritic(critic, "hard", every=3)
    start = [p.clone() for p in slow.copy.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(start, critic.parameters()))  # starts equal
    with torch.no_grad():
        for p in critic.parameters():
            p.add_(1.0)
    slow.update(), slow.update()
    assert slow.count == 2
    assert all(torch.equal(a, b) for a, b in zip(start, slow.copy.parameters())), "no copy before the 3rd update"
    slow.update()
    assert all(torch.equal(a, b) for a, b in zip(slow.copy.parameters(), critic.parameters()))
    # a copy, not a shared tensor
    with torch.no_grad():
        critic.weight.add_(1.0)
    assert not torch.equal(slow.copy.weight, critic.weight)


def test_slow_critic_ema_blend_is_exact() -> None:
    torch.manual_seed(0)
    critic = nn.Linear(3, 1)
    slow = SlowCritic(critic, "ema", every=1, rate=0.25)
    old = [p.clone() for p in slow.copy.parameters()]
    with torch.no_grad():
        critic.weight.fill_(2.0)
        critic.bias.fill_(-1.0)
    slow.update()
    # θ_slow <- 0.75 θ_slow + 0.25 θ
    torch.testing.assert_close(slow.copy.weight, 0.75 * old[0] + 0.25 * 2.0)
    torch.testing.assert_close(slow.copy.bias, 0.75 * old[1] - 0.25)
    slow.update()
    torch.testing.assert_close(slow.copy.bias, 0.75 * (0.75 * old[1] - 0.25) - 0.25)


def test_slow_critic_gets_no_gradients_and_count_round_trips() -> None:
    torch.manual_seed(0)
    critic = nn.Linear(3, 1)
    slow = SlowCritic(critic, "ema")
    assert all(not p.requires_grad for p in slow.copy.parameters())
    assert {id(p) for p in slow.parameters()}.isdisjoint({id(p) for p in critic.parameters()})
    x = torch.randn(4, 3, requires_grad=True)
    (slow(x).sum() + critic(x).sum()).backward()
    assert all(p.grad is None for p in slow.copy.parameters())
    assert x.grad is not None  # gradients still flow through it to its input
    for _ in range(5):
        slow.update()
    other = SlowCritic(nn.Linear(3, 1), "ema")
    other.load_state_dict(slow.state_dict())
    assert other.count == 5
    assert all(torch.equal(a, b) for a, b in zip(other.copy.parameters(), slow.copy.parameters()))


# --------------------------------------------------------------------------------------------------------- 6. heads


def test_symexp_twohot_head_starts_at_zero_and_its_loss_is_the_twohot_nll() -> None:
    torch.manual_seed(0)
    head = ScalarHead(6, kind="symexp_twohot", units=8, layers=2, bins=255)
    feat = torch.randn(4, 5, 6)
    pred = head(feat)
    assert pred.shape == (4, 5, 1) and torch.equal(pred, torch.zeros(4, 5, 1))  # exactly 0
    target = torch.randn(4, 5, 1) * 50
    # uniform probabilities: -Σ w log(1/255) = ln 255 whatever the two-hot weights
    torch.testing.assert_close(head.loss(feat, target), torch.full((4, 5), math.log(255)))
    with torch.no_grad():
        head.net[-1].bias.normal_()
    torch.testing.assert_close(head.loss(feat, target), twohot_nll(head.net(feat), target[..., 0], twohot_bins(255)))


def test_symexp_twohot_head_three_bins_by_hand() -> None:
    head = ScalarHead(2, kind="symexp_twohot", units=4, layers=1, bins=3)
    B = math.expm1(20.0)  # bins [-B, 0, B] (symexp of linspace(-20, 0, 2), mirrored)
    torch.testing.assert_close(head.bins, torch.tensor([-B, 0.0, B]))
    with torch.no_grad():
        head.net[-1].bias.copy_(torch.tensor([0.0, 0.0, math.log(3.0)]))  # probs [1/5, 1/5, 3/5]
    feat = torch.zeros(2, 2)
    # prediction: -B/5 + 0 + 3B/5 = 0.4 B
    torch.testing.assert_close(head(feat)[:, 0], torch.full((2,), 0.4 * B))
    # target 0: weight 1 on the middle bin -> -ln(1/5) = ln 5;  target B/2: half on 0, half on B ->
    # -(½ ln(1/5) + ½ ln(3/5)) = ln 5 - ½ ln 3
    loss = head.loss(feat, torch.tensor([[0.0], [B / 2]]))
    torch.testing.assert_close(loss, torch.tensor([math.log(5), math.log(5) - 0.5 * math.log(3)]))


def test_gaussian_head_loss_is_unit_variance_nll() -> None:
    torch.manual_seed(0)
    head = ScalarHead(6, kind="gaussian", units=8, layers=2)
    feat, y = torch.randn(3, 4, 6), torch.randn(3, 4, 1)
    mu = head(feat)
    torch.testing.assert_close(head.loss(feat, y), (0.5 * (y - mu).square() + 0.5 * LOG_2PI)[..., 0])
    with torch.no_grad():
        head.net[-1].weight.zero_()
        head.net[-1].bias.fill_(2.0)
    # μ = 2, y = 5: 0.5·9 + 0.5 ln 2π = 5.418939
    assert head.loss(feat[:1, :1], torch.full((1, 1, 1), 5.0)).item() == pytest.approx(4.5 + 0.5 * LOG_2PI)


# --------------------------------------------------------------------------- 7. stop-gradients and the V2/V3 update


def grads_of(module: nn.Module | None) -> list[str]:
    """Names of parameters of ``module`` with a non-zero gradient."""
    if module is None:
        return []
    return [n for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]


def no_grad_at_all(module: nn.Module | None) -> bool:
    return module is None or all(p.grad is None for p in module.parameters())


@pytest.mark.parametrize("algo", ["dreamer_v3", "dreamer_v2"])
def test_v2_v3_losses_train_only_their_own_module(algo: str) -> None:
    torch.manual_seed(0)
    r = recipe(algo, "dmc_proprio", "debug", free_nats=0.0)  # free nats 0: the KL trains prior and posterior
    agent = build_dreamer(r, (5,), 2)
    learner = Learner(agent, r, obs_key="observation")
    wm, actor, value, slow = agent.world_model, agent.actor, agent.value, agent.slow_value
    assert slow is not None and (agent.return_norm is not None) == (algo == "dreamer_v3")
    assert learner.actor_loss.actor_grad == ("reinforce" if algo == "dreamer_v3" else "dynamics")

    losses, states = learner.world_model_loss(make_batch(context=context_of(agent)))
    sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
    expected = {n for n, _ in wm.named_parameters()}
    if algo == "dreamer_v3":  # the two-hot reward head's output layer starts at zero: nothing reaches below it yet
        last = len(wm.reward.net) - 1
        expected -= {n for n, _ in wm.named_parameters() if n.startswith("reward.net.")
                     and not n.startswith(f"reward.net.{last}.")}
        assert len(expected) < len(list(wm.parameters()))
    assert set(grads_of(wm)) == expected, "every world-model parameter gets a gradient"
    assert no_grad_at_all(actor) and no_grad_at_all(value) and no_grad_at_all(slow)
    agent.zero_grad(set_to_none=True)

    actor_losses, imagined = learner.actor_loss(states)
    actor_losses["loss_actor"].backward()
    assert grads_of(actor), "the actor loss must reach the actor"
    assert no_grad_at_all(wm) and no_grad_at_all(value) and no_grad_at_all(slow), (
        "no world-model, critic or slow-critic gradient from the actor loss")
    assert all(p.requires_grad for m in (wm, value) for p in m.parameters()), "held-out params are restored"
    assert not imagined["feat"].requires_grad and not imagined["lambda_return"].requires_grad
    agent.zero_grad(set_to_none=True)

    learner.value_loss(imagined)["loss_value"].backward()
    assert grads_of(value) and no_grad_at_all(wm) and no_grad_at_all(actor) and no_grad_at_all(slow)


def params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_v3_joint_update_moves_everything_and_the_slow_critic_follows_by_ema() -> None:
    torch.manual_seed(0)
    r = recipe("dreamer_v3", "dmc_proprio", "debug", free_nats=0.0)
    agent = build_dreamer(r, (5,), 2)
    learner = Learner(agent, r, obs_key="observation")
    assert learner.joint and r.behavior.slow_critic == "ema" and r.behavior.slow_critic_rate == 0.02
    start = {m: params(getattr(agent, m)) for m in ("world_model", "actor", "value")}
    # LaProp's warm-up makes update 1 a zero step (lr_t = 0, as optax), and the zero-initialised two-hot output
    # layers let gradients reach the layers below them only once they have moved: three updates move everything.
    for step in range(3):
        slow_before = params(agent.slow_value.copy)
        metrics = learner.update(make_batch(seed=step, context=context_of(agent)))
        assert all(torch.isfinite(v).all() for v in metrics.values()), metrics
        assert {"train/loss/dyn", "train/loss/rep", "train/loss/pcont", "train/return_scale"} <= set(metrics)
        critic = params(agent.value)
        slow_after = params(agent.slow_value.copy)
        for name, old in slow_before.items():  # θ_slow <- 0.98 θ_slow + 0.02 θ, with θ after this update
            torch.testing.assert_close(slow_after[name], torch.lerp(old, critic[name], 0.02))
        if step:
            gap_before = sum((slow_before[n] - critic[n]).abs().sum().item() for n in critic)
            gap_after = sum((slow_after[n] - critic[n]).abs().sum().item() for n in critic)
            assert gap_after == pytest.approx(0.98 * gap_before, rel=1e-4) and gap_after > 0
    for part, before in start.items():
        after = params(getattr(agent, part))
        still = [n for n in before if torch.equal(before[n], after[n])]
        assert not still, f"{part}: parameters that never moved: {still}"
    assert agent.slow_value.count == 3


def test_v2_update_moves_everything_and_copies_the_slow_critic_every_100_updates() -> None:
    torch.manual_seed(0)
    r = recipe("dreamer_v2", "dmc_proprio", "debug", free_nats=0.0)
    assert r.behavior.slow_critic == "hard" and r.behavior.slow_critic_every == 100
    agent = build_dreamer(r, (5,), 2)
    learner = Learner(agent, r, obs_key="observation")
    assert not learner.joint
    start = {m: params(getattr(agent, m)) for m in ("world_model", "actor", "value")}
    slow_start = params(agent.slow_value.copy)
    for step in range(2):
        metrics = learner.update(make_batch(seed=step))
        assert all(torch.isfinite(v).all() for v in metrics.values()), metrics
        assert {"train/loss/kl", "train/grad_norm/model", "train/grad_norm/actor"} <= set(metrics)
    for part, before in start.items():
        after = params(getattr(agent, part))
        still = [n for n in before if torch.equal(before[n], after[n])]
        assert not still, f"{part}: parameters that never moved: {still}"
    slow = params(agent.slow_value.copy)
    assert all(torch.equal(slow_start[n], slow[n]) for n in slow), "hard copy only at update 100"
    agent.slow_value.count = 98  # skip ahead: updates 99 and 100
    learner.update(make_batch(seed=2))
    assert all(torch.equal(slow_start[n], p) for n, p in params(agent.slow_value.copy).items())
    learner.update(make_batch(seed=3))
    critic, slow = params(agent.value), params(agent.slow_value.copy)
    assert agent.slow_value.count == 100
    assert all(torch.equal(critic[n], slow[n]) for n in critic), "update 100 copies the critic"


# ------------------------------------------------------------------------------------------------ 8. actor gradients


def actor_loss_for(agent: Dreamer, grad: str, *, mix: float = 0.3, entropy: float = 0.0) -> ActorLoss:
    return ActorLoss(agent.world_model, agent.actor, agent.value, horizon=4, gamma=0.99, actor_grad=grad,
                     grad_mix=mix, entropy=entropy)


def wake_heads(agent: Dreamer) -> None:
    """Random output layers for the reward and critic heads, so imagined returns are not all exactly 0 (V3's
    two-hot heads start at zero). Two-hot logits fall off away from the middle bin, keeping values of order 1
    (the end bins are ±4.85e8)."""
    with torch.no_grad():
        for head in (agent.world_model.reward, agent.value):
            head.net[-1].weight.normal_(0.0, 0.3)
            if head.kind == "symexp_twohot":
                k = torch.arange(head.bins.numel(), dtype=torch.float32)
                head.net[-1].bias.copy_(-(k - head.bins.numel() // 2).abs())
            else:
                head.net[-1].bias.normal_(0.0, 0.3)


def loss_and_grads(loss: ActorLoss, states: TensorDict, seed: int) -> tuple[torch.Tensor, list[torch.Tensor],
                                                                              TensorDict]:
    torch.manual_seed(seed)
    losses, imagined = loss(states)
    grads = torch.autograd.grad(losses["loss_actor"], list(loss.actor.parameters()))
    return losses["loss_actor"].detach(), grads, imagined


@pytest.mark.parametrize("algo", ["dreamer_v3", "dreamer_v2"])
def test_actor_grad_both_is_the_mix_of_dynamics_and_reinforce(algo: str) -> None:
    torch.manual_seed(0)
    agent = build_dreamer(recipe(algo, "dmc_proprio", "debug"), (5,), 2)
    wake_heads(agent)
    states = posterior_states(agent)
    rho, eta = 0.3, 0.01
    dyn, g_dyn, _ = loss_and_grads(actor_loss_for(agent, "dynamics", entropy=eta), states, 7)
    rf, g_rf, _ = loss_and_grads(actor_loss_for(agent, "reinforce", entropy=eta), states, 7)
    both, g_both, _ = loss_and_grads(actor_loss_for(agent, "both", mix=rho, entropy=eta), states, 7)
    assert (dyn - rf).abs() > 1e-3  # the two objectives differ, so the mix is a real test
    torch.testing.assert_close(both, rho * dyn + (1 - rho) * rf)
    for a, b, c in zip(g_both, g_dyn, g_rf):
        torch.testing.assert_close(a, rho * b + (1 - rho) * c, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("grad", ["reinforce", "dynamics"])
def test_actor_entropy_bonus_changes_the_loss_by_minus_eta_weighted_entropy(grad: str) -> None:
    torch.manual_seed(0)
    agent = build_dreamer(V3, (5,), 2)
    wake_heads(agent)
    states = posterior_states(agent)
    eta = 0.05
    base, _, _ = loss_and_grads(actor_loss_for(agent, grad, entropy=0.0), states, 3)
    bonus, _, imagined = loss_and_grads(actor_loss_for(agent, grad, entropy=eta), states, 3)
    with torch.no_grad():
        entropy = agent.actor.dist(imagined["feat"]).entropy()[..., None]  # [H, N, 1]
    expected = -eta * (imagined["weight"] * entropy).mean()
    assert expected.abs() > 1e-3
    torch.testing.assert_close(bonus - base, expected, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------------------- 9. TorchRL value estimators


@pytest.mark.parametrize("value_type, lambda_", [(ValueEstimators.TDLambda, 0.95), (ValueEstimators.TD0, 0.0),
                                                 (ValueEstimators.TD1, 1.0)])
def test_torchrl_value_estimator_gives_our_lambda_return(value_type: ValueEstimators, lambda_: float) -> None:
    torch.manual_seed(0)
    agent = build_dreamer(V2, (5,), 2)  # no continuation head: d_k = γ = 0.99 in both estimators
    assert agent.world_model.pcont is None
    states = posterior_states(agent)
    ours = ActorLoss(agent.world_model, agent.actor, agent.value, horizon=5, gamma=0.99, lambda_=lambda_)
    torch.manual_seed(1)
    expected, expected_imagined = ours(states)
    theirs = ActorLoss(agent.world_model, agent.actor, agent.value, horizon=5, gamma=0.99, lambda_=0.95)
    kw = {"lmbda": 0.95} if value_type == ValueEstimators.TDLambda else {}
    theirs.make_value_estimator(value_type, gamma=0.99, **kw)
    assert theirs._value_estimator is not None
    torch.manual_seed(1)
    got, got_imagined = theirs(states)
    torch.testing.assert_close(got["loss_actor"], expected["loss_actor"])
    torch.testing.assert_close(got_imagined["lambda_return"], expected_imagined["lambda_return"])
    got["loss_actor"].backward()  # differentiable through TorchRL's estimator (dynamics gradient)
    assert grads_of(agent.actor)


def test_lambda_return_equals_torchrl_td_lambda_with_per_step_gamma() -> None:
    g = torch.Generator().manual_seed(0)
    H, N, lam = 6, 4, 0.8
    reward, value = torch.randn(H, N, 1, generator=g), torch.randn(H, N, 1, generator=g)
    discount = torch.rand(H, N, 1, generator=g) * 0.5 + 0.5  # d_k, one per step
    bootstrap = torch.randn(N, 1, generator=g)
    ours = lambda_return(reward, value, discount, bootstrap, lam)  # [H, N, 1]
    # TorchRL: next_state_value_k = v_{k+1} (bootstrap at the end); a gamma tensor shaped like done with
    # rolling_gamma=True ties γ_k to step k: G_k = r_k + γ_k ((1 - λ) v_{k+1} + λ G_{k+1}) = our recursion.
    next_value = torch.cat([value[1:], bootstrap[None]], 0)
    done = torch.zeros(H, N, 1, dtype=torch.bool)
    # time second to last ([N, H, 1], TorchRL's default time_dim=-2) ...
    theirs = td_lambda_return_estimate(discount.transpose(0, 1), lam, next_value.transpose(0, 1),
                                       reward.transpose(0, 1), done.transpose(0, 1), rolling_gamma=True)
    torch.testing.assert_close(theirs.transpose(0, 1), ours)
    # ... or time first with time_dim=0
    theirs0 = td_lambda_return_estimate(discount, lam, next_value, reward, done, rolling_gamma=True, time_dim=0)
    torch.testing.assert_close(theirs0, ours)
    # the hand recursion, last step first
    G = bootstrap
    for k in reversed(range(H)):
        G = reward[k] + discount[k] * ((1 - lam) * next_value[k] + lam * G)
        torch.testing.assert_close(ours[k], G)


# ------------------------------------------------------------------------------------------ 10. TorchRL key contract


def test_losses_declare_in_and_out_keys_and_set_keys_remaps() -> None:
    torch.manual_seed(0)
    agent = build_dreamer(V3, (5,), 2)
    learner = Learner(agent, V3, obs_key="observation")
    wm_loss, actor_loss, value_loss = learner.world_model_loss, learner.actor_loss, learner.value_loss
    assert wm_loss.in_keys == ["observation", "action", "reward", "is_init", "context_deter", "context_stoch",
                               "terminated"]
    assert wm_loss.out_keys == ["loss_image", "loss_reward", "loss_dyn", "loss_rep", "loss_pcont", "kl"]
    ctx = context_of(agent)
    losses, states = wm_loss(make_batch(context=ctx))
    assert set(losses.keys()) == set(wm_loss.out_keys)
    assert actor_loss.in_keys == [("posterior", "deter"), ("posterior", "stoch")]
    actor_losses, imagined = actor_loss(states)
    assert set(actor_losses.keys()) == set(actor_loss.out_keys) == {"loss_actor", "actor_entropy", "return_scale"}
    assert value_loss.in_keys == ["feat", "lambda_return", "weight"]
    assert set(value_loss(imagined).keys()) == set(value_loss.out_keys) == {"loss_value"}
    # V2 (no continuation head, balanced KL)
    v2 = WorldModelLoss(build_dreamer(V2, (5,), 2).world_model, kl_kind="balanced")
    assert v2.in_keys == ["pixels", "action", "reward", "is_init"]
    assert v2.out_keys == ["loss_image", "loss_reward", "loss_kl", "kl"]
    # set_keys remaps what is read
    wm_loss.set_keys(observation="obs")
    assert wm_loss.in_keys[0] == "obs" and "observation" not in wm_loss.in_keys
    batch = make_batch(context=ctx)
    batch.rename_key_("observation", "obs")
    torch.manual_seed(0)
    renamed, _ = wm_loss(batch)
    torch.manual_seed(0)
    wm_loss.set_keys(observation="observation")
    original, _ = wm_loss(make_batch(context=ctx))
    torch.testing.assert_close(renamed["loss_image"], original["loss_image"])


@pytest.mark.parametrize("key", ["observation", "reward"])
def test_world_model_loss_refuses_the_transition_layout(key: str) -> None:
    torch.manual_seed(0)
    loss = WorldModelLoss(build_dreamer(V3, (5,), 2).world_model, kl_kind="dyn_rep")
    loss.set_keys(observation="observation")
    batch = make_batch()
    batch["next"] = TensorDict({key: batch[key].clone()}, batch.batch_size)
    with pytest.raises(ValueError, match="StepRowWriter"):
        loss(batch)
    batch["next"] = TensorDict({"done": torch.zeros(3, 6, 1, dtype=torch.bool)}, batch.batch_size)
    loss(batch)  # other "next" entries are fine


@pytest.mark.parametrize("algo", ["dreamer_v3", "dreamer_v1"])
def test_float_pixels_give_the_same_loss_as_the_uint8_pixels(algo: str) -> None:
    torch.manual_seed(0)
    r = recipe(algo, "dmc_vision", "debug")
    wm = build_dreamer(r, (3, 64, 64), 2).world_model
    loss = WorldModelLoss(wm, kl_kind=r.model.kl, free_nats=r.model.free_nats)
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (2, 3, 3, 64, 64), generator=g, dtype=torch.uint8)
    is_init = torch.zeros(2, 3, 1, dtype=torch.bool)
    is_init[:, 0] = True
    rest = {"action": torch.rand(2, 3, 2, generator=g) * 2 - 1, "reward": torch.randn(2, 3, 1, generator=g),
            "is_init": is_init, "terminated": torch.zeros(2, 3, 1, dtype=torch.bool)}
    torch.manual_seed(5)
    from_uint8, _ = loss(TensorDict({"pixels": pixels, **rest}, [2, 3]))
    torch.manual_seed(5)
    from_float, _ = loss(TensorDict({"pixels": pixels.float() / 255, **rest}, [2, 3]))
    assert set(from_uint8.keys()) == set(from_float.keys())
    for k in from_uint8.keys():
        torch.testing.assert_close(from_float[k], from_uint8[k], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- 11. size presets

V3_SIZES = {  # deter, hidden, classes, cnn_depth, units (dreamerv3 configs.yaml)
    "size1m": (512, 64, 4, 4, 64), "size12m": (2048, 256, 16, 16, 256), "size25m": (3072, 384, 24, 24, 384),
    "size50m": (4096, 512, 32, 32, 512), "size100m": (6144, 768, 48, 48, 768),
    "size200m": (8192, 1024, 64, 64, 1024), "size400m": (12288, 1536, 96, 96, 1536),
}


@pytest.mark.parametrize("name", list(V3_SIZES))
def test_v3_size_presets_follow_the_author_table(name: str) -> None:
    m = recipe("dreamer_v3", name).model
    assert (m.deter, m.hidden, m.classes, m.cnn_depth, m.units) == V3_SIZES[name]
    assert m.stoch == 32 and m.deter % m.blocks == 0


@pytest.mark.parametrize("name", ["size1m", "size12m"])
def test_v3_size_rssm_feat_dim_and_one_observe_step(name: str) -> None:
    torch.manual_seed(0)
    m = recipe("dreamer_v3", name).model
    rssm = RSSM(2, 16, stoch=m.stoch, deter=m.deter, hidden=m.hidden, act=m.act, latent=m.latent, cell=m.cell,
                classes=m.classes, unimix=m.unimix, norm=m.norm, prior_layers=m.prior_layers, blocks=m.blocks)
    assert rssm.feat_dim == 32 * m.classes + m.deter
    with torch.no_grad():
        st = rssm.observe(torch.randn(1, 1, 16), torch.randn(1, 1, 2), torch.ones(1, 1, 1, dtype=torch.bool))
    assert st.deter.shape == (1, 1, m.deter)
    assert st.stoch.shape == st.post.shape == st.prior.shape == (1, 1, 32 * m.classes)
    assert rssm.feat(st.stoch, st.deter).shape == (1, 1, rssm.feat_dim)


def test_domain_presets_pick_the_algorithm_settings() -> None:
    proprio = recipe("dreamer_v3", "dmc_proprio")
    assert (proprio.model.deter, proprio.model.hidden, proprio.model.classes, proprio.model.units) == (512, 64, 4, 64)
    # the authors' current DMC setup: action repeat 1, train ratio 1024 = one update per frame (vision: 256 -> 0.25)
    assert proprio.train.train_ratio == 1.0 and proprio.env.action_repeat == 1 and not proprio.env.from_pixels
    v3_vision = recipe("dreamer_v3", "dmc_vision")
    assert v3_vision.train.train_ratio == 0.25 and v3_vision.env.action_repeat == 1 and v3_vision.env.from_pixels
    vision = recipe("dreamer_v2", "dmc_vision")
    assert vision.model.deter == 200 and vision.model.hidden == 200 and vision.env.from_pixels
    assert recipe("dreamer_v3").model.deter == 2048  # V3 without a size: size12m


def test_replay_value_loss_golden() -> None:
    """DreamerV3 repval on one sequence of 3 replayed states, targets by hand.

    γ = 0.5, λ = 0.5, r = [_, 1, 2], terminated = [F, F, F], bootstrap b = [10, 20, 30]:
      R_2 = b_2 = 30 (not trained on: the last state only bootstraps)
      R_1 = r_2 + γ((1-λ) b_2 + λ R_2) = 2 + 0.5 (15 + 15) = 17
      R_0 = r_1 + γ((1-λ) b_1 + λ R_1) = 1 + 0.5 (10 + 8.5) = 10.25
    With a Gaussian critic predicting v: loss = scale · mean_t [½ (R_t - v_t)² + ½ log 2π] over t = 0, 1.
    A termination at t = 2 cuts the bootstrap: R_1 = 2 + 0 = 2.
    """
    import math

    from tensordict import TensorDict

    from dreamer_rl.losses.value import ReplayValueLoss
    from dreamer_rl.nets.heads import ScalarHead

    head = ScalarHead(2, kind="gaussian", units=4, layers=1)
    feat = torch.randn(1, 3, 2)
    with torch.no_grad():
        v = head(feat)[0, :2, 0]
    td = TensorDict({"feat": feat, "reward": torch.tensor([[[0.0], [1.0], [2.0]]]),
                     "terminated": torch.zeros(1, 3, 1, dtype=torch.bool),
                     "bootstrap": torch.tensor([[[10.0], [20.0], [30.0]]])}, [1, 3])
    loss = ReplayValueLoss(head, gamma=0.5, lambda_=0.5, scale=0.3)
    targets = torch.tensor([10.25, 17.0])
    expected = 0.3 * (0.5 * (targets - v).square() + 0.5 * math.log(2 * math.pi)).mean()
    torch.testing.assert_close(loss(td)["loss_repval"], expected)
    td["terminated"][0, 2] = True
    targets = torch.tensor([1 + 0.5 * (10 + 0.5 * 2.0), 2.0])
    expected = 0.3 * (0.5 * (targets - v).square() + 0.5 * math.log(2 * math.pi)).mean()
    torch.testing.assert_close(loss(td)["loss_repval"], expected)
    loss(td)["loss_repval"].backward()
    assert all(p.grad is not None for p in head.parameters())
    assert not feat.requires_grad


@pytest.mark.parametrize("actor_grad", ["reinforce", "dynamics", "both"])
def test_minimising_the_actor_loss_raises_the_imagined_return(actor_grad: str) -> None:
    """Policy improvement, not just a gradient: with a reward read off the imagined deterministic state, SGD on the
    actor loss raises the mean λ-return of fresh imagined rollouts (common random numbers before and after)."""
    from dreamer_rl.losses import ActorLoss

    torch.manual_seed(0)
    recipe = Recipe.model_validate(apply_presets(["dreamer_v3", "dmc_proprio", "debug"]))
    agent = build_dreamer(recipe, (5,), 1)
    wm = agent.world_model

    class DeterReward(torch.nn.Module):
        def forward(self, feat: torch.Tensor) -> torch.Tensor:
            return 10 * feat[..., -wm.rssm.deter:].mean(-1, keepdim=True)

    wm.reward = DeterReward()
    n = 1024
    states = TensorDict({("posterior", "deter"): torch.zeros(n, wm.rssm.deter),
                         ("posterior", "stoch"): torch.zeros(n, wm.rssm.stoch)}, [n])

    def imagined_return() -> float:
        total = 0.0
        for seed in range(3):
            torch.manual_seed(seed)
            with torch.no_grad():
                _, imagined = ActorLoss(wm, agent.actor, agent.value, horizon=5, gamma=0.9)(states)
            total += float(imagined["lambda_return"][0].mean())
        return total / 3

    before = imagined_return()
    loss = ActorLoss(wm, agent.actor, agent.value, horizon=5, gamma=0.9, actor_grad=actor_grad, grad_mix=0.5)
    opt = torch.optim.Adam(agent.actor.parameters(), lr=3e-3)  # step size independent of V3's 0.01 output scale
    for step in range(20):
        torch.manual_seed(100 + step)
        opt.zero_grad()
        loss(states)[0]["loss_actor"].backward()
        opt.step()
    after = imagined_return()
    assert after > before + 0.01, (before, after)
