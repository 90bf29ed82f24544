"""The RSSM's TensorDict modules give exactly the tensors of the plain RSSM functions they wrap, and compose."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential

from dreamer_rl.imagine import imagine
from dreamer_rl.nets import TanhNormalActor
from dreamer_rl.rssm import RSSM
from dreamer_rl.rssm_modules import (EncoderModule, ImagineModule, RSSMPosteriorModule, RSSMPriorModule,
                                     RSSMRolloutModule, join_stats, split_stats)
from dreamer_rl.world_model import WorldModel

A, E, OBS = 2, 8, 5
KINDS = {
    "gaussian_gru": dict(stoch=4, deter=16, hidden=8),
    "categorical_block_gru": dict(stoch=4, deter=16, hidden=8, latent="categorical", classes=3, cell="block_gru",
                                  blocks=4, norm="rms", unimix=0.01, prior_layers=2),
}


@pytest.fixture(params=list(KINDS))
def rssm(request) -> RSSM:
    torch.manual_seed(0)
    return RSSM(action_dim=A, embed_dim=E, **KINDS[request.param])


def _start(rssm: RSSM, n: int = 3) -> TensorDict:
    g = torch.Generator().manual_seed(1)
    return TensorDict({"state": torch.randn(n, rssm.stoch, generator=g),
                       "belief": torch.randn(n, rssm.deter, generator=g),
                       "action": torch.rand(n, A, generator=g) * 2 - 1,
                       ("next", "encoded_latents"): torch.randn(n, E, generator=g)}, batch_size=[n])


def _stats(rssm: RSSM, td: TensorDict, which: str) -> torch.Tensor:
    keys = [("next", f"{which}_mean"), ("next", f"{which}_std")] if rssm.latent == "gaussian" else \
        [("next", f"{which}_logits")]
    return join_stats(rssm, *(td.get(k) for k in keys))


def test_prior_module_is_img_step(rssm: RSSM) -> None:
    td = _start(rssm)
    prior = RSSMPriorModule(rssm)
    assert isinstance(prior, TensorDictModule)
    assert prior.in_keys == ["state", "belief", "action"]
    torch.manual_seed(5)
    out = prior(td.clone())
    torch.manual_seed(5)
    deter, stoch = rssm.img_step(td["belief"], td["state"], td["action"])
    assert torch.equal(out["next", "belief"], deter) and torch.equal(out["next", "state"], stoch)
    assert torch.equal(_stats(rssm, out, "prior"), rssm.prior(deter))
    if rssm.latent == "categorical":
        assert out["next", "prior_logits"].shape == (3, rssm.variables, rssm.classes)  # TorchRL V3's shape
    else:
        assert out["next", "prior_std"].shape == (3, rssm.variables)
    mode = RSSMPriorModule(rssm, sample=False)(td.clone())
    assert torch.equal(mode["next", "state"], rssm.img_step(td["belief"], td["state"], td["action"], sample=False)[1])


def test_posterior_module_is_posterior_and_sample(rssm: RSSM) -> None:
    td = _start(rssm)
    td["next", "belief"] = td["belief"]
    post = RSSMPosteriorModule(rssm)
    assert post.in_keys == [("next", "belief"), ("next", "encoded_latents")]
    torch.manual_seed(6)
    out = post(td.clone())
    torch.manual_seed(6)
    stats = rssm.posterior(td["belief"], rssm.post_in_embed(td["next", "encoded_latents"]))
    assert torch.equal(_stats(rssm, out, "posterior"), stats)
    assert torch.equal(out["next", "state"], rssm.sample(stats))


def test_transition_then_posterior_is_obs_step(rssm: RSSM) -> None:
    """Prior in mode (no RNG) + posterior = obs_step's filtering update, same draws."""
    td = _start(rssm)
    seq = TensorDictSequential(RSSMPriorModule(rssm, sample=False), RSSMPosteriorModule(rssm))
    torch.manual_seed(7)
    out = seq(td.clone())
    torch.manual_seed(7)
    deter, stoch = rssm.obs_step(td["belief"], td["state"], td["action"], td["next", "encoded_latents"])
    assert torch.equal(out["next", "belief"], deter) and torch.equal(out["next", "state"], stoch)


