"""Output helpers (symlog, two-hot, unimix, straight-through one-hot, KL) and the actor heads: golden values by hand,
agreement with torch.distributions / TorchRL, gradients and stop-gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn
from torch.overrides import TorchFunctionMode

from dreamer_rl.nets import MLP, make_actor
from dreamer_rl.nets.norm_act import RMSNormSiLU
from dreamer_rl.nets.actors import (
    BoundedNormalActor,
    OneHotActor,
    TanhNormal,
    TanhNormalActor,
    TruncNormal,
    TruncNormalActor,
)
from dreamer_rl.nets.outputs import (
    SMALL_K,
    bernoulli_nll,
    categorical_kl,
    log_softmax,
    onehot_st_sample,
    softmax,
    symexp,
    symlog,
    twohot_bins,
    twohot_encode,
    twohot_mean,
    twohot_nll,
    unimix_logits,
)

E = math.e

# ---------------------------------------------------------------------------------------------------- symlog / symexp


def test_symlog_symexp_golden_values_sign_and_round_trip() -> None:
    # symlog(±(e - 1)) = ±log(e) = ±1, symlog(e² - 1) = 2, symlog(0) = 0
    x = torch.tensor([-(E - 1), 0.0, E - 1, E**2 - 1])
    torch.testing.assert_close(symlog(x), torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    # symexp(1) = e - 1, symexp(-2) = -(e² - 1)
    torch.testing.assert_close(symexp(torch.tensor([1.0, -2.0, 0.0])), torch.tensor([E - 1, -(E**2 - 1), 0.0]))
    y = torch.cat([-torch.logspace(-3, 6, 50), torch.logspace(-3, 6, 50)])  # both signs, 1e-3 .. 1e6
    assert torch.equal(torch.sign(symlog(y)), torch.sign(y))
    torch.testing.assert_close(symexp(symlog(y)), y, rtol=1e-5, atol=0)
    torch.testing.assert_close(symlog(symexp(torch.linspace(-15, 15, 61))), torch.linspace(-15, 15, 61))


# ------------------------------------------------------------------------------------------------------------ two-hot


def test_twohot_bins_follow_the_author_construction() -> None:
    bins = twohot_bins(255)
    # odd: half = symexp(linspace(-20, 0, 128)), bins = [half, -reverse(half[:-1])] -> 128 + 127 = 255
    assert bins.shape == (255,) and bins.dtype == torch.float32
    assert bins[127].item() == 0.0  # exact zero in the middle
    assert torch.equal(bins, -bins.flip(0))  # exactly symmetric
    assert bool((bins[1:] > bins[:-1]).all())
    assert bins[0].item() == -485165184.0  # float32(-(e^20 - 1)) = -4.85165195e8 rounded to float32
    # step 20 / 127 on the grid: bins[126] = symexp(-20/127) = -(e^0.15748 - 1) = -0.170567
    torch.testing.assert_close(bins[126], torch.tensor(-math.expm1(20 / 127)))
    # 5 bins, limit 2: half = symexp([-2, -1, 0]) = [-(e² - 1), -(e - 1), 0] = [-6.38906, -1.71828, 0]
    torch.testing.assert_close(twohot_bins(5, limit=2.0), torch.tensor([-(E**2 - 1), -(E - 1), 0.0, E - 1, E**2 - 1]))
    # even: half = symexp(linspace(-20, 0, 3)) = symexp([-20, -10, 0]), bins = [half, -reverse(half)]: 0 twice
    s10, s20 = math.expm1(10.0), math.expm1(20.0)
    torch.testing.assert_close(twohot_bins(6), torch.tensor([-s20, -s10, 0.0, 0.0, s10, s20]))


def test_twohot_encode_between_on_and_outside_bins() -> None:
    bins = torch.tensor([-1.0, 0.0, 1.0, 3.0])
    x = torch.tensor([0.25, 2.0, 0.0, 3.0, 5.0, -7.0, -0.5])
    expected = torch.tensor([
        [0.0, 0.75, 0.25, 0.0],  # 0.25 between 0 and 1: 1 - 0.25 = 0.75 on 0, 0.25 on 1
        [0.0, 0.0, 0.5, 0.5],    # 2 halfway between 1 and 3
        [0.0, 1.0, 0.0, 0.0],    # exactly on bin 0
        [0.0, 0.0, 0.0, 1.0],    # exactly on the last bin (below == above after the clip)
        [0.0, 0.0, 0.0, 1.0],    # above the last bin: all on it
        [1.0, 0.0, 0.0, 0.0],    # below the first bin: all on it
        [0.5, 0.5, 0.0, 0.0],    # -0.5 halfway between -1 and 0
    ])
    torch.testing.assert_close(twohot_encode(x, bins), expected)
    # any leading shape
    assert twohot_encode(torch.zeros(2, 3, 5), bins).shape == (2, 3, 5, 4)


def test_twohot_encode_even_bins_put_zero_on_the_upper_middle_bin() -> None:
    # bins [-s20, 0, 0, s20]: as the author's count, 0 has below = 2 (the second zero), above = 3 -> weight 1 on 2;
    # a small negative value interpolates between bins 0 and 1 (the first zero)
    bins = twohot_bins(4)
    enc = twohot_encode(torch.tensor([0.0, -1.0]), bins)
    torch.testing.assert_close(enc[0], torch.tensor([0.0, 0.0, 1.0, 0.0]))
    assert enc[1, 1] > 0.999 and enc[1, 2] == 0 and enc[1, 3] == 0


def test_twohot_decode_of_encoded_value_gives_it_back() -> None:
    bins = twohot_bins(255)
    x = torch.tensor([0.0, 0.3, -17.5, 1234.5, -1e6, 0.001])
    logits = twohot_encode(x, bins).log()  # log 0 = -inf: those bins get probability 0
    torch.testing.assert_close(twohot_mean(logits, bins), x, rtol=1e-5, atol=1e-6)


def test_twohot_mean_is_exactly_zero_for_uniform_logits_and_the_expectation_otherwise() -> None:
    # uniform probabilities on symmetric bins: the mirrored pairs cancel exactly (the author's reason for the
    # symmetric sum), for odd and even counts
    for num in (255, 256):
        bins = twohot_bins(num)
        assert twohot_mean(torch.zeros(4, num), bins).abs().max().item() == 0.0
    torch.manual_seed(0)
    bins = torch.sort(torch.randn(7) * 3).values  # asymmetric bins: the same sum in another order
    logits = torch.randn(5, 3, 7)
    torch.testing.assert_close(twohot_mean(logits, bins), (logits.softmax(-1) * bins).sum(-1))


def test_twohot_nll_three_bin_hand_value_and_target_stop_gradient() -> None:
    # bins [-1, 0, 1], logits [0, ln 2, 0] -> softmax [1/4, 1/2, 1/4]; target 0.5 -> twohot [0, 1/2, 1/2]
    # nll = -(1/2 ln 1/2 + 1/2 ln 1/4) = 1/2 ln 2 + ln 2 = 1.5 ln 2 = 1.0397208
    bins = torch.tensor([-1.0, 0.0, 1.0])
    logits = torch.tensor([0.0, math.log(2.0), 0.0], requires_grad=True)
    target = torch.tensor(0.5, requires_grad=True)
    nll = twohot_nll(logits, target, bins)
    torch.testing.assert_close(nll, torch.tensor(1.5 * math.log(2.0)))
    nll.backward()
    assert target.grad is None  # the target is a constant of the loss
    # d nll / d logits = softmax - twohot = [1/4, 0, -1/4]
    torch.testing.assert_close(logits.grad, torch.tensor([0.25, 0.0, -0.25]))


# ------------------------------------------------------------------------------------ unimix, one-hot, KL, Bernoulli


@pytest.mark.parametrize("classes", [2, 4, SMALL_K, 16])
def test_softmax_helpers_match_torch_in_values_and_gradients(classes: int) -> None:
    """The composite path (K <= SMALL_K on a CPU) and the built-in one give torch's values and gradients, also for
    logits far outside exp's range (the stopped max only shifts them)."""
    torch.manual_seed(0)
    for scale in (1.0, 200.0):
        logits = (scale * torch.randn(64, 32, classes, dtype=torch.float64)).requires_grad_()
        mine = torch.autograd.grad((softmax(logits) * torch.arange(classes)).sum(), logits)[0]
        ref = torch.autograd.grad((torch.softmax(logits, -1) * torch.arange(classes)).sum(), logits)[0]
        torch.testing.assert_close(softmax(logits), torch.softmax(logits, -1))
        torch.testing.assert_close(mine, ref)
        mine = torch.autograd.grad((log_softmax(logits) * torch.arange(classes)).sum(), logits)[0]
        ref = torch.autograd.grad((torch.log_softmax(logits, -1) * torch.arange(classes)).sum(), logits)[0]
        torch.testing.assert_close(log_softmax(logits), torch.log_softmax(logits, -1))
        torch.testing.assert_close(mine, ref)
        assert torch.isfinite(log_softmax(logits)).all()


