"""The research transition models (PlaNet's SSM and mean-only ablation, the fork's moving-average and clockwork
RSSMs): shapes, resets, the update arithmetic by hand, the cell-as-prior loss, gradients, one world-model update
each, the config / CLI fields, and one debug run per preset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from tensordict import TensorDict
from torch import distributions as D

from dreamer_rl.checkpoint import load_checkpoint
from dreamer_rl.errors import UserError
from dreamer_rl.losses import WorldModelLoss
from dreamer_rl.rssm import RSSM
from dreamer_rl.transitions import ClockworkRSSM, MovingAverageRSSM, make_rssm
from dreamer_rl.world_model import WorldModel
from recipes.cli import build_parser, make_recipe, resolve_recipe
from tests.helpers import figures, run_recipe_here

A, E, B, T = 2, 5, 3, 7
SIZES = dict(stoch=4, deter=8, hidden=8)
KINDS = {"ssm": dict(transition="ssm"), "rssm_ma": dict(transition="rssm_ma", ma_ppn=0.5, ma_alpha=0.3),
         "clockwork": dict(transition="clockwork", clock_periods=(1, 3)),
         "mean_only": dict(transition="rssm", mean_only=True)}


def model(kind: str, seed: int = 0, **kw: object):
    torch.manual_seed(seed)
    return make_rssm(A, E, **{**SIZES, **KINDS[kind], **kw})


def inputs(seed: int = 1, resets: tuple[int, ...] = (0,)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[:, list(resets)] = True
    return torch.randn(B, T, E, generator=g), torch.rand(B, T, A, generator=g) * 2 - 1, is_init


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind: str) -> None:
    m = model(kind)
    st = m.observe(*inputs())
    Z, Dw, S2 = m.stoch, m.deter, m.stats_dim
    assert (st.deter.shape, st.stoch.shape, st.post.shape, st.prior.shape) == ((B, T, Dw), (B, T, Z), (B, T, S2),
                                                                              (B, T, S2))
    assert m.feat(st.stoch, st.deter).shape == (B, T, m.feat_dim) and m.kl(st.post, st.prior).shape == (B, T)
    assert S2 == 2 * m.variables and (st.post.chunk(2, -1)[1] > 0).all()
    d, s = m.img_step(st.deter[:, -1], st.stoch[:, -1], torch.zeros(B, A))
    assert (d.shape, s.shape, m.prior(d).shape) == ((B, Dw), (B, Z), (B, S2))
    d, s = m.obs_step(d, s, torch.zeros(B, A), torch.randn(B, E), torch.zeros(B, 1, dtype=torch.bool))
    assert (d.shape, s.shape, m.feat(s, d).shape) == ((B, Dw), (B, Z), (B, m.feat_dim))
    # the planner's raw chain: transition -> prior -> sample -> feat
    d = m.transition(d, s, m.transition.action_input(torch.zeros(B, A)))
    assert m.feat(m.sample(m.prior(d)), d).shape == (B, m.feat_dim)
    assert m.initial((B,))[0].shape == (B, Dw) and m.extra_losses(st) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_reset_forgets_everything_before_it(kind: str) -> None:
    m = model(kind)
    embed, action, is_init = inputs(resets=(0, 3))
    other_embed, other_action = embed.clone(), action.clone()
    other_embed[:, :3] += 5.0
    other_action[:, :3] *= -1
    torch.manual_seed(7)
    one = m.observe(embed, action, is_init)
    torch.manual_seed(7)
    two = m.observe(other_embed, other_action, is_init, state=m.initial((B,)))
    assert not torch.allclose(one.stoch[:, 2], two.stoch[:, 2])
    for a, b in zip(one, two):
        torch.testing.assert_close(a[:, 3:], b[:, 3:])
    reset = torch.ones(B, 1, dtype=torch.bool)  # the acting step too
    torch.manual_seed(3)
    d1, s1 = m.obs_step(one.deter[:, 2], one.stoch[:, 2], action[:, 3], embed[:, 3], reset)
    torch.manual_seed(3)
    d2, s2 = m.obs_step(two.deter[:, 2], two.stoch[:, 2], other_action[:, 3], embed[:, 3], reset)
    torch.testing.assert_close((d1, s1), (d2, s2))


def test_ssm_has_no_deterministic_path() -> None:
    m = model("ssm")
    assert m.feat_dim == m.stoch == m.variables == SIZES["stoch"] and m.deter == 2 * m.variables
    z, a_in = torch.randn(B, m.stoch), m.transition.action_input(torch.randn(B, A))
    torch.testing.assert_close(m.transition(torch.randn(B, m.deter), z, a_in), m.transition(torch.zeros(B, m.deter),
                                                                                            z, a_in))
    deter = m.transition(torch.randn(B, m.deter), z, a_in)
    assert torch.equal(m.prior(deter), deter) and torch.equal(m.feat(z, torch.randn(B, m.deter)), z)
    st = m.observe(*inputs())
    torch.testing.assert_close(st.prior, st.deter)


@pytest.mark.parametrize("kind", ["mean_only", "ssm", "rssm_ma", "clockwork"])
def test_mean_only_samples_are_the_mean(kind: str) -> None:
    m = model(kind, mean_only=True)
    stats = m.prior(torch.randn(B, m.deter).abs())
    assert torch.equal(m.sample(stats), m.sample(stats)) and torch.equal(m.sample(stats), m.mode(stats))
    assert torch.equal(m.sample(stats)[:, :m.variables], stats[:, :m.variables])
    torch.manual_seed(0)
    one = m.observe(*inputs())
    torch.manual_seed(1)
    two = m.observe(*inputs())
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    if kind == "mean_only":
        assert torch.equal(one.stoch, one.post.chunk(2, -1)[0])
    with pytest.raises(ValueError, match="mean_only"):
        RSSM(A, E, latent="categorical", mean_only=True)


def test_moving_average_by_hand() -> None:
    alpha = 0.3
    m = model("rssm_ma", mean_only=True, ma_alpha=alpha)
    assert isinstance(m, MovingAverageRSSM) and (m.stoch_s, m.deter_s) == (2, 4)  # ⌊0.5 · 4⌋, ⌊0.5 · 8⌋
    embed, action, is_init = inputs()
    st = m.observe(embed, action, is_init)
    Ss, Ds, S, Dt = 2, 4, 4, 8
    slow, fast = m.slow, m.fast
    for t in range(1, T):
        h_s, z_s, q_s = st.deter[:, t - 1, :Ds], st.stoch[:, t - 1, :Ss], st.post[:, t - 1]
        q_prev = torch.cat([q_s[:, :Ss], q_s[:, S:S + Ss]], -1)  # previous slow [mean, std]
        raw = slow.transition(h_s, z_s, slow.transition.action_input(action[:, t]))
        torch.testing.assert_close(st.deter[:, t, :Ds], (1 - alpha) * h_s + alpha * raw)
        out_q = slow.posterior(raw, slow.post_in_embed(embed[:, t]))
        q = (1 - alpha) * q_prev + alpha * out_q
        torch.testing.assert_close(torch.cat([st.post[:, t, :Ss], st.post[:, t, S:S + Ss]], -1), q)
        p = (1 - alpha) * q_prev + alpha * slow.prior(raw)
        torch.testing.assert_close(torch.cat([st.prior[:, t, :Ss], st.prior[:, t, S:S + Ss]], -1), p)
        # mean-only sample: slow_t = (1 - α) slow_{t-1} + α · its RSSM's output (the mean)
        torch.testing.assert_close(st.stoch[:, t, :Ss], (1 - alpha) * z_s + alpha * out_q[:, :Ss])
        # the fast RSSM steps as usual
        h_f = fast.transition(st.deter[:, t - 1, Ds:Dt], st.stoch[:, t - 1, Ss:S],
                              fast.transition.action_input(action[:, t]))
        torch.testing.assert_close(st.deter[:, t, Ds:Dt], h_f)
    assert torch.equal(m.feat(st.stoch, st.deter), torch.cat([st.stoch[..., :S], st.deter[..., :Dt]], -1))


def test_clockwork_update_masks() -> None:
    torch.manual_seed(0)
    m = make_rssm(A, E, transition="clockwork", clock_periods=(1, 4), stoch=4, deter=8, hidden=8)
    g = torch.Generator().manual_seed(2)
    n = 12
    is_init = torch.zeros(1, n, 1, dtype=torch.bool)
    is_init[0, [0, 6]] = True  # t from the episode start: 0 1 2 3 4 5 | 0 1 2 3 4 5
    st = m.observe(torch.randn(1, n, E, generator=g), torch.randn(1, n, A, generator=g), is_init)
    counter = st.deter[0, :, -1]
    assert counter.tolist() == [1, 2, 3, 0, 1, 2, 1, 2, 3, 0, 1, 2]  # steps taken, modulo lcm(1, 4)
    slow = [st.deter[0, :, 4:8], st.stoch[0, :, 2:], st.post[0, :, [2, 3, 6, 7]], st.prior[0, :, [2, 3, 6, 7]]]
    fast = [st.deter[0, :, :4], st.stoch[0, :, :2], st.post[0, :, [0, 1, 4, 5]]]
    for t in range(1, n):
        steps = t in (4, 6, 10)
        for x in slow:
            assert torch.equal(x[t], x[t - 1]) != steps, (t, x)
        for x in fast:
            assert not torch.equal(x[t], x[t - 1])
    # imagination holds the idle cell as well, also through a planner's raw chain (the sample is masked in feat)
    d, s = st.deter[:, 5], st.stoch[:, 5]  # counter 2: the slow cell next steps two steps on
    feats = []
    for k in range(4):
        d = m.transition(d, s, m.transition.action_input(torch.randn(1, A)))
        s = m.sample(m.prior(d))
        feats.append(m.feat(s, d)[0, [2, 3, 8, 9, 10, 11]])  # the slow cell's z and h
    assert torch.equal(feats[0], torch.cat([st.stoch[0, 5, 2:], st.deter[0, 5, 4:8]]))
    assert torch.equal(feats[1], feats[0]) and not torch.equal(feats[2], feats[1]) and torch.equal(feats[3], feats[2])


def test_cell_as_prior_loss() -> None:
    torch.manual_seed(0)
    kw = dict(transition="clockwork", clock_periods=(1, 4), stoch=4, deter=8, hidden=8)
    m = make_rssm(A, E, cell_as_prior=0.5, **kw)
    assert isinstance(m, ClockworkRSSM) and m.extra_loss_keys == ("cell_as_prior",)
    st = m.observe(*inputs())
    loss = m.extra_losses(st)["cell_as_prior"]
    mean, std = st.post.chunk(2, -1)
    fast, slow = D.Normal(mean[..., :2], std[..., :2]), D.Normal(mean[..., 2:], std[..., 2:])
    torch.testing.assert_close(loss, 0.5 * D.kl_divergence(fast, slow).sum(-1).mean())  # KL(faster || slower)
    assert loss > 0
    loss.backward()
    for cell in m.cells:
        assert cell.post_out.weight.grad is not None and cell.post_out.weight.grad.abs().sum() > 0
    off = make_rssm(A, E, **kw)
    assert off.extra_losses(off.observe(*inputs())) == {} and off.extra_loss_keys == ()
    wm = WorldModel((E,), A, units=8, transition="clockwork", **{k: v for k, v in kw.items() if k != "transition"})
    assert "loss_cell_as_prior" not in WorldModelLoss(wm).out_keys
    with pytest.raises(ValueError, match="equal"):
        make_rssm(A, E, cell_as_prior=1.0, clock_stoch=(3, 1), **kw)


@pytest.mark.parametrize("kind", ["ssm", "rssm_ma", "clockwork"])
def test_gradients_reach_every_cell(kind: str) -> None:
    m = model(kind)
    st = m.observe(*inputs())
    (m.feat(st.stoch, st.deter).square().mean() + m.kl(st.post, st.prior).mean()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["ssm", "rssm_ma", "clockwork", "mean_only"])
def test_world_model_trains_one_step(kind: str) -> None:
    torch.manual_seed(0)
    extra = dict(cell_as_prior=1.0) if kind == "clockwork" else {}
    wm = WorldModel((E,), A, units=16, **SIZES, **KINDS[kind], **extra)
    loss = WorldModelLoss(wm, kl_scale=0.0 if kind == "mean_only" else 1.0, free_nats=0.0)
    loss.set_keys(observation="observation")
    embed, action, is_init = inputs()
    batch = TensorDict({"observation": embed, "action": action, "reward": torch.randn(B, T, 1), "is_init": is_init,
                        "terminated": torch.zeros(B, T, 1, dtype=torch.bool)}, [B, T])
    losses, states = loss(batch)
    assert set(losses.keys()) == set(loss.out_keys)
    assert ("loss_cell_as_prior" in losses.keys()) == (kind == "clockwork")
    assert states["posterior", "deter"].shape == (B, T, wm.rssm.deter)
    before = [p.detach().clone() for p in wm.rssm.parameters()]
    opt = torch.optim.Adam(wm.parameters(), lr=1e-3)
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    opt.step()
    names = [n for n, _ in wm.rssm.named_parameters()]
    changed = {n for n, b, p in zip(names, before, wm.rssm.parameters()) if not torch.equal(b, p)}
    untrained = {n for n in names if n.startswith("prior")} if kind == "mean_only" else set()  # no KL term
    assert changed == set(names) - untrained


def test_config_and_cli() -> None:
    with pytest.raises(ValueError, match="Gaussian"):
        make_rssm(A, E, transition="clockwork", latent="categorical")
    args = build_parser("x", "y").parse_args(["--preset", "dreamer_v1", "clockwork", "--model.clock_periods", "1",
                                              "4", "8", "--model.clock_stoch", "10", "10", "10"])
    m = resolve_recipe(args).model
    assert (m.transition, m.clock_periods, m.clock_stoch, m.clock_deter) == ("clockwork", [1, 4, 8], [10, 10, 10], [])
    wm = WorldModel((E,), A, units=8, stoch=30, deter=30, hidden=30, transition="clockwork",
                    clock_periods=m.clock_periods, clock_stoch=m.clock_stoch)
    assert wm.rssm.periods == [1, 4, 8] and wm.rssm.deter_sizes == [10, 10, 10]
    for bad, match in [({"model.clock_periods": [2, 4]}, "start with 1"), ({"model.clock_deter": [200]}, "1 sizes"),
                       ({"model.clock_stoch": [20, 20]}, "summing"), ({"model.cell_as_prior": 1.0}, "clockwork"),
                       ({"model.transition": "ssm", "model.latent": "categorical"}, "Gaussian")]:
        with pytest.raises(UserError, match=match):
            make_recipe("dreamer_v1", overrides=bad)
    assert make_recipe("dreamer_v1", "deterministic").model.kl_scale == 0.0


PRESET_CASES = ["ssm", "deterministic", "rssm_ma", "clockwork", "cell_as_prior"]


@pytest.mark.parametrize("variant", PRESET_CASES)
def test_preset_debug_run(tmp_path: Path, variant: str) -> None:
    first = run_recipe_here(tmp_path, "--task", "cartpole_balance", "--preset", "dreamer_v1", "dmc_proprio", variant,
                       "debug", "--run.name", "p", "--run.steps", "300", "--run.eval_every", "300",
                       "--run.save_every", "300", "--tracking.video", "false")
    assert first.returncode == 0, first.stderr[-3000:]
    out = figures(first.stdout)
    assert int(out["frames"]) == 300 and int(out["updates"]) == 2 + int(0.05 * 100)
    model_recipe = load_checkpoint(tmp_path / "runs" / "p" / "checkpoints" / "latest.pt")["recipe"]["model"]
    assert model_recipe["transition"] == {"deterministic": "rssm", "cell_as_prior": "clockwork"}.get(variant, variant)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("dreamer_rl").experiment_id])
    for key in ("train/loss/kl", "train/loss/image", "train/loss/actor", "eval/return"):
        assert key in run.data.metrics, key
    assert ("train/loss/cell_as_prior" in run.data.metrics) == (variant == "cell_as_prior")