def test_key_overrides_and_errors(rssm: RSSM) -> None:
    prior = RSSMPriorModule(rssm, in_keys=[("s", "z"), ("s", "h"), "a"],
                            out_keys=[*[("p", str(i)) for i in range(len(split_stats(rssm, rssm.prior(
                                torch.zeros(1, rssm.deter)))))], ("n", "z"), ("n", "h")])
    td = TensorDict({("s", "z"): torch.zeros(2, rssm.stoch), ("s", "h"): torch.zeros(2, rssm.deter),
                     "a": torch.zeros(2, A)}, [2])
    out = prior(td)
    assert out["n", "h"].shape == (2, rssm.deter) and ("p", "0") in out.keys(True)
    with pytest.raises(ValueError, match="expected 3 keys"):
        RSSMPriorModule(rssm, in_keys=["state", "belief"])
    other = RSSM(action_dim=A, embed_dim=E, stoch=4, deter=16, hidden=8)
    with pytest.raises(ValueError, match="same RSSM"):
        RSSMRolloutModule(RSSMPriorModule(rssm), RSSMPosteriorModule(other))


def _rows(rssm: RSSM, b: int = 2, t: int = 6) -> TensorDict:
    """Stored-row-like inputs [B, T]: a reset at t=0 for every sequence and one mid-sequence for the first."""
    g = torch.Generator().manual_seed(2)
    is_init = torch.zeros(b, t, 1, dtype=torch.bool)
    is_init[:, 0], is_init[0, 3] = True, True
    return TensorDict({"observation": torch.randn(b, t, OBS, generator=g),
                       "action": torch.rand(b, t, A, generator=g) * 2 - 1,
                       "is_init": is_init}, batch_size=[b, t])


def _world_model(rssm_kind: str) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel((OBS,), A, units=E, **KINDS[rssm_kind])


@pytest.mark.parametrize("kind", list(KINDS))
def test_rollout_equals_observe(kind: str) -> None:
    wm = _world_model(kind)
    rssm = wm.rssm
    prior, post = RSSMPriorModule(rssm), RSSMPosteriorModule(rssm)
    rollout = RSSMRolloutModule(prior, post)
    assert rollout.in_keys == ["state", "belief", "action", ("next", "encoded_latents"), "is_init"]
    # encoder on the rows' own observation (row t: o_t and the action a_{t-1} that led to it), then filter
    model = TensorDictSequential(EncoderModule(wm, in_keys=["observation"]), rollout)
    rows = _rows(rssm)
    torch.manual_seed(3)
    out = model(rows.clone())
    torch.manual_seed(3)
    states = wm.observe(rows["observation"], rows["action"], rows["is_init"])
    assert out.shape == (2, 6)
    assert torch.equal(out["next", "belief"], states.deter) and torch.equal(out["next", "state"], states.stoch)
    assert torch.equal(_stats(rssm, out, "prior"), states.prior)
    assert torch.equal(_stats(rssm, out, "posterior"), states.post)
    assert torch.equal(out["action"], rows["action"] * ~rows["is_init"])  # as consumed: zeroed at resets
    # the state before each step: the previous posterior state, zeroed at resets
    assert torch.equal(out["belief"][:, 1:3], states.deter[:, :2]) and torch.equal(out["state"][:, 4:],
                                                                                    states.stoch[:, 3:-1])
    assert not out["belief"][0, 3].any() and not out["state"][:, 0].any()