def test_unimix_two_class_hand_values_and_identity_at_zero() -> None:
    # logits [0, ln 3] -> probs [1/4, 3/4]; u = 0.1: 0.9 * [1/4, 3/4] + 0.1 / 2 = [0.275, 0.725]
    logits = torch.tensor([0.0, math.log(3.0)])
    torch.testing.assert_close(unimix_logits(logits, 0.1), torch.tensor([math.log(0.275), math.log(0.725)]))
    assert unimix_logits(logits, 0.0) is logits
    # u = 1: uniform whatever the logits
    torch.testing.assert_close(unimix_logits(torch.tensor([5.0, -3.0]), 1.0).exp(), torch.tensor([0.5, 0.5]))


def test_straight_through_sample_is_onehot_forward_and_probs_backward() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 32, 16, requires_grad=True)  # [B, T, variables, classes]
    sample = onehot_st_sample(logits)
    assert sample.shape == (2, 3, 32, 16)
    assert bool(((sample == 0) | (sample == 1)).all()) and bool((sample.sum(-1) == 1).all())  # exactly one-hot
    w = torch.randn(2, 3, 32, 16)
    (grad_st,) = torch.autograd.grad((w * sample).sum(), logits)
    (grad_probs,) = torch.autograd.grad((w * logits.softmax(-1)).sum(), logits)
    torch.testing.assert_close(grad_st, grad_probs)


