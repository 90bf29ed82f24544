"""CUDA checks, run where a GPU is present: ``python -m pytest -m gpu tests/test_gpu.py``.

Deselected from the default run (``-m 'not slow and not gpu'``) and skipped without CUDA. They check what only a
GPU shows: ``run.device auto`` picks CUDA, the acting policy moves observations from the CPU env to the model's
device and actions back, a full update runs on the device with finite losses and matches the CPU update's losses,
and the debug recipe from pixels trains, checkpoints and evaluates on CUDA end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from benchmarks.checkpoint_update import context_sizes, random_batch_fn
from dreamer_rl.agent import Dreamer, build_dreamer
from dreamer_rl.config import Recipe
from dreamer_rl.policy import DreamerPolicy
from dreamer_rl.training import resolve_device
from recipes.presets import PRESETS
from tests.helpers import figures, run_recipe

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_auto_device_is_cuda() -> None:
    assert resolve_device("auto").type == "cuda"


def test_policy_acts_on_cuda_and_returns_actions_on_the_env_device() -> None:
    recipe = Recipe.model_validate(PRESETS["debug"])
    agent: Dreamer = build_dreamer(recipe, (3, 64, 64), 2).cuda()
    policy = DreamerPolicy(agent, obs_key="pixels", mode="explore")
    td = TensorDict({"pixels": torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8),
                     "is_init": torch.ones(3, 1, dtype=torch.bool)}, [3])
    out = policy(td)
    assert out["action"].device.type == "cpu" and out["action"].shape == (3, 2)
    assert out["next", "recurrent", "deter"].device.type == "cpu"
    assert out["action"].abs().max() <= 1


def test_cuda_networks_match_cpu_and_a_full_update_runs() -> None:
    import copy

    from dreamer_rl.agent import Learner

    recipe = Recipe.model_validate(PRESETS["debug"])
    torch.manual_seed(0)
    cpu_agent = build_dreamer(recipe, (3, 64, 64), 2)
    cuda_agent = copy.deepcopy(cpu_agent).cuda()
    pixels = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    feat = torch.randn(4, cpu_agent.world_model.rssm.feat_dim)
    for name, fn in (("embed", lambda a, x, f: a.world_model.embed(x)),
                     ("decode", lambda a, x, f: a.world_model.decoder(f)),
                     ("reward", lambda a, x, f: a.world_model.reward(f)),
                     ("actor mode", lambda a, x, f: a.actor(f, sample=False))):
        with torch.no_grad():
            expected, got = fn(cpu_agent, pixels, feat), fn(cuda_agent, pixels.cuda(), feat.cuda()).cpu()
        torch.testing.assert_close(got, expected, rtol=1e-2, atol=1e-2, msg=name)  # cuDNN convs may use TF32

    learner = Learner(cuda_agent, recipe, obs_key="pixels")
    batch = random_batch_fn("pixels", (3, 64, 64), 2, recipe.train.batch_size, recipe.train.seq_len,
                            torch.device("cuda"), context_sizes(recipe, cuda_agent))()
    before = [p.detach().clone() for p in cuda_agent.parameters()]
    metrics = learner.update(batch)
    assert all(torch.isfinite(v).item() and v.device.type == "cuda" for v in metrics.values())
    moved = sum(not torch.equal(a, p) for a, p in zip(before, cuda_agent.parameters()))
    assert moved == len(before)


def test_debug_recipe_from_pixels_trains_and_evaluates_on_cuda(tmp_path: Path) -> None:
    args = ["--task", "cartpole_balance", "--preset", "debug", "--run.name", "gpu", "--run.device", "cuda"]
    first = run_recipe(tmp_path, *args, "--run.steps", "600")
    assert first.returncode == 0, first.stderr[-3000:]
    assert int(figures(first.stdout)["frames"]) == 600
    second = run_recipe(tmp_path, "--eval", "--checkpoint", str(tmp_path / "runs" / "gpu" / "checkpoints" /
                                                                 "latest.pt"), "--run.device", "cuda")
    assert second.returncode == 0, second.stderr[-3000:]



@pytest.mark.parametrize("algo", ["dreamer_v2", "dreamer_v3"])
def test_v2_v3_update_on_cuda_is_finite_and_free_of_host_syncs(algo: str) -> None:
    """A full V2/V3 update on CUDA: every metric finite, no host synchronisation inside (capturable)."""
    from dreamer_rl.agent import Learner
    from recipes.presets import apply_presets

    recipe = Recipe.model_validate(apply_presets([algo, "dmc_vision", "debug"]))
    torch.manual_seed(0)
    agent = build_dreamer(recipe, (3, 64, 64), 2).cuda()
    learner = Learner(agent, recipe, obs_key="pixels")
    batch = random_batch_fn("pixels", (3, 64, 64), 2, recipe.train.batch_size, recipe.train.seq_len,
                            torch.device("cuda"), context_sizes(recipe, agent))()
    learner.update(batch)  # first call: lazy initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        metrics = learner.update(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v).item() for v in metrics.values())


@pytest.mark.parametrize("algo", ["dreamer_v1", "dreamer_v3"])
def test_bf16_update_on_cuda_matches_fp32_and_runs_its_layers_in_bfloat16(algo: str) -> None:
    """``train.precision bf16`` on CUDA: every layer's output bfloat16, weights and metrics float32, the losses
    within 2% of the fp32 update's on the same weights and batch."""
    from torch import nn

    from dreamer_rl.agent import Learner
    from dreamer_rl.config import deep_merge
    from recipes.presets import apply_presets

    results, dtypes = {}, {}
    for precision in ("fp32", "bf16"):
        recipe = Recipe.model_validate(deep_merge(apply_presets([algo, "dmc_vision", "debug"]),
                                                  {"train": {"precision": precision}}))
        torch.manual_seed(0)
        agent = build_dreamer(recipe, (3, 64, 64), 2).cuda()
        learner = Learner(agent, recipe, obs_key="pixels")
        torch.manual_seed(1)
        batch = random_batch_fn("pixels", (3, 64, 64), 2, recipe.train.batch_size, recipe.train.seq_len,
                                torch.device("cuda"), context_sizes(recipe, agent))()
        seen: set[torch.dtype] = set()
        hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype)) for m in agent.modules()
                 if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
        torch.manual_seed(2)
        metrics = learner.update(batch)
        for h in hooks:
            h.remove()
        dtypes[precision] = seen
        assert all(p.dtype == torch.float32 for p in agent.parameters())
        results[precision] = {k: float(v) for k, v in metrics.items() if k.startswith("train/loss/")}
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    for k, v in results["fp32"].items():
        assert results["bf16"][k] == pytest.approx(v, rel=2e-2, abs=2e-3), k
