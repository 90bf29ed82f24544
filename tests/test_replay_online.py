"""DreamerV3's online replay queue (``train.replay_online``): each env stream is cut into consecutive windows of
``seq_len`` rows, and a batch's first slices are the windows completed since the last batch.

The checks read what the learner really receives: the rows of a filled batch are compared with the storage at the
queued slots, and in a real run the served windows must tile the stream from its first row on, with none skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from dreamer_rl.config import Recipe
from dreamer_rl.replay import make_replay_buffer, sample_sequences
from dreamer_rl.replay_online import OnlineQueue
from recipes.presets import apply_presets


def stream_rows(stream: int, first: int, n: int) -> TensorDict:
    """``n`` rows of one stream from stream step ``first``; ``obs`` = 1000 * stream + step identifies each row."""
    steps = torch.arange(first, first + n)
    return TensorDict({
        "obs": (1000 * stream + steps).float().unsqueeze(-1),
        "stream": torch.full((n,), stream, dtype=torch.long),
        "stream_step": steps.unsqueeze(-1),
        "episode": torch.full((n,), stream, dtype=torch.long),
        "step_count": steps.unsqueeze(-1),
    }, [n])


def test_windows_tile_each_stream_and_fill_puts_them_first(tmp_path: Path) -> None:
    T, B = 4, 3
    buffer = make_replay_buffer(capacity=200, seq_len=T, batch_size=B, slices="stream", fragmented=True,
                                scratch_dir=tmp_path / "replay")
    queue = OnlineQueue(T)
    for chunk in range(5):  # two env streams, 3 rows each per write, env by env as StepRowWriter writes them
        rows = torch.cat([stream_rows(0, 3 * chunk, 3), stream_rows(1, 3 * chunk, 3)])
        queue.note(rows, buffer.extend(rows))
    # 15 rows per stream -> 3 full windows each; the 3 leftover rows per stream wait for the next write
    windows = [(sid, first) for _, sid, first in queue.queue]
    assert sorted(windows) == [(0, 0), (0, 4), (0, 8), (1, 0), (1, 4), (1, 8)]
    batch = sample_sequences(buffer, B, T, "cpu")
    queued = [w for w, _, _ in list(queue.queue)[:B]]
    queue.fill(buffer, batch)
    stored = buffer.storage[torch.stack(queued).reshape(-1)]["obs"].reshape(B, T)
    torch.testing.assert_close(batch["obs"].squeeze(-1), stored)
    assert torch.equal(batch["index"].squeeze(-1), torch.stack(queued))
    for row in batch["obs"].squeeze(-1):  # each window: 4 consecutive steps of one stream
        assert torch.equal(row - row[0], torch.arange(T, dtype=row.dtype))
    assert len(queue) == 3 and queue.served == 3
    batch2 = sample_sequences(buffer, 2, T, "cpu")  # a smaller batch takes only what fits
    queue.fill(buffer, batch2)
    assert len(queue) == 1 and queue.served == 5
    # the slices not replaced are the uniform sample's, untouched
    batch3 = sample_sequences(buffer, B, T, "cpu")
    tail = batch3[1:].clone()
    queue.fill(buffer, batch3)
    assert torch.equal(batch3[1:]["obs"], tail["obs"]) and len(queue) == 0
    # the next write completes one more window per stream from the leftover rows
    rows = torch.cat([stream_rows(0, 15, 1), stream_rows(1, 15, 1)])
    queue.note(rows, buffer.extend(rows))
    assert sorted((sid, first) for _, sid, first in queue.queue) == [(0, 12), (1, 12)]


def test_windows_overwritten_by_a_wrapped_buffer_are_dropped(tmp_path: Path) -> None:
    T = 4
    buffer = make_replay_buffer(capacity=10, seq_len=T, batch_size=1, slices="stream", scratch_dir=tmp_path / "r")
    queue = OnlineQueue(T)
    rows = stream_rows(0, 0, 8)
    queue.note(rows, buffer.extend(rows))  # windows at slots 0-3 and 4-7
    rows = stream_rows(0, 8, 4)
    queue.note(rows, buffer.extend(rows))  # slots 8, 9, 0, 1: the first window is overwritten; a third completes
    assert len(queue) == 3
    windows = queue.take(buffer, 3)
    assert queue.dropped == 1 and windows.tolist() == [[4, 5, 6, 7], [8, 9, 0, 1]]


def test_a_stream_with_a_gap_starts_its_window_over() -> None:
    queue = OnlineQueue(4)
    queue.note(stream_rows(0, 0, 3), torch.arange(3))
    queue.note(stream_rows(0, 5, 4), torch.arange(3, 7))  # steps 3 and 4 never arrived
    assert [(sid, first) for _, sid, first in queue.queue] == [(0, 5)]


def test_rows_without_streams_name_the_writer_option() -> None:
    rows = stream_rows(0, 0, 4).exclude("stream", "stream_step")
    with pytest.raises(KeyError, match=r"StepRowWriter\(streams=True\)"):
        OnlineQueue(4).note(rows, torch.arange(4))


def test_the_v3_preset_queues_online_and_episode_slices_refuse_it() -> None:
    v3 = Recipe.model_validate(apply_presets(["dreamer_v3", "dmc_proprio", "debug"]))
    assert v3.train.replay_online and v3.train.replay_slices == "stream"
    with pytest.raises(ValueError, match="replay_online cuts each env's stream.*needs train.replay_slices stream"):
        Recipe.model_validate(apply_presets(["dreamer_v1", "debug"]) | {"train": {
            **apply_presets(["dreamer_v1", "debug"])["train"], "replay_online": True}})


def test_a_v3_run_trains_on_every_window_of_its_stream_in_order(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: the windows the learner received tile the env's stream from its first row, none skipped, and
    each reached the learner as the first slices of a batch."""
    from dreamer_rl import train, training
    from recipes import make_recipe

    served: list[torch.Tensor] = []
    first_slices: list[torch.Tensor] = []

    class Spy(OnlineQueue):
        def take(self, buffer, k):  # noqa: ANN001, ANN201
            windows = super().take(buffer, k)
            served.extend(windows)
            return windows

        def fill(self, buffer, batch):  # noqa: ANN001, ANN201
            n = self.served
            out = super().fill(buffer, batch)
            first_slices.extend(out["index"][: self.served - n].squeeze(-1))
            return out

    monkeypatch.setattr(training, "OnlineQueue", Spy)
    recipe = make_recipe("dreamer_v3", "dmc_proprio", "debug", overrides={
        "run.runs_dir": str(tmp_path / "runs"), "run.threads": 1, "run.steps": 400, "run.name": "online",
        "tracking.enabled": False})
    summary = train("dmc_cartpole_balance", recipe)
    T = recipe.train.seq_len
    assert summary["updates"] > 0 and len(served) >= 2
    # one env, no wrap: the stream's rows lie at slots 0, 1, 2, ...; the served windows are its first windows
    assert torch.equal(torch.cat(served), torch.arange(len(served) * T))
    assert all(torch.equal(a, b) for a, b in zip(served, first_slices, strict=True))
    stored = TensorDict.load_memmap(tmp_path / "runs" / "online" / "replay")
    steps = stored["stream_step"][: len(served) * T].reshape(-1)
    assert torch.equal(steps, torch.arange(len(served) * T))