def test_straight_through_sample_frequencies_follow_the_probabilities() -> None:
    torch.manual_seed(1)
    probs = torch.tensor([0.1, 0.6, 0.3])
    samples = onehot_st_sample(probs.log().expand(40000, 3))
    # binomial std of a frequency over 40000 draws <= 0.0025: 0.01 is 4 std
    torch.testing.assert_close(samples.mean(0), probs, atol=0.01, rtol=0)


def test_categorical_kl_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    q, p = torch.randn(4, 5, 32, 16) * 2, torch.randn(4, 5, 32, 16) * 2
    ref = D.kl_divergence(D.Independent(D.Categorical(logits=q), 1), D.Independent(D.Categorical(logits=p), 1))
    kl = categorical_kl(q, p)
    assert kl.shape == (4, 5)
    torch.testing.assert_close(kl, ref)
    assert categorical_kl(q, q).abs().max() < 1e-5


def test_bernoulli_nll_hand_values() -> None:
    # logit 0: p = 1/2, -log 1/2 = ln 2 for either target; logit ln 3: p = 3/4,
    # target 1 -> -ln 3/4 = ln 4/3, target 0 -> -ln 1/4 = ln 4; soft target 1/2 at logit 0 -> ln 2
    logits = torch.tensor([0.0, 0.0, math.log(3.0), math.log(3.0), 0.0])
    target = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.5])
    expected = torch.tensor([math.log(2), math.log(2), math.log(4 / 3), math.log(4), math.log(2)])
    torch.testing.assert_close(bernoulli_nll(logits, target), expected)
    torch.testing.assert_close(bernoulli_nll(logits, target.bool().float()), bernoulli_nll(logits, target.round()))


