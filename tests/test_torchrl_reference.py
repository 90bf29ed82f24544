"""The TorchRL reference update used by the speed benchmark actually trains."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

# `benchmarks/` is not an installed package; torchrl's wheel also ships a
# `benchmarks` namespace package in site-packages, so put the repo root first.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks.speed_harness import (  # noqa: E402
    ImplementationNotAvailable,
    SIZES,
    load_builder,
    time_update,
)
from benchmarks.torchrl_reference import build_torchrl_update  # noqa: E402

TINY = dict(batch_size=3, seq_len=4, deter=16, stoch=4, hidden=16, depth=4,
            action_dim=6, horizon=3)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}


def test_torchrl_update_steps_all_three_optimizers():
    torch.manual_seed(0)
    update, make_batch = build_torchrl_update(**TINY)
    batch = make_batch()
    assert batch.batch_size == torch.Size([3, 4])
    pixels = batch["next", "pixels"]
    assert pixels.shape == (3, 4, 3, 64, 64) and pixels.dtype == torch.float32
    assert 0.0 <= pixels.min() and pixels.max() <= 1.0

    modules = {
        "world_model": update.world_model,
        "actor": update.actor_model,
        "value": update.value_model,
    }
    before = {k: _snapshot(m) for k, m in modules.items()}
    update(batch)

    losses = update.last_losses
    assert set(losses) == {"loss_model_kl", "loss_model_reco", "loss_model_reward",
                           "loss_actor", "loss_value"}
    for name, loss in losses.items():
        assert torch.isfinite(loss).all(), name

    for key, module in modules.items():
        changed = _changed(module, before[key])
        assert changed, f"{key}: no parameter changed, its optimizer did not step"
        # every parameter that received a non-zero gradient was updated
        # (the prior head can get an all-zero grad when the KL sits under the
        # free-nats clamp, so Adam leaves it exactly in place)
        for n, p in module.named_parameters():
            if p.grad is not None and p.grad.abs().sum() > 0:
                assert n in changed, f"{key}.{n} had a gradient but did not move"
    # actor and value parameters were each stepped on their own loss
    assert all(p.grad is not None for p in update.actor_model.parameters())
    assert all(p.grad is not None for p in update.value_model.parameters())
    # the imagination must not have left world-model params frozen
    assert all(p.requires_grad for p in update.world_model.parameters())


def test_harness_times_and_reports_memory():
    update, make_batch = build_torchrl_update(**TINY)
    res = time_update(update, make_batch, warmup=0, iters=1)
    assert res["sec_per_update"] > 0 and len(res["times_s"]) == 1
    assert res["peak_rss_mib"] >= res["rss_before_first_update_mib"] > 0
    assert set(SIZES) >= {"paper", "small"}


def test_harness_unknown_or_missing_impl_is_clear():
    with pytest.raises(ImplementationNotAvailable, match="unknown implementation"):
        load_builder("nope")
    if importlib.util.find_spec("benchmarks.ours_update") is None:
        with pytest.raises(ImplementationNotAvailable, match="does not exist yet"):
            load_builder("ours")
