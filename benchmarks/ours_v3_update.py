"""Our full DreamerV3 update for the speed harness (same builder signature as ``torchrl_v3_reference``).

One update = :meth:`dreamer_rl.agent.Learner.update` on the recipe ``dreamer_v3`` + ``size12m`` (+ ``obs_loss mse``,
what the ``dmc_vision`` preset sets for pixels, as TorchRL's side does): world model, actor and critic losses, their
backward passes and the LaProp step, the slow-critic update. The image encoder/decoder is DreamerV3's with stride-2
convolutions (``conv_strided``), the variant TorchRL's ``DreamerV3ImageEncoder``/``Decoder`` implement, so both sides
run the same architecture (the author's default max-pools after stride-1 convolutions, ~4x the convolution work). The size arguments are written into the recipe, so at
``size12m_v3`` they restate the presets and at ``small_v3`` they shrink the same model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from benchmarks.checkpoint_update import context_sizes, random_batch_fn
from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe, deep_merge
from recipes.presets import PRESETS


def build_ours_v3_update(batch_size: int = 16, seq_len: int = 64, deter: int = 2048, hidden: int = 256,
                         stoch: int = 32, classes: int = 16, depth: int = 16, units: int = 256, blocks: int = 8,
                         action_dim: int = 6, horizon: int = 15, device: str | torch.device = "cpu",
                         precision: str = "fp32", compile: str = "none") -> tuple[Callable[[TensorDictBase], None], Callable[[], TensorDictBase]]:
    """``(update, make_batch)`` for our DreamerV3 at the given size; batches are stored rows ``[B, T]``.

    ``precision``: ``train.precision`` (``fp32``, or ``bf16`` autocast with float32 weights and losses);
    ``compile``: ``train.compile`` (``none``, or a ``torch.compile`` mode for the world model's steps)."""
    device = torch.device(device)
    sizes = {"model": {"deter": deter, "hidden": hidden, "stoch": stoch, "classes": classes, "cnn_depth": depth,
                       "units": units, "blocks": blocks, "obs_loss": "mse", "conv": "dreamer_v3",
                       "conv_strided": True},
             "behavior": {"horizon": horizon},
             "train": {"batch_size": batch_size, "seq_len": seq_len, "precision": precision, "compile": compile}}
    recipe = Recipe.model_validate(deep_merge(deep_merge(PRESETS["dreamer_v3"], PRESETS["size12m"]), sizes))
    torch.manual_seed(0)
    agent = build_dreamer(recipe, (3, 64, 64), action_dim).to(device)
    learner = Learner(agent, recipe, obs_key="pixels")
    make_batch = random_batch_fn("pixels", (3, 64, 64), action_dim, batch_size, seq_len, device,
                                 context_sizes(recipe, agent))

    def update(batch: TensorDictBase) -> None:
        metrics = learner.update(batch)
        update.last_losses = {k: float(v) for k, v in metrics.items() if "/loss/" in k}  # type: ignore[attr-defined]

    update.learner = learner  # type: ignore[attr-defined]
    return update, make_batch
