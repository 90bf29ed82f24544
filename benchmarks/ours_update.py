"""Our full DreamerV1 update for the speed harness (same builder signature as ``torchrl_reference``).

One update = :meth:`dreamer_rl.agent.Learner.update`: world-model loss backward + Adam step, actor loss (imagination
from all ``B*T`` posterior states, horizon ``H``) backward + Adam step, value loss backward + Adam step, each with
gradient clipping 100. Sizes map to our recipe: ``deter`` = GRU size and RSSM hidden width, ``stoch``, ``hidden`` =
MLP width (``model.units``), ``depth`` = CNN depth; actor 4 x 400, value 3 x 400, reward 2 x 400 as in the paper.
"""

from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict, TensorDictBase

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe


def build_ours_update(batch_size: int = 50, seq_len: int = 50, deter: int = 200, stoch: int = 30, hidden: int = 400,
                      depth: int = 32, action_dim: int = 6, horizon: int = 15, device: str | torch.device = "cpu",
                      precision: str = "fp32", compile: str = "none") -> tuple[Callable[[TensorDictBase], None], Callable[[], TensorDictBase]]:
    """``(update, make_batch)`` for our DreamerV1 at the given size; batches are stored rows ``[B, T]``.

    ``precision``: ``train.precision`` (``fp32``, or ``bf16`` autocast with float32 weights and losses);
    ``compile``: ``train.compile`` (``none``, or a ``torch.compile`` mode for the world model's steps)."""
    device = torch.device(device)
    recipe = Recipe.model_validate({
        "model": {"deter": deter, "stoch": stoch, "hidden": deter, "units": hidden, "cnn_depth": depth},
        "behavior": {"horizon": horizon},
        "train": {"batch_size": batch_size, "seq_len": seq_len, "precision": precision, "compile": compile},
    })
    torch.manual_seed(0)
    agent = build_dreamer(recipe, (3, 64, 64), action_dim).to(device)
    learner = Learner(agent, recipe, obs_key="pixels")

    def make_batch() -> TensorDictBase:
        B, T = batch_size, seq_len
        is_init = torch.zeros(B, T, 1, dtype=torch.bool)
        is_init[:, 0] = True
        return TensorDict({
            "pixels": torch.randint(0, 256, (B, T, 3, 64, 64), dtype=torch.uint8),
            "action": torch.rand(B, T, action_dim) * 2 - 1,
            "reward": torch.randn(B, T, 1),
            "is_init": is_init,
            "terminated": torch.zeros(B, T, 1, dtype=torch.bool),
        }, [B, T]).to(device)

    def update(batch: TensorDictBase) -> None:
        metrics = learner.update(batch)
        update.last_losses = {k: float(v) for k, v in metrics.items() if "/loss/" in k}  # type: ignore[attr-defined]

    return update, make_batch
