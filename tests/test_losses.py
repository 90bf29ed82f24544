"""Golden values and gradient flow of the losses and their helpers."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Normal, kl_divergence

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe
from dreamer_rl.losses import ActorLoss, ValueLoss, WorldModelLoss, discount_weights, gaussian_kl, kl_loss, lambda_return
from recipes.presets import PRESETS

SMALL = Recipe.model_validate({k: v for k, v in PRESETS["debug"].items() if k in ("model", "behavior", "train")})


def make_batch(B: int = 3, T: int = 6, A: int = 2, pixels: bool = False, D: int = 5) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    obs = (torch.randint(0, 256, (B, T, 3, 64, 64), generator=g, dtype=torch.uint8) if pixels
           else torch.randn(B, T, D, generator=g))
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[:, 0] = True
    return TensorDict({"pixels" if pixels else "observation": obs, "action": torch.rand(B, T, A, generator=g) * 2 - 1,
                       "reward": torch.randn(B, T, 1, generator=g), "is_init": is_init,
                       "terminated": torch.zeros(B, T, 1, dtype=torch.bool)}, [B, T])


def test_lambda_return_hand_computed() -> None:
    # λ = 0.5, d = 0.9, r = [1, 2], v = [0, 4], bootstrap 10 (module docstring):
    # R_1 = 2 + 0.9 (0.5*10 + 0.5*10) = 11 ; R_0 = 1 + 0.9 (0.5*4 + 0.5*11) = 7.75
    r = torch.tensor([1.0, 2.0]).view(2, 1, 1)
    v = torch.tensor([0.0, 4.0]).view(2, 1, 1)
    d = torch.full((2, 1, 1), 0.9)
    out = lambda_return(r, v, d, torch.tensor([[10.0]]), 0.5)
    torch.testing.assert_close(out.view(-1), torch.tensor([7.75, 11.0]))


def test_lambda_return_limits() -> None:
    r, v, d = torch.rand(4, 3, 1), torch.rand(4, 3, 1), torch.full((4, 3, 1), 0.9)
    boot = torch.rand(3, 1)
    # λ = 0: one-step TD targets r_t + d v_{t+1}
    td0 = r + d * torch.cat([v[1:], boot[None]])
    torch.testing.assert_close(lambda_return(r, v, d, boot, 0.0), td0)
    # λ = 1: discounted Monte-Carlo return bootstrapped at the end
    mc = boot.clone()
    expected = []
    for t in reversed(range(4)):
        mc = r[t] + d[t] * mc
        expected.append(mc)
    torch.testing.assert_close(lambda_return(r, v, d, boot, 1.0), torch.stack(expected[::-1]))


def test_discount_weights() -> None:
    d = torch.full((4, 1, 1), 0.5)
    torch.testing.assert_close(discount_weights(d).view(-1), torch.tensor([1.0, 0.5, 0.25, 0.125]))


def test_gaussian_kl_matches_torch() -> None:
    g = torch.Generator().manual_seed(1)
    mq, mp = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    sq, sp = torch.rand(4, 7, generator=g) + 0.1, torch.rand(4, 7, generator=g) + 0.1
    expected = kl_divergence(Normal(mq, sq), Normal(mp, sp)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mq, sq, mp, sp), expected)


def test_free_nats_clamps_mean_kl_and_blocks_gradient() -> None:
    m = torch.zeros(2, 3, 4, requires_grad=True)
    s = torch.ones(2, 3, 4)
    loss, raw = kl_loss(m + 0.1, s, torch.zeros_like(s), s, free_nats=3.0)
    assert loss.item() == 3.0 and raw.item() == pytest.approx(0.5 * 4 * 0.01)
    loss.backward()
    assert m.grad.abs().sum() == 0
    loss, raw = kl_loss(m + 2.0, s, torch.zeros_like(s), s, free_nats=1.0)  # mean KL 8 > 1: gradient flows
    assert loss.item() == pytest.approx(8.0)


@pytest.mark.parametrize("pixels", [False, True])
def test_world_model_loss_golden(pixels: bool) -> None:
    torch.manual_seed(0)
    agent = build_dreamer(SMALL, (3, 64, 64) if pixels else (5,), 2)
    wm = agent.world_model
    batch = make_batch(pixels=pixels)
    loss = WorldModelLoss(wm, free_nats=0.0)
    if not pixels:
        loss.set_keys(observation="observation")
    torch.manual_seed(1)
    losses, states = loss(batch)
    # recompute independently with torch.distributions from the same posterior sample
    torch.manual_seed(1)
    key = "pixels" if pixels else "observation"
    st = wm.observe(batch[key], batch["action"], batch["is_init"])
    feat = torch.cat([st.stoch, st.deter], -1)
    target = wm.target(batch[key])
    dims = (-3, -2, -1) if pixels else (-1,)
    image = -Normal(wm.decoder(feat), 1.0).log_prob(target).sum(dims).mean()
    reward = -Normal(wm.reward(feat), 1.0).log_prob(batch["reward"]).sum(-1).mean()
    kl = kl_divergence(Normal(st.post_mean, st.post_std), Normal(st.prior_mean, st.prior_std)).sum(-1).mean()
    torch.testing.assert_close(losses["loss_image"], image)
    torch.testing.assert_close(losses["loss_reward"], reward)
    torch.testing.assert_close(losses["loss_kl"], kl)
    assert states["posterior", "deter"].shape == (3, 6, SMALL.model.deter)
    assert not states["posterior", "deter"].requires_grad


def test_pcont_loss_targets_termination_only() -> None:
    torch.manual_seed(0)
    recipe = SMALL.model_copy(update={"model": SMALL.model.model_copy(update={"pcont": True})})
    wm = build_dreamer(recipe, (5,), 2).world_model
    batch = make_batch()
    loss = WorldModelLoss(wm, pcont_scale=1.0, discount=0.99)
    loss.set_keys(observation="observation")
    batch["terminated"][:, -1] = True
    with torch.no_grad():
        wm.pcont[-1].weight.zero_()
        wm.pcont[-1].bias.fill_(10.0)  # predicts continuation ~1 everywhere
    losses, _ = loss(batch)
    # terminal rows (1 of 6) have target 0 -> large loss; a truncation would not change the target
    batch2 = batch.clone()
    batch2["terminated"][:] = False
    losses2, _ = loss(batch2)
    assert losses["loss_pcont"] > losses2["loss_pcont"] + 1.0


def _grads(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_stop_gradients() -> None:
    torch.manual_seed(0)
    agent = build_dreamer(SMALL, (5,), 2)
    wm, actor, value = agent.world_model, agent.actor, agent.value
    batch = make_batch()
    wm_loss = WorldModelLoss(wm, free_nats=0.0)
    wm_loss.set_keys(observation="observation")
    losses, states = wm_loss(batch)
    sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
    assert _grads(wm) and not _grads(actor) and not _grads(value), "world-model loss must move only the model"
    agent.zero_grad(set_to_none=True)

    actor_losses, imagined = ActorLoss(wm, actor, value, horizon=5)(states)
    actor_losses["loss_actor"].backward()
    assert _grads(actor), "actor loss must reach the actor through the dynamics"
    assert not _grads(wm) and not _grads(value), "actor loss must not move world model or value"
    assert all(p.grad is None for p in wm.parameters()), "world-model weight grads are not even computed"
    assert all(p.requires_grad for p in wm.parameters()), "held-out params are restored"
    agent.zero_grad(set_to_none=True)

    ValueLoss(value)(imagined)["loss_value"].backward()
    assert _grads(value) and not _grads(actor) and not _grads(wm), "value loss must move only the value net"


def test_value_loss_golden() -> None:
    from dreamer_rl.nets.heads import ScalarHead

    value = ScalarHead(3, kind="gaussian", units=4, layers=1)
    feat, ret, w = torch.randn(4, 2, 3), torch.randn(4, 2, 1), torch.rand(4, 2, 1)
    out = ValueLoss(value)(TensorDict({"feat": feat, "lambda_return": ret, "weight": w}, [4, 2]))["loss_value"]
    expected = (w[..., 0] * -Normal(value(feat), 1.0).log_prob(ret)[..., 0]).mean()
    torch.testing.assert_close(out, expected)


def test_actor_loss_is_minus_weighted_return_and_keys_remap() -> None:
    torch.manual_seed(0)
    agent = build_dreamer(SMALL, (5,), 2)
    states = TensorDict({"start": {"h": torch.randn(2, 3, SMALL.model.deter), "z": torch.randn(2, 3, SMALL.model.stoch)}},
                        [2, 3])
    loss = ActorLoss(agent.world_model, agent.actor, agent.value, horizon=4, gamma=0.9)
    loss.set_keys(posterior_deter=("start", "h"), posterior_stoch=("start", "z"))
    losses, imagined = loss(states)
    assert imagined.batch_size == torch.Size([4, 6])  # states s_0 .. s_{H-1}
    torch.testing.assert_close(losses["loss_actor"], -(imagined["weight"] * imagined["lambda_return"]).mean())
    torch.testing.assert_close(imagined["weight"][:, 0, 0], torch.tensor([1.0, 0.9, 0.81, 0.729]))
    assert loss.in_keys == [("start", "h"), ("start", "z")]


def test_learner_update_moves_all_three_and_is_finite() -> None:
    torch.manual_seed(0)
    agent = build_dreamer(SMALL, (5,), 2)
    learner = Learner(agent, SMALL, obs_key="observation")
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics = learner.update(make_batch())
    assert all(torch.isfinite(v) for v in metrics.values())
    for part in ("world_model", "actor", "value"):
        changed = [not torch.equal(before[k], v) for k, v in agent.state_dict().items() if k.startswith(part)]
        assert any(changed), f"{part} did not change"


def test_imagination_stops_gradient_at_the_policy_input() -> None:
    """Dreamer V1: a = π(sg(feat)); gradients reach earlier actions only through the dynamics."""
    from dreamer_rl.imagine import imagine

    torch.manual_seed(0)
    agent = build_dreamer(SMALL, (5,), 2)
    rssm = agent.world_model.rssm
    seen = []

    def policy(feat: torch.Tensor) -> torch.Tensor:
        seen.append(feat)
        return agent.actor(feat)

    deter = torch.randn(3, SMALL.model.deter, requires_grad=True)
    stoch = torch.randn(3, SMALL.model.stoch)
    deters, stochs, actions = imagine(rssm, policy, deter, stoch, 3)
    assert all(not f.requires_grad for f in seen)
    deters[-1].sum().backward()
    assert deter.grad is not None and deter.grad.abs().sum() > 0  # through the dynamics