@pytest.mark.parametrize("kind", list(KINDS))
def test_rollout_agrees_with_step_modules(kind: str) -> None:
    """Teacher-forced with the rollout's own samples, the per-step modules give its beliefs and stats."""
    wm = _world_model(kind)
    rssm = wm.rssm
    prior, post = RSSMPriorModule(rssm), RSSMPosteriorModule(rssm)
    td = _rows(rssm)
    td["next", "encoded_latents"] = wm.embed(td["observation"])
    g = torch.Generator().manual_seed(4)
    td["state"] = torch.randn(2, 6, rssm.stoch, generator=g)
    td["belief"] = torch.randn(2, 6, rssm.deter, generator=g)
    td["is_init"][:, 0] = False  # start from the given state
    out = RSSMRolloutModule(prior, post)(td.clone())
    step = TensorDictSequential(prior, post)
    for t in range(6):
        one = out[:, t].select("state", "belief", "action", ("next", "encoded_latents"))
        one = step(one)
        torch.testing.assert_close(one["next", "belief"], out["next", "belief"][:, t])
        torch.testing.assert_close(_stats(rssm, one, "prior"), _stats(rssm, out, "prior")[:, t])
        torch.testing.assert_close(_stats(rssm, one, "posterior"), _stats(rssm, out, "posterior")[:, t])
    torch.testing.assert_close(out["belief"][:, 0], td["belief"][:, 0])


def test_rollout_without_initial_state_or_resets(rssm: RSSM) -> None:
    g = torch.Generator().manual_seed(5)
    td = TensorDict({"action": torch.randn(2, 3, 4, A, generator=g),
                     ("next", "encoded_latents"): torch.randn(2, 3, 4, E, generator=g)}, batch_size=[2, 3, 4])
    torch.manual_seed(8)
    rollout = RSSMRolloutModule(RSSMPriorModule(rssm), RSSMPosteriorModule(rssm), reset_key=None)
    assert None not in rollout.in_keys
    out = rollout(td)
    torch.manual_seed(8)
    states = rssm.observe(td["next", "encoded_latents"].reshape(6, 4, E), td["action"].reshape(6, 4, A),
                          torch.zeros(6, 4, 1, dtype=torch.bool))
    assert torch.equal(out["next", "state"], states.stoch.reshape(2, 3, 4, -1))


def test_imagine_module_equals_imagine(rssm: RSSM) -> None:
    torch.manual_seed(0)
    actor = TanhNormalActor(rssm.feat_dim, A, units=8, layers=1)
    start = TensorDict({"state": torch.randn(2, 3, rssm.stoch), "belief": torch.randn(2, 3, rssm.deter)}, [2, 3])
    module = ImagineModule(rssm, actor, horizon=4)
    torch.manual_seed(9)
    out = module(start)
    torch.manual_seed(9)
    deters, stochs, actions = imagine(rssm, actor, start["belief"].reshape(6, -1), start["state"].reshape(6, -1), 4)
    assert out.shape == (2, 3, 4)
    assert torch.equal(out["state"][:, :, 0], start["state"]) and torch.equal(out["belief"][:, :, 0], start["belief"])
    assert torch.equal(out["next", "belief"].reshape(6, 4, -1), deters[1:].transpose(0, 1))
    assert torch.equal(out["next", "state"].reshape(6, 4, -1), stochs[1:].transpose(0, 1))
    assert torch.equal(out["action"].reshape(6, 4, -1), actions.transpose(0, 1))
    assert torch.equal(out["state"][..., 1:, :], out["next", "state"][..., :-1, :])  # TorchRL's rollout layout
    # gradients reach the actor through the dynamics
    out["next", "belief"].sum().backward()
    assert all(p.grad is not None for p in actor.parameters())


def test_step_sequence_composes(rssm: RSSM) -> None:
    """Encoder -> prior -> posterior in one TensorDictSequential on TorchRL's transition layout."""
    torch.manual_seed(0)
    wm = _world_model("gaussian_gru" if rssm.latent == "gaussian" else "categorical_block_gru")
    seq = TensorDictSequential(EncoderModule(wm), RSSMPriorModule(wm.rssm), RSSMPosteriorModule(wm.rssm))
    assert set(seq.in_keys) == {"state", "belief", "action", ("next", "observation")}
    td = TensorDict({"state": torch.zeros(3, wm.rssm.stoch), "belief": torch.zeros(3, wm.rssm.deter),
                     "action": torch.zeros(3, A), ("next", "observation"): torch.randn(3, OBS)}, [3])
    out = seq(td)
    for key in seq.out_keys:
        assert key in out.keys(True), key
    assert out["next", "state"].shape == (3, wm.rssm.stoch)
