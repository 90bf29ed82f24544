"""Replay: collector transitions -> stored rows -> TorchRL memmap buffer -> [B, T] training sequences.

The stored-row convention (the project's time alignment)
-------------------------------------------------------
A stored row ``t`` describes *arriving at* observation ``o_t``:

================  =====================  ===========================================================
key               dtype, shape           meaning
================  =====================  ===========================================================
``pixels``        uint8 ``[3, H, W]``    ``o_t`` as an image (stored once, never as ``("next", ...)``)
``observation``   float32 ``[D]``        ``o_t`` as a vector (either or both obs keys, see ``obs_keys``)
``action``        float32 ``[A]``        ``a_{t-1}``, the action whose outcome is ``o_t``; zeros on an
                                         ``is_init`` row
``reward``        float32 ``[1]``        ``r_t``, received together with ``o_t``; 0 on an ``is_init`` row
``is_init``       bool ``[1]``           ``o_t`` is the first observation of an episode (after reset)
``terminated``    bool ``[1]``           ``o_t`` is terminal: no continuation (the continue target is 0)
``truncated``     bool ``[1]``           the episode was cut by a time limit at ``o_t`` (continue
                                         target stays 1)
``episode``       int64 ``[]``           global episode index, unique over the buffer's life
                                         (the :class:`SliceSampler` ``traj_key``)
``step_count``    int64 ``[1]``          position of the row in its stored episode: 0 on the reset row
                                         (the ``step_key`` of the fragmented sampler, TorchRL's name)
``context_deter`` float16 ``[D]``        only with replay context (``StepRowWriter(context=True)``):
``context_stoch`` float16 ``[S]``        the model state ``(h_{t-1}, z_{t-1})`` row ``t``'s filter step
                                         starts from; zeros on an ``is_init`` row
================  =====================  ===========================================================

Every observation is stored exactly once: the reset observation and every next observation.

Example: a 3-step episode (reset to ``o0``; act ``a0, a1, a2``; receive ``(o1, r1), (o2, r2), (o3, r3)``;
``o3`` is terminal) as a TorchRL collector yields it (time along the batch dim)::

    i | pixels  action  is_init | next.pixels  next.reward  next.terminated
    0 |  o0      a0      True   |    o1           r1           False
    1 |  o1      a1      False  |    o2           r2           False
    2 |  o2      a2      False  |    o3           r3           True

and the 4 rows :class:`StepRowWriter` (in :mod:`dreamer_rl.replay_rows`) stores for it::

    t | pixels  action  reward  is_init  terminated  truncated  episode  step_count
    0 |  o0      0       0       True     False       False      e        0
    1 |  o1      a0      r1      False    False       False      e        1
    2 |  o2      a1      r2      False    False       False      e        2
    3 |  o3      a2      r3      False    True        False      e        3

So a sequence ``rows[t0 : t0 + T]`` pairs ``o_t`` with the action that led to it and the reward that came with
it: the world model's posterior at ``t`` reads ``(h_t(z_{t-1}, action_t), pixels_t)`` and its heads predict
``reward_t`` and ``1 - terminated_t`` from the state at ``t``; the RSSM resets where ``is_init`` is True.

Buffer layout
-------------
:func:`make_replay_buffer` builds a :class:`torchrl.data.TensorDictReplayBuffer` over a
:class:`torchrl.data.LazyMemmapStorage` (one ``<key>.memmap`` file per stored key plus ``meta.json`` in
``scratch_dir``, each file sized for ``capacity`` rows, created on the first write) and a
:class:`torchrl.data.SliceSampler` that samples ``seq_len``-long slices inside one episode
(``traj_key="episode"``, ``strict_length=True``).

With one env each episode is one contiguous run of storage slots (a run may wrap from the last slot to slot 0)
and the default sampler finds runs where ``episode`` changes between neighbouring slots. Rows of several envs
arrive interleaved (env 0's rows of a collector batch, then env 1's, ...), so one episode occupies several
non-adjacent segments; the default sampler treats each segment as its own run (a slice never spans two),
which wastes the windows across collector batches and cannot use segments shorter than ``seq_len``. For
several envs build the buffer with ``fragmented=True``: TorchRL's fragmented mode rebuilds each episode's
order from ``(episode, step_count)`` and samples windows across segments, at the price of re-sorting all
stored ``(episode, step)`` pairs on the first sample after each write (~2 ms at 50k rows, ~75 ms at 1M on
one CPU thread, against ~2 ms at 1M for the default). Either way a slice never crosses an episode boundary,
including at the write cursor of a wrapped (circular) buffer, where the newest and the oldest rows belong to
different episodes (ids are never reused, and TorchRL marks the newest row as a run end).

Checkpoint / resume
-------------------
The data lives in the memmap files; :func:`replay_state` returns only the small bookkeeping (length, write
cursor, ...). After a crash or a kill, a new process builds the same buffer over the same ``scratch_dir`` and
calls :func:`restore_replay`, which re-opens the files with :meth:`tensordict.TensorDict.load_memmap` (what
TorchRL's own ``TensorStorageCheckpointer`` does when the checkpoint path is the scratch dir) instead of letting
the storage create fresh ones (a buffer over a dir holding data refuses to write until then). Rows written
after the checkpoint lie from the restored cursor on and are overwritten by new writes; in a wrapped buffer, the
ones of episodes the checkpoint never saw are detached from any episode until then.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import LazyMemmapStorage, RoundRobinWriter, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SliceSampler

from dreamer_rl.errors import UserError
from dreamer_rl.replay_rows import CONTEXT_KEYS, ROW_KEYS, StepRowWriter

__all__ = [
    "CONTEXT_KEYS",
    "ROW_KEYS",
    "EpisodeSliceSampler",
    "StepRowWriter",
    "make_replay_buffer",
    "replay_state",
    "restore_replay",
    "sample_sequences",
    "write_context",
    "stored_bytes",
]

_STATE_VERSION = 1


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """A plain ``torch.Tensor`` view of ``tensor`` (same memory; skips ``MemoryMappedTensor``'s op overhead)."""
    return tensor.as_subclass(torch.Tensor) if type(tensor) is not torch.Tensor else tensor


class EpisodeSliceSampler(SliceSampler):
    """:class:`~torchrl.data.SliceSampler` that skips a redundant gather (same slices, same RNG use).

    With ``truncated_key=None`` and ``init_key=None`` nothing inside the sampler needs the sampled rows, yet
    TorchRL 0.14 still gathers all of them (pixels included) before the buffer gathers them again; skipping
    that makes a ``16 x 64`` pixel sample ~2.5x faster. Any other configuration runs TorchRL's code unchanged.
    """

    def _finalize_index(self, *, index: torch.Tensor, mask_flat: torch.Tensor | None = None, **kwargs: Any) -> Any:
        if self.truncated_key is None and self.init_key is None and mask_flat is None:
            return index.to(torch.long).unbind(-1), {}
        return super()._finalize_index(index=index, mask_flat=mask_flat, **kwargs)


def make_replay_buffer(
    *,
    capacity: int,
    seq_len: int,
    batch_size: int,
    scratch_dir: str | Path | None = None,
    prefetch: int = 0,
    fragmented: bool = False,
    slices: str = "episode",
) -> TensorDictReplayBuffer:
    """A replay buffer of stored rows that samples ``batch_size`` sequences of ``seq_len`` rows.

    Args:
        capacity: rows the buffer holds (circular: the oldest rows are overwritten).
        seq_len: ``T``, the length of each sampled slice (within one episode).
        batch_size: ``B``, slices per sample: ``buffer.sample()`` returns ``B * T`` rows, slice by slice
            (reshape to ``[B, T]``, or use :func:`sample_sequences`).
        scratch_dir: where the memmap files go (``<key>.memmap`` + ``meta.json``); a temporary dir removed at
            exit when None. Keep it to resume with :func:`restore_replay`; a buffer built over a dir that
            already holds data refuses to write before :func:`restore_replay` (TorchRL raises: file exists).
        prefetch: batches sampled ahead in background threads (0: none).
        slices: ``"episode"`` (a slice stays inside one episode: Dreamer V1, V2) or ``"stream"`` (a slice runs
            over its env's stream of rows across episode boundaries, where ``is_init`` resets the model:
            DreamerV3's replay, and the only way to train on episodes shorter than ``seq_len``; the rows need
            :class:`StepRowWriter` ``streams=True``).
        fragmented: rebuild episodes split over non-adjacent storage segments from ``(episode,
            step_count)`` (TorchRL ``SliceSampler(fragmented=True)``): needed when several envs write (the
            :class:`StepRowWriter` gets ``[E, N]`` batches); slower to sample at large capacity. False (one
            env) samples each contiguous run of one episode.

    Returns:
        ``TensorDictReplayBuffer(LazyMemmapStorage(capacity), RoundRobinWriter, EpisodeSliceSampler)``. The
        plain round-robin writer stores no per-row ``"index"``; samples still carry ``"index"`` ``[B*T, 1]``.
    """
    if seq_len < 1 or batch_size < 1 or capacity < seq_len:
        raise ValueError(f"need 1 <= seq_len <= capacity, batch_size >= 1; got {capacity=}, {seq_len=}, {batch_size=}")
    if slices not in ("episode", "stream"):
        raise ValueError(f"slices must be 'episode' or 'stream', got {slices!r}")
    traj_key, step_key = ("episode", "step_count") if slices == "episode" else ("stream", "stream_step")
    sampler_kwargs: dict[str, Any] = {"fragmented": True, "step_key": step_key} if fragmented else {}
    sampler = EpisodeSliceSampler(
        slice_len=seq_len,
        traj_key=traj_key,
        strict_length=True,
        truncated_key=None,  # rows carry their own terminated/truncated; no sampler-made ("next", ...) keys
        init_key=None,  # is_init keeps its meaning (an episode start), slice starts are not marked
        **sampler_kwargs,
    )
    storage = LazyMemmapStorage(capacity, scratch_dir=scratch_dir, existsok=False)
    return TensorDictReplayBuffer(
        storage=storage,
        sampler=sampler,
        writer=RoundRobinWriter(),
        batch_size=batch_size * seq_len,
        prefetch=prefetch or None,
    )


def sample_sequences(
    buffer: TensorDictReplayBuffer, batch_size: int, seq_len: int, device: torch.device | str
) -> TensorDictBase:
    """``batch_size`` slices of ``seq_len`` consecutive rows of one episode -> TensorDict ``[B, T]`` on ``device``.

    Keys and dtypes are the stored rows' (``pixels`` still uint8 ``[B, T, 3, H, W]``) plus ``index``
    (int64 ``[B, T, 1]``, storage slots).
    """
    slice_len = getattr(buffer.sampler, "slice_len", None)
    if slice_len != seq_len:
        raise ValueError(f"the buffer samples slices of {slice_len} rows; asked for seq_len={seq_len}")
    rows = batch_size * seq_len
    if buffer.batch_size == rows:
        flat = buffer.sample()  # the only call prefetching serves
    else:
        with warnings.catch_warnings():  # TorchRL warns that the size differs from the constructor's: intended
            warnings.filterwarnings("ignore", message="Got conflicting batch_sizes")
            flat = buffer.sample(rows)
    return flat.reshape(batch_size, seq_len).to(torch.device(device), non_blocking=True)


def _storage_td(buffer: TensorDictReplayBuffer) -> TensorDictBase | None:
    storage = buffer.storage
    return storage._storage if storage.initialized else None  # noqa: SLF001 - TorchRL keeps it private


def replay_state(buffer: TensorDictReplayBuffer) -> dict[str, Any]:
    """What a checkpoint needs to restore ``buffer`` over its memmap files (small, JSON-able; not the data).

    Keys: ``version``; ``capacity``; ``len`` (rows stored); ``writer`` (TorchRL writer state: ``_cursor``,
    the next slot to write, and ``_write_count``); ``last_cursor`` (slot of the newest row, -1 if none);
    ``max_episode`` (largest episode id stored, -1 if none); ``sampler`` (TorchRL sampler state, ``{}`` for
    a :class:`SliceSampler`); ``scratch_dir`` (str or None). Nothing needs flushing: memmap writes are in
    the files (page cache) as soon as ``extend`` returns, and survive a kill of the process.
    """
    storage = buffer.storage
    length = len(storage)
    data = _storage_td(buffer)
    max_episode = int(_plain(data.get("episode"))[:length].max()) if data is not None and length else -1
    stream_ends: dict[str, int] = {}  # stream id -> its largest stream_step stored (stream slices only)
    if data is not None and length and "stream" in data.keys():
        streams = _plain(data.get("stream"))[:length]
        steps = _plain(data.get("stream_step"))[:length].reshape(-1)
        for sid in torch.unique(streams[streams >= 0]).tolist():
            stream_ends[str(sid)] = int(steps[streams == sid].max())
    last_cursor = storage._last_cursor_index  # noqa: SLF001 - the sampler's "newest row" marker
    writer = {k: int(v) if isinstance(v, torch.Tensor) else v for k, v in buffer.writer.state_dict().items()}
    return {
        "version": _STATE_VERSION,
        "capacity": int(storage.max_size),
        "len": int(length),
        "writer": writer,
        "last_cursor": -1 if last_cursor is None else int(last_cursor),
        "max_episode": max_episode,
        "stream_ends": stream_ends,
        "sampler": dict(buffer.sampler.state_dict()),
        "scratch_dir": getattr(storage, "scratch_dir", None),
    }


def restore_replay(buffer: TensorDictReplayBuffer, state: dict[str, Any]) -> None:
    """Re-attach ``buffer`` (fresh from :func:`make_replay_buffer` over the same ``scratch_dir``) to its files.

    Opens the memmap files written before the crash with ``TensorDict.load_memmap(scratch_dir)`` and makes
    them the storage (no copy, nothing rewritten), then restores length, write cursor and sampler state from
    ``state`` (:func:`replay_state`'s output). Rows the old process wrote after the checkpoint lie from the
    restored cursor on and are overwritten by new writes. Until then, those that belong to episodes the
    checkpoint never saw (ids above ``state["max_episode"]``, possible once the buffer has wrapped) are
    detached from any episode (``episode = -1 - slot``, ``step_count = 0``): no slice includes them and the
    ids the restored :class:`StepRowWriter` hands out cannot collide with them.

    Raises:
        UserError: the state is not a replay state, the buffer has no ``scratch_dir`` or already holds data,
            the files are missing or their capacity differs.
    """
    if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
        raise UserError(f"unreadable replay state: expected a replay_state() dict of version {_STATE_VERSION}")
    storage = buffer.storage
    if not isinstance(storage, LazyMemmapStorage) or storage.scratch_dir is None:
        raise UserError("cannot restore a replay buffer without scratch_dir: use make_replay_buffer(scratch_dir=...)")
    if int(state["capacity"]) != storage.max_size:
        raise UserError(
            f"replay capacity mismatch: the checkpoint has {state['capacity']} rows, the buffer {storage.max_size}"
        )
    if storage.initialized:
        raise UserError("restore_replay needs a fresh buffer: call it before anything is written to the buffer")
    length = int(state["len"])
    scratch = Path(storage.scratch_dir)
    has_files = (scratch / "meta.json").is_file()
    if length and not has_files:
        raise UserError(f"replay data not found: {scratch / 'meta.json'} is missing (was the scratch dir removed?)")

    if has_files:  # even with length 0: rows written after the checkpoint occupy the files
        try:
            data = TensorDict.load_memmap(scratch)
        except Exception as err:  # noqa: BLE001 - any failure to open the files is an unreadable checkpoint
            reason = f"{type(err).__name__}: {err}".replace("\n", " ")
            raise UserError(f"cannot open the replay files in {scratch}: {reason}") from err
        if data.shape[0] != storage.max_size:
            raise UserError(
                f"the replay files in {scratch} hold {data.shape[0]} rows, expected capacity {storage.max_size}"
            )
        # The steps of TorchRL's TensorStorageCheckpointer.loads when the checkpoint path is the scratch dir.
        storage._storage = data  # noqa: SLF001
        storage.initialized = True
        storage._len = length  # noqa: SLF001
        if int(state["last_cursor"]) >= 0:
            storage._set_last_cursor(int(state["last_cursor"]))  # noqa: SLF001
        if length:
            episode = _plain(data.get("episode"))
            slots = (episode[:length] > int(state["max_episode"])).nonzero().squeeze(-1)
            if slots.numel():
                episode[slots] = -1 - slots
                _plain(data.get("step_count"))[slots] = 0
            if "stream" in data.keys():  # stream rows written after the checkpoint: detached the same way
                stream = _plain(data.get("stream"))
                steps = _plain(data.get("stream_step")).reshape(-1)
                ends = state.get("stream_ends", {})
                known = _stream_ends_lookup(stream[:length], ends)
                stale = (steps[:length] > known).nonzero().squeeze(-1)
                if stale.numel():
                    stream[stale] = -1 - stale
                    steps[stale] = 0
        storage._bump_mutation_revision()  # noqa: SLF001 - invalidates sampler caches of other content

    buffer.writer.load_state_dict(dict(state["writer"]))
    buffer.sampler.load_state_dict(dict(state["sampler"]))
    if getattr(buffer, "_prefetch_queue", None):  # batches sampled before the restore are stale
        with buffer._futures_lock:  # noqa: SLF001
            buffer._clear_prefetch_queue_locked()  # noqa: SLF001


def _stream_ends_lookup(stream: torch.Tensor, ends: dict[str, int]) -> torch.Tensor:
    """``ends[str(stream[i])]`` (-1 if absent) for every row, vectorised over the few stream ids."""
    out = torch.full_like(stream, -1)
    for sid, end in ends.items():
        out[stream == int(sid)] = end
    return out


def stored_bytes(buffer: TensorDictReplayBuffer) -> int:
    """Bytes the storage holds for the rows written: for each memmap file of the storage, the file's real
    size on disk divided by its row count (capacity), times ``len(buffer)`` rows (tensor sizes when the
    storage has no files). 0 before the first write."""
    data = _storage_td(buffer)
    if data is None:
        return 0
    length = len(buffer.storage)
    total = 0
    for leaf in data.values(include_nested=True, leaves_only=True):
        try:
            size = os.path.getsize(leaf.filename)
        except (AttributeError, RuntimeError):  # no file behind it (scratch_dir=None: anonymous memory)
            size = leaf.numel() * leaf.element_size()
        total += (size // leaf.shape[0]) * length
    return total


def write_context(buffer: TensorDictReplayBuffer, index: torch.Tensor, deter: torch.Tensor,
                  stoch: torch.Tensor) -> None:
    """Store a trained slice's posterior states as the replay context of the rows that follow them.

    DreamerV3 (``replay_context 1``) writes the states its world-model loss filtered back into the replay, so a
    later slice starting at one of these rows begins from a recent model state instead of zeros. Row ``t + 1``'s
    context is the posterior at row ``t``: ``context[index[:, 1:]] = (deter, stoch)[:, :-1]`` (the slice's last
    state has no following row in the slice and is not written). A row that starts an episode (``is_init``) keeps
    its zero context: the model resets there, whatever came before it in the stream.

    :param index: ``[B, T, 1]`` (or ``[B, T]``) storage slots of a :func:`sample_sequences` batch.
    :param deter: ``[B, T, D]``, ``stoch`` ``[B, T, S]``: the posterior states of that batch (detached).
    """
    data = _storage_td(buffer)
    if data is None or CONTEXT_KEYS[0] not in data.keys():
        raise ValueError("write_context: the buffer stores no replay context; write its rows with "
                         "StepRowWriter(context=True)")
    slots = index.reshape(index.shape[0], index.shape[1])[:, 1:].reshape(-1).cpu()
    follows = ~_plain(data.get("is_init"))[slots].reshape(-1, 1)  # a reset row keeps its zero context
    for key, value in zip(CONTEXT_KEYS, (deter, stoch), strict=True):
        data[key][slots] = value[:, :-1].reshape(slots.numel(), -1).to("cpu", torch.float16) * follows
