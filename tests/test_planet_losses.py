"""PlaNet's paper-era world-model losses and schedule: latent overshooting, global divergence, time-agnostic
prediction, the learning-rate ramp, and their wiring into WorldModelLoss / Learner."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe
from dreamer_rl.losses import WorldModelLoss
from dreamer_rl.losses.kl import kl_terms
from dreamer_rl.losses.overshooting import global_kl, overshooting_kl, overshooting_reward
from dreamer_rl.losses.tap import tap_loss
from dreamer_rl.nets.distributions import gaussian_kl
from dreamer_rl.rssm import RSSM
from dreamer_rl.world_model import WorldModel
from recipes.presets import _PLANET_PAPER, PRESETS
from tests.test_losses import make_batch

SMALL = {k: v for k, v in PRESETS["debug"].items() if k in ("model", "behavior", "train")}


class _Transition(nn.Module):
    """h' = h + a (the stochastic part is ignored); action_input is the identity."""

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        return action

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:
        return deter + action_in


class _LinearRSSM(nn.Module):
    """A 1-D RSSM with hand-set dynamics: prior N(h, 1), samples are the mean, so open-loop means are sums."""

    latent = "gaussian"

    def __init__(self) -> None:
        super().__init__()
        self.transition = _Transition()

    def initial(self, batch_shape, device=None, dtype=torch.float32):
        return torch.zeros(*batch_shape, 1, device=device, dtype=dtype), torch.zeros(*batch_shape, 1, device=device,
                                                                                       dtype=dtype)

    def prior(self, deter: torch.Tensor) -> torch.Tensor:
        return torch.cat([deter, torch.ones_like(deter)], -1)

    def sample(self, stats: torch.Tensor) -> torch.Tensor:
        return stats.chunk(2, -1)[0]

    def kl(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return gaussian_kl(*q.chunk(2, -1), *p.chunk(2, -1))


def _example(is_init_rows=()):
    """T = 3: posterior h = [1, 7, 9] (only h_0 is a start used), actions a = [1, 2, 3], posterior means
    m = [0, 0.5, 4], all stds 1."""
    deter = torch.tensor([1.0, 7.0, 9.0]).view(1, 3, 1)
    action = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1)
    post = torch.stack([torch.tensor([0.0, 0.5, 4.0]), torch.ones(3)], -1)[None]  # [1, 3, 2]
    is_init = torch.zeros(1, 3, 1, dtype=torch.bool)
    for row in is_init_rows:
        is_init[0, row] = True
    return deter, deter.clone(), post, action, is_init


def test_overshooting_hand_computed_two_steps() -> None:
    # Starts: the state before row t (t = 0: zeros, t = 1: h_0 = 1). KL(N(m, 1) || N(μ, 1)) = (m - μ)² / 2.
    # d = 2: from zeros  μ = a0 + a1 = 3       vs m1 = 0.5 -> 3.125
    #        from h_0    μ = 1 + a1 + a2 = 6   vs m2 = 4   -> 2
    # d = 3: from zeros  μ = a0 + a1 + a2 = 6  vs m2 = 4   -> 2
    # L = mean(mean(3.125, 2), 2) = (2.5625 + 2) / 2 = 2.28125
    rssm = _LinearRSSM()
    args = _example()
    torch.testing.assert_close(overshooting_kl(rssm, *args, amount=2), torch.tensor(2.28125))
    # beyond the chunk: the same pairs
    torch.testing.assert_close(overshooting_kl(rssm, *args, amount=10), torch.tensor(2.28125))
    # distance 2 only
    torch.testing.assert_close(overshooting_kl(rssm, *args, amount=1), torch.tensor(2.5625))
    # free nats 2.5 per pair: d = 2 -> (3.125 + 2.5) / 2, d = 3 -> 2.5
    torch.testing.assert_close(overshooting_kl(rssm, *args, amount=2, free_nats=2.5),
                               torch.tensor((2.8125 + 2.5) / 2))
    assert overshooting_kl(rssm, *args, amount=0) == 0


def test_overshooting_does_not_cross_episode_starts() -> None:
    rssm = _LinearRSSM()
    # is_init at row 2: only (zeros -> row 1) at d = 2 is left; d = 3 has no pair and leaves the average
    torch.testing.assert_close(overshooting_kl(rssm, *_example([2]), amount=2), torch.tensor(3.125))
    # is_init at row 0: no start from the state before the chunk; (h_0 -> row 2) at d = 2 is left
    torch.testing.assert_close(overshooting_kl(rssm, *_example([0]), amount=2), torch.tensor(2.0))
    # is_init at row 1: every pair crosses it
    assert overshooting_kl(rssm, *_example([1]), amount=2) == 0


