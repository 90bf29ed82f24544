"""DreamerV3's online replay queue: every stored row is trained on at least once, soon after it arrives.

The authors' replay (``replay.online: True`` in dreamerv3 ``configs.yaml``) cuts each env's stream of rows into
consecutive, non-overlapping windows of ``T`` rows. A window joins a FIFO queue as soon as its last row is stored,
and a training batch takes its first slices from that queue before sampling the rest uniformly. Uniform replay
alone samples a row about ``ratio`` times on average but some rows never; with the queue each row is in at least
one training slice, the first of them right after it was collected.

At our train ratios (an update every few env steps, ``B x T`` rows per update) a window completes every ``T /
steps_per_update`` updates, so most batches hold ``B`` uniform slices and a few hold ``B - 1`` plus one fresh
window. The batch keeps its shape ``[B, T]``: the queued windows replace its first rows (the uniform sample is
drawn in full, so TorchRL's prefetching still serves it).

The queue lives in memory only: a resumed run starts with an empty queue and new streams (rows written before
the checkpoint are still sampled uniformly), as the authors' replay does after a restart.
"""

from __future__ import annotations

from collections import deque

import torch
from tensordict import TensorDictBase
from torchrl.data import TensorDictReplayBuffer

__all__ = ["OnlineQueue"]


class OnlineQueue:
    """Windows of ``seq_len`` consecutive stream rows, queued as they complete (DreamerV3 ``replay.online``).

    Use with rows from :class:`~dreamer_rl.replay_rows.StepRowWriter` ``(streams=True)``::

        slots = buffer.extend(rows)                  # storage slots of the rows just written
        queue.note(rows, slots)                      # completed windows join the queue
        batch = sample_sequences(buffer, B, T, dev)  # [B, T] uniform slices
        batch = queue.fill(buffer, batch)            # first k <= B slices: queued windows, oldest first

    :param seq_len: ``T``, the rows of one window (the buffer's slice length).
    :param stream_key: the row key naming the stream (an env's rows across episodes), ``"stream"``.
    :param step_key: the row key of the position in the stream, ``"stream_step"``.
    """

    def __init__(self, seq_len: int, stream_key: str = "stream", step_key: str = "stream_step") -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.seq_len, self.stream_key, self.step_key = seq_len, stream_key, step_key
        self._pending: dict[int, torch.Tensor] = {}  # stream id -> slots [n < T] of its unqueued rows, in order
        self._first_step: dict[int, int] = {}  # stream id -> stream step of its first pending row
        self._next_step: dict[int, int] = {}  # stream id -> the stream step its next row must have
        self.queue: deque[tuple[torch.Tensor, int, int]] = deque()  # (slots [T], stream id, first stream step)
        self.served = 0  # windows handed to batches
        self.dropped = 0  # windows overwritten in the storage before their turn

    def __len__(self) -> int:
        return len(self.queue)

    def note(self, rows: TensorDictBase, slots: torch.Tensor) -> None:
        """Record rows just written to ``slots`` (``buffer.extend(rows)``'s return, one slot per row).

        Rows of one stream must arrive in stream order (as :class:`StepRowWriter` writes them); a stream whose
        next row does not follow its last pending one (a restored writer reuses no id, so this means rows were
        lost) starts over from that row.
        """
        if self.stream_key not in rows.keys() or self.step_key not in rows.keys():
            raise KeyError(f"OnlineQueue needs {self.stream_key!r} and {self.step_key!r} in the rows; write them "
                           "with StepRowWriter(streams=True)")
        streams = rows.get(self.stream_key).reshape(-1).cpu()
        steps = rows.get(self.step_key).reshape(-1).cpu()
        slots = torch.as_tensor(slots).reshape(-1).cpu().to(torch.long)
        if slots.numel() != streams.numel():
            raise ValueError(f"got {slots.numel()} slots for {streams.numel()} rows")
        for sid in torch.unique(streams).tolist():
            mine = (streams == sid).nonzero().squeeze(-1)
            self._extend_stream(int(sid), slots[mine], steps[mine])

    def _extend_stream(self, sid: int, slots: torch.Tensor, steps: torch.Tensor) -> None:
        T = self.seq_len
        pending = self._pending.get(sid)
        if pending is None or int(steps[0]) != self._next_step[sid]:  # a new stream, or rows went missing
            pending, self._first_step[sid] = slots[:0], int(steps[0])
        self._next_step[sid] = int(steps[-1]) + 1
        pending = torch.cat([pending, slots])
        full = pending.numel() // T
        for w in range(full):
            self.queue.append((pending[w * T:(w + 1) * T], sid, self._first_step[sid] + w * T))
        self._pending[sid] = pending[full * T:]
        self._first_step[sid] += full * T

    def take(self, buffer: TensorDictReplayBuffer, k: int) -> torch.Tensor:
        """Pop up to ``k`` queued windows still intact in ``buffer`` -> storage slots ``[k', T]`` (``k' <= k``).

        A window whose rows were overwritten since (a full circular buffer wrapped over them) is dropped, as the
        authors' replay skips a queued item that was evicted.
        """
        storage = buffer.storage
        data = storage._storage if storage.initialized else None  # noqa: SLF001 - TorchRL keeps it private
        out: list[torch.Tensor] = []
        while self.queue and len(out) < k:
            window, sid, first = self.queue.popleft()
            if data is not None:
                stored_sid = data.get(self.stream_key)[window].as_subclass(torch.Tensor).reshape(-1)
                stored_step = data.get(self.step_key)[window].as_subclass(torch.Tensor).reshape(-1)
                expect = torch.arange(first, first + self.seq_len)
                if not (bool((stored_sid == sid).all()) and torch.equal(stored_step.cpu(), expect)):
                    self.dropped += 1
                    continue
            out.append(window)
        self.served += len(out)
        return torch.stack(out) if out else torch.empty(0, self.seq_len, dtype=torch.long)

    def fill(self, buffer: TensorDictReplayBuffer, batch: TensorDictBase) -> TensorDictBase:
        """Replace the first slices of a ``[B, T]`` sampled batch with queued windows (oldest first), in place.

        The windows' rows are read from ``buffer``'s storage with the same keys and dtypes as the sample, and
        ``"index"`` gets their slots, so code that writes back by index (:func:`~dreamer_rl.replay.write_context`)
        sees where each row came from. Returns ``batch``.
        """
        if batch.batch_dims != 2 or batch.shape[1] != self.seq_len:
            raise ValueError(f"fill needs a [B, {self.seq_len}] batch, got {tuple(batch.shape)}")
        windows = self.take(buffer, batch.shape[0])
        k = windows.shape[0]
        if not k:
            return batch
        rows = buffer.storage[windows.reshape(-1)]
        rows = rows.reshape(k, self.seq_len)
        index = batch.get("index", None)
        for key in batch.keys(include_nested=True, leaves_only=True):
            if key == "index":
                continue
            value = rows.get(key)
            if isinstance(value, torch.Tensor):
                value = value.as_subclass(torch.Tensor)
            target = batch.get(key)
            target[:k] = value.to(target.device, target.dtype).reshape(target[:k].shape)
        if index is not None:
            index[:k] = windows.to(index.device, index.dtype).reshape(index[:k].shape)
        return batch
