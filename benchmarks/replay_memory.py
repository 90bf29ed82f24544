"""Replay memory per env step: uint8 frames stored once per step, plus the small fields.

Fills a pixel replay buffer (``make_replay_buffer``: TorchRL ``LazyMemmapStorage`` + ``SliceSampler``) with
``[3, 64, 64]`` uint8 frames through :class:`dreamer_rl.replay.StepRowWriter`, from fake collector batches in
TorchRL's transition layout (``pixels`` and ``("next", "pixels")`` both present, as a collector yields them),
with episodes of 500 steps (DMC's 1000 frames at action repeat 2), and measures the memmap files::

    python -m benchmarks.replay_memory [--capacity 20000] [--episode-len 500] [--envs 1]

Prints a few lines, then last ``bytes_per_step=<int>`` (stored bytes / env steps written) and
``frame_bytes=12288`` (one ``3 x 64 x 64`` uint8 frame). A transition-style buffer that keeps ``pixels`` and
``("next", "pixels")`` would be above ``2 * frame_bytes``; one that kept float32 frames above ``4 *``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from tensordict import TensorDict

from dreamer_rl.replay import StepRowWriter, make_replay_buffer, sample_sequences, stored_bytes

FRAME_SHAPE = (3, 64, 64)
FRAME_BYTES = 3 * 64 * 64
ACTION_DIM = 6  # cheetah / walker


class FakePixelCollector:
    """Batches ``[E, N]`` (or ``[N]`` for one env) of transitions whose frames encode (env, step)."""

    def __init__(self, envs: int, episode_len: int) -> None:
        self.envs, self.episode_len = envs, episode_len
        self.t = [0] * envs
        base = torch.arange(FRAME_BYTES, dtype=torch.int64).view(FRAME_SHAPE)
        self.frames = [((base + 7 * s) % 256).to(torch.uint8) for s in range(256)]  # 256 distinct frames

    def _env(self, e: int, n: int) -> TensorDict:
        ts = []
        for _ in range(n):
            ts.append(self.t[e])
            self.t[e] = (self.t[e] + 1) % self.episode_len
        t = torch.tensor(ts)
        end = (t + 1 == self.episode_len).unsqueeze(-1)
        return TensorDict(
            {
                "pixels": torch.stack([self.frames[(s + e) % 256] for s in ts]),
                "action": torch.rand(n, ACTION_DIM) * 2 - 1,
                "is_init": (t == 0).unsqueeze(-1),
                "next": {
                    "pixels": torch.stack([self.frames[(s + 1 + e) % 256] for s in ts]),
                    "reward": torch.rand(n, 1),
                    "terminated": torch.zeros(n, 1, dtype=torch.bool),
                    "truncated": end,  # DMC episodes end on the time limit
                    "done": end.clone(),
                },
            },
            batch_size=[n],
        )

    def batch(self, n: int) -> TensorDict:
        if self.envs == 1:
            return self._env(0, n)
        return torch.stack([self._env(e, n) for e in range(self.envs)], 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=20_000, help="buffer capacity in rows")
    parser.add_argument("--episode-len", type=int, default=500, help="env steps per episode")
    parser.add_argument("--envs", type=int, default=1, help="parallel envs in a collector batch")
    parser.add_argument("--steps-per-batch", type=int, default=100, help="env steps per env per collector batch")
    parser.add_argument("--scratch-dir", default=None, help="where the memmap files go (default: a temp dir)")
    args = parser.parse_args()
    logging.getLogger("torchrl").setLevel(logging.WARNING)

    scratch_root = Path(args.scratch_dir) if args.scratch_dir else Path(tempfile.mkdtemp(prefix="replay_memory_"))
    scratch = scratch_root / "replay"
    collector = FakePixelCollector(args.envs, args.episode_len)
    writer = StepRowWriter(obs_keys=("pixels",))
    buffer = make_replay_buffer(capacity=args.capacity, seq_len=64, batch_size=16, scratch_dir=scratch,
                                fragmented=args.envs > 1)

    # fill without wrapping: each batch adds envs * steps env steps plus at most envs reset rows per episode start
    per_batch = args.envs * args.steps_per_batch
    worst_rows = per_batch + args.envs * (args.steps_per_batch // args.episode_len + 1)
    steps = 0
    start = time.perf_counter()
    while len(buffer) + worst_rows <= args.capacity:
        buffer.extend(writer(collector.batch(args.steps_per_batch)))
        steps += per_batch
    fill_s = time.perf_counter() - start
    rows = len(buffer)
    total = stored_bytes(buffer)

    data = buffer.storage._storage  # noqa: SLF001 - the memmap TensorDict, to list its files
    start = time.perf_counter()
    batch = sample_sequences(buffer, 16, 64, "cpu")
    sample_ms = (time.perf_counter() - start) * 1e3
    assert batch["pixels"].dtype == torch.uint8

    print(f"buffer: capacity {args.capacity} rows, {args.envs} env(s), episodes of {args.episode_len} steps, "
          f"files in {scratch}")
    print(f"wrote {steps} env steps as {rows} rows ({rows - steps} reset rows) in {fill_s:.1f} s")
    print("per-row bytes by key (from the memmap files):")
    apparent = allocated = 0
    for key in sorted(data.keys(include_nested=True, leaves_only=True), key=str):
        leaf = data.get(key)
        st = os.stat(leaf.filename)
        apparent += st.st_size
        allocated += st.st_blocks * 512
        print(f"  {str(key):<12} {str(leaf.dtype):<14} {str(tuple(leaf.shape[1:])):<14} "
              f"{st.st_size // leaf.shape[0]:>6} B/row")
    small = sum(os.path.getsize(data.get(k).filename) // args.capacity for k in data.keys() if k != "pixels")
    print(f"small fields: {small} B/row; stored: {total} B for {rows} rows = {total / rows:.1f} B/row")
    print(f"files: {apparent / 2**20:.1f} MiB apparent (sized for capacity), {allocated / 2**20:.1f} MiB allocated")
    print(f"one 16 x 64 sample: {sample_ms:.1f} ms")
    del batch, data, buffer
    if not args.scratch_dir:
        shutil.rmtree(scratch_root, ignore_errors=True)
    print(f"bytes_per_step={round(total / steps)}")
    print(f"frame_bytes={FRAME_BYTES}")


if __name__ == "__main__":
    main()