def test_overshooting_stops_the_target_posteriors_gradient_only() -> None:
    torch.manual_seed(0)
    rssm = RSSM(2, 4, stoch=3, deter=5, hidden=6)
    B, T = 2, 5
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    action = torch.randn(B, T, 2)
    states = rssm.observe(torch.randn(B, T, 4), action, is_init)
    post = states.post.detach().requires_grad_()
    deter = states.deter.detach().requires_grad_()
    stoch = states.stoch.detach().requires_grad_()
    overshooting_kl(rssm, deter, stoch, post, action, is_init, amount=3).backward()
    assert post.grad is None  # the targets are stop-gradient
    assert deter.grad.abs().sum() > 0 and stoch.grad.abs().sum() > 0  # the starts keep theirs, as PlaNet
    for p in (rssm.prior_out.weight, *rssm.transition.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert rssm.post_out.weight.grad is None


def test_overshooting_reward_hand_computed() -> None:
    """Rows' NLLs [1, 2, 3, 4], O = 2: distance 2 reaches rows 1..3 (2 + 3 + 4), distance 3 rows 2..3 (3 + 4):
    16 / (B·T·O = 8) = 2; an episode start at row 2 leaves only start -> row 1 at distance 2: 2 / 8."""
    nll = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    no_start = torch.zeros(1, 4, 1, dtype=torch.bool)
    assert float(overshooting_reward(nll, no_start, amount=2)) == pytest.approx(2.0)
    start = no_start.clone()
    start[0, 2] = True
    assert float(overshooting_reward(nll, start, amount=2)) == pytest.approx(0.25)
    assert float(overshooting_reward(nll, no_start, amount=0)) == 0.0


def test_overshooting_reward_trains_the_reward_head_only() -> None:
    torch.manual_seed(0)
    wm = WorldModel((5,), 2, stoch=4, deter=8, hidden=8, units=8)
    loss = WorldModelLoss(wm, overshooting=3, overshooting_reward_scale=100.0)
    loss.set_keys(observation="observation")
    assert "loss_overshooting_reward" in loss.out_keys
    losses, _ = loss(make_batch())
    assert set(losses.keys()) == set(loss.out_keys) and losses["loss_overshooting_reward"] > 0
    losses["loss_overshooting_reward"].backward()
    moved = {name.split(".")[0] for name, p in wm.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert moved == {"reward"}
    recipe = Recipe.model_validate(_PLANET_PAPER)
    assert recipe.model.overshooting_reward_scale == 100.0 and Recipe().model.overshooting_reward_scale == 0.0


def test_global_kl_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(2, 3, 4, generator=g), torch.rand(2, 3, 4, generator=g) + 0.1
    rssm = RSSM(2, 4, stoch=4, deter=5, hidden=6)
    expected = (0.5 * (std ** 2 + mean ** 2 - 1) - std.log()).sum(-1).mean()
    torch.testing.assert_close(global_kl(rssm, torch.cat([mean, std], -1)), expected)
    cat = RSSM(2, 4, stoch=2, classes=3, deter=5, hidden=6, latent="categorical")
    logits = torch.randn(2, 3, 6, generator=g)
    q = logits.view(2, 3, 2, 3).softmax(-1)
    torch.testing.assert_close(global_kl(cat, logits), (q * (q * 3).log()).sum((-2, -1)).mean())


def test_free_nats_per_step() -> None:
    kl = torch.tensor([[1.0, 3.0]])
    stats = torch.zeros(1, 2, 2)

    def fn(q, p):
        return kl

    assert kl_terms(stats, stats, kl=fn, free_nats=2.5)[0]["kl"] == 2.5  # max(mean 2, 2.5)
    assert kl_terms(stats, stats, kl=fn, free_nats=2.5, free_avg=False)[0]["kl"] == 2.75  # mean(2.5, 3)


def _tap_brute(pred, target, is_init, horizon):
    B, T, D = pred.shape
    rows = []
    for b in range(B):
        for j in range(T):
            cands = []
            for i in range(j + 1, min(j + horizon, T - 1) + 1):
                if is_init[b, j + 1:i + 1].any():
                    break
                sq = ((pred[b, j] - target[b, i]) ** 2).sum()
                cands.append(0.5 * sq + 0.5 * D * math.log(2 * math.pi))
            if cands:
                rows.append(torch.stack(cands).min())
    return torch.stack(rows).mean()


def test_tap_equals_brute_force_and_is_differentiable() -> None:
    g = torch.Generator().manual_seed(0)
    B, T, D = 2, 7, 3
    pred = torch.randn(B, T, D, generator=g).requires_grad_()
    target = torch.randn(B, T, D, generator=g)
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[0, 0], is_init[1, 4] = True, True
    for horizon in (1, 3, 10):
        torch.testing.assert_close(tap_loss(pred, target, is_init, horizon=horizon),
                                   _tap_brute(pred, target, is_init, horizon))
    loss = tap_loss(pred, target, is_init, horizon=3)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert pred.grad[:, -1].abs().sum() == 0  # the last row has no future target
    assert pred.grad[1, 3].abs().sum() == 0  # row 3 of sequence 1 is followed by an episode start


def _learner(**train) -> tuple[Learner, torch.optim.Optimizer]:
    recipe = Recipe.model_validate({**SMALL, "train": {**SMALL["train"], **train}})
    learner = Learner(build_dreamer(recipe, (5,), 2), recipe, obs_key="observation")
    return learner, learner.model_opt


def test_lr_ramp_values_and_resume() -> None:
    torch.manual_seed(0)
    learner, opt = _learner(lr_ramp=4, model_lr=1e-3)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        learner.update(make_batch())
    assert lrs == pytest.approx([0.0, 0.25e-3, 0.5e-3])  # lr * min(k / 4, 1) at update k
    assert learner.actor_opt.param_groups[0]["lr"] == pytest.approx(0.75 * Recipe().train.actor_lr)
    state = copy.deepcopy(learner.optim_state())  # as saved to disk: later updates do not touch it
    resumed, resumed_opt = _learner(lr_ramp=4, model_lr=1e-3)
    resumed.load_optim_state(copy.deepcopy(state))
    assert resumed_opt.param_groups[0]["lr"] == pytest.approx(0.75e-3)
    resumed.update(make_batch())
    assert resumed_opt.param_groups[0]["lr"] == 1e-3
    resumed.update(make_batch())
    assert resumed_opt.param_groups[0]["lr"] == 1e-3
    # a checkpoint without scheduler state still loads, the ramp continuing from the update count
    old = {k: v for k, v in state.items() if k != "lr_schedulers"}
    again, again_opt = _learner(lr_ramp=4, model_lr=1e-3)
    again.load_optim_state(old)
    assert again_opt.param_groups[0]["lr"] == pytest.approx(0.75e-3)
    # no ramp: the learning rate is constant
    plain, plain_opt = _learner(model_lr=1e-3)
    plain.update(make_batch())
    assert plain_opt.param_groups[0]["lr"] == 1e-3 and "lr_schedulers" not in plain.optim_state()


def test_world_model_loss_lists_the_new_losses_only_when_on() -> None:
    torch.manual_seed(0)
    wm = WorldModel((5,), 2, stoch=4, deter=8, hidden=8, units=8)
    base = WorldModelLoss(wm)
    base.set_keys(observation="observation")
    assert not {"loss_overshooting", "loss_global_kl", "loss_tap"} & set(base.out_keys)
    assert set(base(make_batch())[0].keys()) == set(base.out_keys)
    on = WorldModelLoss(wm, overshooting=3, global_kl_scale=0.1, tap_scale=1.0)
    on.set_keys(observation="observation")
    assert {"loss_overshooting", "loss_global_kl", "loss_tap"} <= set(on.out_keys)
    losses, _ = on(make_batch())
    assert set(losses.keys()) == set(on.out_keys)
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total) and all(losses[k] > 0 for k in ("loss_overshooting", "loss_global_kl", "loss_tap"))
    total.backward()
    # the Learner passes the recipe's fields
    recipe = Recipe.model_validate({**SMALL, "model": {**SMALL["model"], "overshooting": 2, "tap_scale": 0.5,
                                                       "reward_scale": 10.0}})
    loss = Learner(build_dreamer(recipe, (5,), 2), recipe, obs_key="observation").world_model_loss
    assert (loss.overshooting, loss.tap_scale, loss.reward_scale, loss.global_kl_scale) == (2, 0.5, 10.0, 0.0)


def test_planet_paper_settings_validate() -> None:
    recipe = Recipe.model_validate(_PLANET_PAPER)
    assert (recipe.model.overshooting, recipe.model.global_kl_scale, recipe.model.free_nats) == (49, 0.1, 2.0)
    assert (recipe.model.reward_scale, recipe.train.lr_ramp, recipe.train.grad_clip) == (10.0, 200, 1000.0)
    assert PRESETS["tap"] == {"model": {"tap_scale": 1.0}}