class _SyncSpy(TorchFunctionMode):
    """Records the tensor calls that copy a value to the host (a sync on a GPU), as the eager code runs."""

    SYNCS = {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "nonzero", "masked_select",
             "unique"}

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", str(func))
        index = args[1] if name == "__getitem__" and len(args) > 1 else None
        if name in self.SYNCS or (isinstance(index, torch.Tensor) and index.dtype == torch.bool):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def _no_host_value_backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):  # type: ignore[no-untyped-def]
    """A ``torch.compile`` backend that refuses graphs reading tensor values on the host (``.item()``,
    data-dependent shapes), then runs the graph eagerly."""
    for node in gm.graph.nodes:
        name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        bad = name in ("item", "tolist", "nonzero") or any(b in str(node.target) for b in ("scalar", "sym_size"))
        assert not bad, f"host read in the graph: {node.format_node()}"
    return gm.forward


def _world_model_step(logits: torch.Tensor, reward_logits: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    bins = twohot_bins(255, device=logits.device)
    stoch = onehot_st_sample(unimix_logits(logits, 0.01))  # [B, T, 32, 16]
    kl = categorical_kl(logits, logits.detach().flip(-1))
    nll = twohot_nll(reward_logits, symlog(reward), bins) + bernoulli_nll(reward, (reward > 0).float())
    return stoch.sum() + kl.sum() + nll.sum() + twohot_mean(reward_logits, bins).sum()


def test_helpers_read_no_tensor_values_on_the_host() -> None:
    args = torch.randn(2, 3, 32, 16), torch.randn(2, 3, 255), torch.randn(2, 3) * 100
    with _SyncSpy() as spy:
        _world_model_step(*args)
    assert spy.seen == []
    # the same as one captured graph: fullgraph fails on data-dependent Python, the backend on scalar reads
    out = torch.compile(_world_model_step, backend=_no_host_value_backend, fullgraph=True)(*args)
    assert torch.isfinite(out)


@pytest.mark.parametrize("kind", ["tanh_normal", "trunc_normal", "bounded_normal", "onehot"])
def test_actors_read_no_tensor_values_on_the_host(kind: str) -> None:
    actor = _actor(kind, **({"unimix": 0.01} if kind == "onehot" else {}))
    feat = torch.randn(4, 5, FEAT)
    with _SyncSpy() as spy:
        dist = actor.dist(feat)
        action = dist.rsample()
        dist.sample(), dist.log_prob(action), dist.entropy(), dist.mode, actor(feat), actor(feat, sample=False)
    assert spy.seen == []


def test_the_sync_spy_sees_torchrl_truncated_normal() -> None:
    # the reason TruncNormal is our own: TorchRL's checks its bounds with .tolist() when built
    from torchrl.modules.distributions import TruncatedNormal

    with _SyncSpy() as spy:
        TruncatedNormal(torch.zeros(3), torch.ones(3))
    assert "tolist" in spy.seen


# -------------------------------------------------------------------------------------------------------------- actors

KINDS = ["tanh_normal", "trunc_normal", "bounded_normal", "onehot"]
FEAT, ACT = 12, 3


def _actor(kind: str, **kw: object) -> nn.Module:
    torch.manual_seed(0)
    return make_actor(kind, FEAT, ACT, units=16, layers=2, **kw)  # type: ignore[arg-type]


def _set_outputs(actor: nn.Module, bias: torch.Tensor) -> None:
    """Zero the last layer's weights and set its bias: the raw outputs become ``bias`` for every feature."""
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.copy_(bias)


@pytest.mark.parametrize("kind", KINDS)
def test_actor_shapes_range_entropy_and_gradients(kind: str) -> None:
    actor = _actor(kind)
    feat = torch.randn(4, 5, FEAT, requires_grad=True)
    action = actor(feat)
    assert action.shape == (4, 5, ACT)
    if kind != "bounded_normal":  # DreamerV3's sample is unbounded: the env side clips it
        assert bool((action.abs() <= 1).all())
    if kind == "onehot":
        assert bool((action.sum(-1) == 1).all()) and bool(((action == 0) | (action == 1)).all())
    mode = actor(feat, sample=False)
    assert mode.shape == (4, 5, ACT) and bool((mode.abs() <= 1).all())
    assert torch.equal(mode, actor(feat, sample=False))  # deterministic
    dist = actor.dist(feat)
    sample = dist.sample()
    assert sample.shape == (4, 5, ACT) and not sample.requires_grad
    assert dist.sample((7,)).shape == (7, 4, 5, ACT)
    logp, ent = dist.log_prob(action), dist.entropy()
    assert logp.shape == (4, 5) and ent.shape == (4, 5)
    assert bool(torch.isfinite(logp).all()) and bool(torch.isfinite(ent).all())
    # rsample is differentiable: gradients reach every layer of the actor and the features (reparameterised
    # families; straight-through for one-hot)
    weight = torch.randn(ACT)
    (dist.rsample() * weight).sum().backward()
    for name, param in actor.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert feat.grad is not None and feat.grad.abs().sum() > 0


def test_tanh_normal_log_prob_matches_torch_transformed_distribution() -> None:
    actor = _actor("tanh_normal")
    feat = torch.randn(6, FEAT)
    mean, std = actor.params(feat)
    ref = D.Independent(D.TransformedDistribution(D.Normal(mean, std), [D.TanhTransform()]), 1)
    action = torch.rand(6, ACT) * 1.8 - 0.9
    torch.testing.assert_close(actor.dist(feat).log_prob(action), ref.log_prob(action), rtol=1e-5, atol=1e-5)
    # a saturated action (float32 tanh gives exactly 1 beyond |x| ~ 9) keeps a finite log-probability
    assert torch.isfinite(actor.dist(feat).log_prob(torch.ones(6, ACT))).all()


def test_tanh_normal_entropy_estimate_agrees_with_monte_carlo_of_log_prob() -> None:
    torch.manual_seed(0)
    loc, scale = torch.tensor([[0.0, 1.0, -2.0]]), torch.tensor([[0.5, 1.0, 2.0]])
    dist = TanhNormal(loc, scale, entropy_samples=20000)
    samples = dist.sample((20000,))
    reference = -dist.log_prob(samples).mean(0)  # H = -E[log p(y)], an independent estimate
    torch.testing.assert_close(dist.entropy(), reference, atol=0.05, rtol=0)
    # the Gaussian part is exact: with a tiny scale the tanh is linear, H ≈ Σ 0.5 log(2πe σ²) at loc 0
    tiny = TanhNormal(torch.zeros(1, 2), torch.full((1, 2), 1e-3))
    torch.testing.assert_close(tiny.entropy(), torch.tensor([2 * 0.5 * math.log(2 * math.pi * E * 1e-6)]),
                               atol=1e-3, rtol=0)


def test_trunc_normal_std_formula_and_mode() -> None:
    actor = _actor("trunc_normal")
    # raw mean [0, 1, -2], raw std [0, 2, -4]: mean tanh -> [0, 0.761594, -0.964028];
    # std = 2 sigmoid(s / 2) + 0.1 -> [2 * 0.5 + 0.1, 2 * 0.731059 + 0.1, 2 * 0.119203 + 0.1] = [1.1, 1.562117, 0.338406]
    _set_outputs(actor, torch.tensor([0.0, 1.0, -2.0, 0.0, 2.0, -4.0]))
    mean, std = actor.params(torch.randn(2, FEAT))
    torch.testing.assert_close(mean[0], torch.tensor([0.0, 0.761594, -0.964028]))
    torch.testing.assert_close(std[0], torch.tensor([1.1, 1.562117, 0.338406]))
    torch.testing.assert_close(actor(torch.randn(2, FEAT), sample=False)[0], torch.tensor([0.0, 0.761594, -0.964028]))


def test_trunc_normal_log_prob_and_entropy_golden_and_against_torchrl() -> None:
    # N(0, 1) on [-1, 1]: Z = 2Φ(1) - 1 = 0.682689; log p(0) = -0.5 ln 2π - ln Z = -0.918939 + 0.381715 = -0.537224
    # H = 0.5 ln(2πe) + ln Z + (α φ(α) - β φ(β)) / 2Z, α = -1, β = 1, φ(1) = 0.241971
    #   = 1.418939 - 0.381715 - 2 * 0.241971 / (2 * 0.682689) = 0.682786
    d = TruncNormal(torch.zeros(1, 1), torch.ones(1, 1))
    torch.testing.assert_close(d.log_prob(torch.zeros(1, 1)), torch.tensor([-0.537224]))
    torch.testing.assert_close(d.entropy(), torch.tensor([0.682786]))
    assert d.log_prob(torch.full((1, 1), 1.5)).item() == -math.inf  # outside the support
    from torchrl.modules.distributions import TruncatedNormal

    actor = _actor("trunc_normal")
    feat = torch.randn(6, FEAT) * 3
    loc, scale = actor.params(feat)
    ref = TruncatedNormal(loc, scale, low=-1.0, high=1.0)
    dist = actor.dist(feat)
    action = torch.rand(6, ACT) * 1.8 - 0.9
    torch.testing.assert_close(dist.log_prob(action), ref.log_prob(action), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dist.entropy(), ref.entropy(), rtol=1e-4, atol=1e-4)


def test_trunc_normal_samples_follow_the_distribution() -> None:
    torch.manual_seed(0)
    loc, scale = torch.tensor([0.9, -0.3, 0.0]), torch.tensor([0.5, 0.1, 2.0])
    d = TruncNormal(loc, scale)
    x = d.sample((100000,))
    assert bool((x.abs() <= 1 - 1e-6).all())  # V2's clip inside the bounds
    # analytic mean μ + σ (φ(α) - φ(β)) / Z; for μ = 0.9, σ = 0.5: α = -3.8, β = 0.2, Z = Φ(0.2) - Φ(-3.8) = 0.579188,
    # φ(0.2) = 0.391043, φ(-3.8) = 0.000292 -> mean = 0.9 + 0.5 (0.000292 - 0.391043) / 0.579188 = 0.562675
    torch.testing.assert_close(d.mean[0], torch.tensor(0.562675), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.mean(0), d.mean, atol=0.01, rtol=0)
    # the gradient of a sample's value with respect to loc exists and is finite (inverse-cdf reparameterisation)
    loc_r = loc.clone().requires_grad_()
    TruncNormal(loc_r, scale).rsample((1000,)).sum().backward()
    assert torch.isfinite(loc_r.grad).all() and loc_r.grad.abs().sum() > 0


def test_bounded_normal_std_formula_log_prob_and_clipped_forward() -> None:
    actor = _actor("bounded_normal")
    # raw mean [0, 3, -1], raw std [0, -2, 10]: std = 0.9 sigmoid(s + 2) + 0.1
    #   -> [0.9 * 0.880797 + 0.1, 0.9 * 0.5 + 0.1, 0.9 * 0.999994 + 0.1] = [0.892717, 0.55, 0.999995]
    _set_outputs(actor, torch.tensor([0.0, 3.0, -1.0, 0.0, -2.0, 10.0]))
    feat = torch.randn(2000, FEAT)
    mean, std = actor.params(feat)
    torch.testing.assert_close(mean[0], torch.tensor([0.0, 0.995055, -0.761594]))
    torch.testing.assert_close(std[0], torch.tensor([0.892717, 0.55, 0.999995]))
    dist = actor.dist(feat)
    action = torch.randn(2000, ACT)
    ref = D.Normal(mean, std)
    torch.testing.assert_close(dist.log_prob(action), ref.log_prob(action).sum(-1))
    torch.testing.assert_close(dist.entropy(), ref.entropy().sum(-1))
    # forward's sample is the plain normal one, as the author's (mean 0.995, std 0.55: about half above 1; the env
    # side clips), reparameterised: z = mean + std ε
    torch.manual_seed(3)
    action = actor(feat)
    assert (action.abs() > 1).float().mean() > 0.2
    torch.manual_seed(3)
    torch.testing.assert_close(action, mean + std * torch.randn_like(mean))
    # the evaluation action is the mean tanh(m), inside (-1, 1)
    torch.testing.assert_close(actor(feat, sample=False), mean)


def test_onehot_actor_unimix_log_prob_entropy_against_torch() -> None:
    feat = torch.randn(8, FEAT)
    plain = _actor("onehot")  # unimix 0: the raw logits, normalised by the distribution
    ref = D.OneHotCategorical(logits=plain.net(feat))
    action = ref.sample()
    torch.testing.assert_close(plain.dist(feat).log_prob(action), ref.log_prob(action))
    torch.testing.assert_close(plain.dist(feat).entropy(), ref.entropy())
    actor = _actor("onehot", unimix=0.01)
    probs = 0.99 * actor.net(feat).softmax(-1) + 0.01 / ACT
    ref = D.OneHotCategorical(probs=probs)
    dist = actor.dist(feat)
    action = dist.sample()
    torch.testing.assert_close(dist.log_prob(action), ref.log_prob(action))
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    # unimix floors every probability at u / A
    _set_outputs(actor, torch.tensor([30.0, 0.0, -30.0]))
    torch.testing.assert_close(actor.dist(feat).probs[0], torch.tensor([0.99 + 0.01 / 3, 0.01 / 3, 0.01 / 3]),
                               atol=1e-6, rtol=0)
    assert torch.equal(actor(feat, sample=False)[0], torch.tensor([1.0, 0.0, 0.0]))


class _V1TanhNormalActor(nn.Module):
    """The actor as it stood in ``dreamer_rl/nets/distributions.py`` before the move (the reference)."""

    def __init__(self, feat_dim: int, action_dim: int, *, units: int, layers: int, act: str = "elu",
                 init_std: float = 5.0, min_std: float = 1e-4, mean_scale: float = 5.0) -> None:
        super().__init__()
        self.net = MLP(feat_dim, 2 * action_dim, units=units, layers=layers, act=act)  # type: ignore[arg-type]
        self.raw_init_std = math.log(math.expm1(init_std))
        self.min_std, self.mean_scale = min_std, mean_scale

    def forward(self, feat: torch.Tensor, sample: bool = True) -> torch.Tensor:
        mean, std = self.net(feat).chunk(2, -1)
        mean = self.mean_scale * torch.tanh(mean / self.mean_scale)
        std = F.softplus(std + self.raw_init_std) + self.min_std
        if not sample:
            return torch.tanh(mean)
        return torch.tanh(mean + std * torch.randn_like(mean))


def test_tanh_normal_actor_is_the_v1_actor() -> None:
    from dreamer_rl.nets.distributions import TanhNormalActor as FromDistributions

    assert FromDistributions is TanhNormalActor
    torch.manual_seed(0)
    old = _V1TanhNormalActor(FEAT, ACT, units=16, layers=2)
    torch.manual_seed(0)
    new = TanhNormalActor(FEAT, ACT, units=16, layers=2)
    assert torch.equal(nn.utils.parameters_to_vector(old.parameters()), nn.utils.parameters_to_vector(new.parameters()))
    new.load_state_dict(old.state_dict(), strict=True)  # V1 checkpoints load as they are
    feat = torch.randn(4, 5, FEAT)
    torch.manual_seed(7)
    a_old = old(feat)
    torch.manual_seed(7)
    a_new = new(feat)
    assert torch.equal(a_old, a_new)
    assert torch.equal(old(feat, sample=False), new(feat, sample=False))


def test_make_actor_kinds_norm_and_errors() -> None:
    classes = [TanhNormalActor, TruncNormalActor, BoundedNormalActor, OneHotActor]
    for kind, cls in zip(KINDS, classes):
        assert type(_actor(kind)) is cls
    with pytest.raises(ValueError, match="gaussian"):
        make_actor("gaussian", FEAT, ACT, units=16, layers=2)  # type: ignore[arg-type]
    # norm "none": exactly the plain MLP's modules (Linear / activation only)
    assert {type(m) for m in _actor("bounded_normal").net} == {nn.Linear, nn.ELU}
    # RMSNorm + SiLU (V3's) is the fused module; RMSNorm with another activation stays the plain pair
    assert any(isinstance(m, RMSNormSiLU) for m in _actor("onehot", norm="rms", act="silu").net)
    assert any(isinstance(m, nn.RMSNorm) for m in _actor("onehot", norm="rms", act="elu").net)
