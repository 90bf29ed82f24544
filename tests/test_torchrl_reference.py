"""The TorchRL reference updates (DreamerV1 and DreamerV3) used by the speed benchmark actually train."""

from __future__ import annotations

import importlib.util
import math
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
    ALGORITHMS,
    IMPLEMENTATIONS,
    ImplementationNotAvailable,
    SIZES,
    check_pairing,
    load_builder,
    time_update,
)
from benchmarks.torchrl_reference import build_torchrl_update  # noqa: E402
from benchmarks.torchrl_v3_reference import build_torchrl_v3_update  # noqa: E402

TINY = dict(batch_size=3, seq_len=4, deter=16, stoch=4, hidden=16, depth=4,
            action_dim=6, horizon=3)
TINY_V3 = dict(batch_size=2, seq_len=4, deter=16, hidden=8, stoch=2, classes=4,
               depth=2, units=8, blocks=2, action_dim=2, horizon=2)


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


def test_torchrl_v3_update_steps_world_model_actor_and_value():
    torch.manual_seed(0)
    # lr warm-up off: TorchRL's DreamerV3Optimizer starts its warm-up at lr 0
    update, make_batch = build_torchrl_v3_update(**TINY_V3, lr_warmup=0)
    batch = make_batch()
    assert batch.batch_size == torch.Size([2, 4])
    assert batch["next", "pixels"].shape == (2, 4, 3, 64, 64)
    assert batch["next", "pixels"].dtype == torch.uint8

    modules = {
        "world_model": update.world_model,
        "actor": update.actor_model,
        "value": update.value_model,
    }
    # one optimiser over exactly the world model, actor and value parameters
    owned = {id(p) for m in modules.values() for p in m.parameters()}
    stepped = [p for g in update.optimizer.param_groups for p in g["params"]]
    assert {id(p) for p in stepped} == owned and len(stepped) == len(owned)

    before = {k: _snapshot(m) for k, m in modules.items()}
    # two updates: the reward / value output layers start at zero (DreamerV3's
    # init), so their hidden layers get a gradient from the second update on
    update(batch)
    update(make_batch())
    assert set(update.last_losses) >= {
        "loss_model_reco", "loss_model_reward", "loss_model_dynamic",
        "loss_model_representation", "loss_model_continue", "loss_actor",
        "loss_value", "loss_replay_value",
    }
    for name, loss in update.last_losses.items():
        assert torch.isfinite(loss).all(), name
    for key, module in modules.items():
        unchanged = set(before[key]) - _changed(module, before[key])
        assert not unchanged, f"{key}: parameters did not move: {sorted(unchanged)}"
    # imagination held the world model out only while it ran
    assert all(p.requires_grad for p in update.world_model.parameters())


def test_harness_pairs_implementations_with_their_algorithm_sizes():
    assert SIZES["size12m_v3"] == dict(
        batch_size=16, seq_len=64, deter=2048, hidden=256, stoch=32, classes=16,
        depth=16, units=256, blocks=8, action_dim=6, horizon=15,
    )
    for algo, (impls, sizes) in ALGORITHMS.items():
        assert set(impls) <= set(IMPLEMENTATIONS), algo
        for impl in impls:
            for size in sizes:
                check_pairing(impl, size)
    with pytest.raises(ImplementationNotAvailable, match="dreamer_v3 size"):
        check_pairing("torchrl", "small_v3")
    with pytest.raises(ImplementationNotAvailable, match="dreamer_v1 size"):
        check_pairing("ours_v3", "paper")


def test_ours_v3_update_runs_at_a_tiny_size():
    update, make_batch = load_builder("ours_v3")(**TINY_V3)
    res = time_update(update, make_batch, warmup=0, iters=1)
    assert res["sec_per_update"] > 0
    assert update.last_losses
    assert all(math.isfinite(v) for v in update.last_losses.values()), update.last_losses
