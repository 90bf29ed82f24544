"""examples/dreamer_v3.py runs as a user runs it: DreamerV3 with a plain TorchRL collector and replay buffer."""

from __future__ import annotations

import math
import subprocess
import sys

from tests.helpers import REPO, recipe_env


def test_dreamer_v3_example_runs() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "dreamer_v3.py")], cwd=REPO, env=recipe_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [dict(f.split("=", 1) for f in line.split()) for line in proc.stdout.splitlines()
             if line.startswith("frames=")]
    assert [int(line["frames"]) for line in lines] == [100, 200, 300]  # 3 batches of 100 steps, V3 action repeat 1
    losses = {k: float(v) for k, v in lines[-1].items() if k.startswith("loss/")}
    expected = {"loss/image", "loss/reward", "loss/dyn", "loss/rep", "loss/pcont", "loss/actor", "loss/value"}
    assert expected <= set(losses)
    assert all(math.isfinite(v) for v in losses.values()), losses
