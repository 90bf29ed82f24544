"""The standalone example runs: our losses with a plain TorchRL collector and replay buffer."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path


def test_standalone_losses_example_runs() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "standalone_losses.py"
    spec = importlib.util.spec_from_file_location("standalone_losses", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(iterations=3, frames_per_batch=100)
    assert all(math.isfinite(v) for v in out.values())
    assert out["stored_rows"] == 3 * 100 + 2  # 300 steps of 200-step episodes: + 2 reset rows
