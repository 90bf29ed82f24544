"""Replay: stored-row alignment, episode ids, slices within episodes, uint8 frames stored once, resume.

Fake collector output: env ``e``'s episode ``k`` at step ``t`` observes ``observation = [1000 e + k, t]`` (and
``pixels`` filled with ``t % 251``), takes action ``[t + 1, e]`` and receives reward ``t + 1.5`` with the next
observation. So in any stored row of a step ``t > 0``: ``action[0] == t == step_count`` and ``reward == t + 0.5``.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict, TensorDictBase

from dreamer_rl.errors import UserError
from dreamer_rl.replay import (
    StepRowWriter,
    make_replay_buffer,
    replay_state,
    restore_replay,
    sample_sequences,
    stored_bytes,
)

REPO = Path(__file__).resolve().parents[1]
FRAME = 3 * 64 * 64


class FakeCollector:
    """Transitions in TorchRL's layout, ``[N]`` (envs=None) or ``[E, N]``, with deterministic episodes."""

    def __init__(self, lengths, envs: int | None = None, pixels: tuple[int, int] | None = None,
                 truncate_every: int = 0, action_dim: int = 2) -> None:
        self.lengths = lengths  # callable (env, episode) -> episode length
        self.envs = envs
        self.pixels = pixels
        self.truncate_every = truncate_every
        self.action_dim = action_dim
        n = envs or 1
        self.episode = [0] * n
        self.t = [0] * n

    def _env_batch(self, e: int, n: int) -> TensorDict:
        obs, nxt, act, rew, init, term, trunc = [], [], [], [], [], [], []
        for _ in range(n):
            k, t = self.episode[e], self.t[e]
            length = self.lengths(e, k)
            obs.append([1000.0 * e + k, t])
            nxt.append([1000.0 * e + k, t + 1])
            act.append([t + 1.0, e] + [0.0] * (self.action_dim - 2))
            rew.append([t + 1.5])
            init.append([t == 0])
            end = t + 1 == length
            cut = end and self.truncate_every and (k + 1) % self.truncate_every == 0
            term.append([end and not cut])
            trunc.append([bool(cut)])
            self.t[e] = 0 if end else t + 1
            self.episode[e] += int(end)
        td = TensorDict(
            {
                "observation": torch.tensor(obs),
                "action": torch.tensor(act),
                "is_init": torch.tensor(init),
                ("collector", "traj_ids"): torch.zeros(n, dtype=torch.int64),  # ignored by the writer
                "next": {
                    "observation": torch.tensor(nxt),
                    "reward": torch.tensor(rew),
                    "terminated": torch.tensor(term),
                    "truncated": torch.tensor(trunc),
                    "done": torch.tensor(term) | torch.tensor(trunc),
                },
            },
            batch_size=[n],
        )
        if self.pixels is not None:
            h, w = self.pixels
            steps = td["observation"][:, 1].long()
            td["pixels"] = (steps % 251).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, h, w).clone()
            td["next", "pixels"] = ((steps + 1) % 251).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, h, w).clone()
        return td

    def batch(self, n: int) -> TensorDict:
        if self.envs is None:
            return self._env_batch(0, n)
        return torch.stack([self._env_batch(e, n) for e in range(self.envs)], 0)


def hand_built_episode() -> TensorDict:
    """The docstring's 3-step episode: o0 -a0-> (o1, r1) -a1-> (o2, r2) -a2-> (o3, r3), o3 terminal."""
    pix = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 2, 2) * 10  # o_t filled with 10 t
    obs = torch.arange(4, dtype=torch.float32).unsqueeze(-1) + 0.5  # o_t = t + 0.5
    return TensorDict(
        {
            "pixels": pix[:3].clone(),
            "observation": obs[:3],
            "action": torch.tensor([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]),  # a_i = (i + 1, -(i + 1))
            "is_init": torch.tensor([[True], [False], [False]]),
            "next": {
                "pixels": pix[1:].clone(),
                "observation": obs[1:],
                "reward": torch.tensor([[10.0], [20.0], [30.0]]),  # r_{i+1} = 10 (i + 1)
                "terminated": torch.tensor([[False], [False], [True]]),
                "truncated": torch.zeros(3, 1, dtype=torch.bool),
                "done": torch.tensor([[False], [False], [True]]),
            },
        },
        batch_size=[3],
    )


def col(rows: TensorDictBase, key: str) -> list:
    value = rows[key]
    return value.reshape(value.shape[0], -1)[:, 0].tolist()


# ---------------------------------------------------------------------------------------------- StepRowWriter
def test_three_step_episode_matches_docstring_table() -> None:
    rows = StepRowWriter(obs_keys=("pixels", "observation"))(hand_built_episode())
    assert rows.batch_size == torch.Size([4])
    assert set(rows.keys()) == {"pixels", "observation", "action", "reward", "is_init", "terminated", "truncated",
                                "episode", "step_count"}
    assert rows["pixels"].dtype == torch.uint8 and rows["pixels"].shape == (4, 3, 2, 2)
    assert col(rows, "pixels") == [0, 10, 20, 30]  # o_0 .. o_3, each once
    assert col(rows, "observation") == [0.5, 1.5, 2.5, 3.5]
    assert rows["action"].tolist() == [[0.0, 0.0], [1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]  # a_{t-1}
    assert col(rows, "reward") == [0.0, 10.0, 20.0, 30.0]  # r_t
    assert col(rows, "is_init") == [True, False, False, False]
    assert col(rows, "terminated") == [False, False, False, True]
    assert col(rows, "truncated") == [False] * 4
    assert rows["episode"].tolist() == [0, 0, 0, 0] and rows["episode"].shape == (4,)
    assert col(rows, "step_count") == [0, 1, 2, 3]
    dtypes = {k: rows[k].dtype for k in ("action", "reward", "is_init", "terminated", "truncated", "episode")}
    assert dtypes == {"action": torch.float32, "reward": torch.float32, "is_init": torch.bool,
                      "terminated": torch.bool, "truncated": torch.bool, "episode": torch.int64}


def test_episodes_back_to_back_get_new_ids_and_zero_reset_rows() -> None:
    collector = FakeCollector(lambda e, k: 3, truncate_every=2)
    writer = StepRowWriter(obs_keys=("observation",))
    rows = torch.cat([writer(collector.batch(4)), writer(collector.batch(5))])  # episodes split across calls
    # 9 transitions = 3 episodes of 3 steps -> 3 reset rows + 9 next rows
    assert col(rows, "episode") == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert col(rows, "is_init") == [True, False, False, False] * 3
    assert col(rows, "step_count") == [0, 1, 2, 3] * 3
    assert col(rows, "observation") == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    resets = rows[rows["is_init"].squeeze(-1)]
    assert resets["action"].abs().sum() == 0 and resets["reward"].abs().sum() == 0
    assert rows["observation"][:, 1].tolist() == [0, 1, 2, 3] * 3
    # episode 1 (the second) is cut by a time limit: truncated, not terminated
    assert col(rows, "terminated") == [False, False, False, True, False, False, False, False] + [False] * 3 + [True]
    assert col(rows, "truncated") == [False] * 7 + [True] + [False] * 4


def test_env_batch_rows_are_contiguous_per_env() -> None:
    lengths = lambda e, k: 2 + e + k % 2  # noqa: E731
    batched = FakeCollector(lengths, envs=3).batch(7)
    rows = StepRowWriter(obs_keys=("observation",))(batched)
    env_of_row = (rows["observation"][:, 0] // 1000).long().tolist()
    assert env_of_row == sorted(env_of_row)  # env 0's rows, then env 1's, then env 2's
    episodes_per_env = [set(rows["episode"][torch.tensor(env_of_row) == e].tolist()) for e in range(3)]
    assert all(not (a & b) for i, a in enumerate(episodes_per_env) for b in episodes_per_env[i + 1:])
    for e in range(3):  # each env's rows equal those of a single-env writer, up to episode ids
        single = StepRowWriter(obs_keys=("observation",))(batched[e])
        mine = rows[torch.tensor(env_of_row) == e]
        for key in ("observation", "action", "reward", "is_init", "terminated", "truncated", "step_count"):
            assert torch.equal(mine[key], single[key]), key
        assert torch.equal(mine["episode"] - mine["episode"][0], single["episode"] - single["episode"][0])


def test_is_init_derived_when_absent_and_writer_state_round_trip() -> None:
    collector = FakeCollector(lambda e, k: 4, envs=2)
    first, second = collector.batch(6), collector.batch(6)
    reference = StepRowWriter(obs_keys=("observation",))
    reference(first)
    reference_state = reference.state_dict()
    reference_rows = reference(second)

    writer = StepRowWriter(obs_keys=("observation",))
    writer(first.exclude("is_init"))  # is_init derived from the previous transition's done
    state = pickle.loads(pickle.dumps(writer.state_dict()))
    json.dumps(state)  # plain python
    assert state == reference_state
    restored = StepRowWriter(obs_keys=("observation",))
    restored.load_state_dict(state)
    assert (restored(second.exclude("is_init")) == reference_rows).all()
    assert restored.state_dict() == reference.state_dict()


def test_writer_rejects_float_pixels_and_other_env_counts() -> None:
    bad = hand_built_episode()
    bad["next", "pixels"] = bad["next", "pixels"].float() / 255
    with pytest.raises(TypeError, match="uint8"):
        StepRowWriter()(bad)
    writer = StepRowWriter(obs_keys=("observation",))
    writer(FakeCollector(lambda e, k: 5, envs=2).batch(3))
    with pytest.raises(ValueError, match="2 envs"):
        writer(FakeCollector(lambda e, k: 5, envs=3).batch(3))


# ---------------------------------------------------------------------------------------------- sampling
def assert_slices_within_episodes(batch: TensorDictBase) -> None:
    """Every slice: one episode, consecutive steps, alignment kept (see the module docstring)."""
    B, T = batch.shape
    ident = batch["observation"][..., 0]
    step = batch["observation"][..., 1]
    assert (ident == ident[:, :1]).all(), "a slice spans two episodes"
    assert (batch["episode"] == batch["episode"][:, :1]).all(), "a slice spans two episode ids"
    assert (step[:, 1:] - step[:, :-1] == 1).all(), "a slice skips or repeats steps"
    assert (batch["step_count"].squeeze(-1) == step.long()).all()
    assert not batch["is_init"][:, 1:].any(), "a reset row inside a slice"
    later = ~batch["is_init"].squeeze(-1)
    assert (batch["action"][..., 0][later] == step[later]).all()
    assert (batch["reward"].squeeze(-1)[later] == step[later] + 0.5).all()
    assert not (batch["terminated"] | batch["truncated"])[:, :-1].any(), "an episode end inside a slice"


@pytest.mark.parametrize("fragmented", [False, True])
def test_interleaved_envs_slices_never_cross_episodes(tmp_path: Path, fragmented: bool) -> None:
    torch.manual_seed(0)
    lengths = lambda e, k: 9 + (7 * e + 5 * k) % 13  # noqa: E731 - short episodes of 9..21 steps
    collector = FakeCollector(lengths, envs=3)
    writer = StepRowWriter(obs_keys=("observation",))
    T, N = 6, 8 if fragmented else 12  # fragmented: per-env segments (8-9 rows) barely longer than T
    buffer = make_replay_buffer(capacity=10_000, seq_len=T, batch_size=32, scratch_dir=tmp_path / "rb",
                                fragmented=fragmented)
    for _ in range(12):
        buffer.extend(writer(collector.batch(N)))
    episodes = buffer.storage[:]["episode"]
    segments = int((episodes[1:] != episodes[:-1]).sum()) + 1
    assert segments > len(episodes.unique()), "episodes do occupy non-adjacent segments"
    crossed = 0
    for _ in range(20):
        batch = sample_sequences(buffer, 32, T, "cpu")
        assert batch.shape == (32, T)
        assert_slices_within_episodes(batch)
        slots = batch["index"].squeeze(-1)
        crossed += int(((slots[:, 1:] - slots[:, :-1]) != 1).any(-1).sum())
    # fragmented mode stitches an episode's segments (slices jump between slots); the default never does
    assert (crossed > 0) == fragmented


def test_segments_shorter_than_seq_len_need_fragmented(tmp_path: Path) -> None:
    collector = FakeCollector(lambda e, k: 50, envs=4)
    writer = StepRowWriter(obs_keys=("observation",))
    plain = make_replay_buffer(capacity=1000, seq_len=8, batch_size=4, scratch_dir=tmp_path / "a")
    frag = make_replay_buffer(capacity=1000, seq_len=8, batch_size=4, scratch_dir=tmp_path / "b", fragmented=True)
    for _ in range(10):
        rows = writer(collector.batch(2))  # 2 steps per env per batch, as with a high train ratio
        plain.extend(rows)
        frag.extend(rows)
    with pytest.raises(RuntimeError, match="sufficient length"):
        plain.sample()
    assert_slices_within_episodes(sample_sequences(frag, 4, 8, "cpu"))


@pytest.mark.parametrize("fragmented", [False, True])
def test_wrapped_buffer_slices_near_cursor_do_not_mix_old_and_new(tmp_path: Path, fragmented: bool) -> None:
    torch.manual_seed(1)
    T, capacity = 5, 97
    collector = FakeCollector(lambda e, k: 7 + (3 * k + e) % 11, envs=2)
    writer = StepRowWriter(obs_keys=("observation",))
    buffer = make_replay_buffer(capacity=capacity, seq_len=T, batch_size=64, scratch_dir=tmp_path / "rb",
                                fragmented=fragmented)
    near_cursor = 0
    for i in range(40):  # ~10 laps over the storage, cursor at every phase
        buffer.extend(writer(collector.batch(6)))
        if i < 8:
            continue
        assert len(buffer) == capacity
        cursor = buffer.writer.state_dict()["_cursor"]  # next slot to write = oldest row
        batch = sample_sequences(buffer, 64, T, "cpu")
        assert_slices_within_episodes(batch)
        slots = batch["index"].squeeze(-1)
        assert not ((slots[:, :-1] == (cursor - 1) % capacity) & (slots[:, 1:] == cursor)).any()
        near_cursor += int((((slots - cursor) % capacity < 2) | ((cursor - 1 - slots) % capacity < 2)).any(-1).sum())
    assert near_cursor > 0  # slices were drawn right next to the cursor on both sides


# ---------------------------------------------------------------------------------------------- storage size
def test_pixels_stored_uint8_once_per_step(tmp_path: Path) -> None:
    steps, episode_len, action_dim = 1000, 100, 6
    collector = FakeCollector(lambda e, k: episode_len, pixels=(64, 64), action_dim=action_dim)
    writer = StepRowWriter()  # obs_keys=("pixels",)
    buffer = make_replay_buffer(capacity=2000, seq_len=16, batch_size=4, scratch_dir=tmp_path / "rb")
    for _ in range(steps // 50):
        buffer.extend(writer(collector.batch(50)))
    rows = steps + steps // episode_len  # one row per step plus one reset row per episode
    assert len(buffer) == rows
    stored = buffer.storage._storage
    assert set(stored.keys()) == {"pixels", "action", "reward", "is_init", "terminated", "truncated", "episode",
                                  "step_count"}  # no ("next", ...), no per-row "index"
    assert stored["pixels"].dtype == torch.uint8 and stored["pixels"].shape[1:] == (3, 64, 64)
    # small fields per row: action 4*6 + reward 4 + is_init/terminated/truncated 1+1+1 + episode 8 + step_count 8
    small = 4 * action_dim + 4 + 3 + 8 + 8
    assert small == 47
    assert stored_bytes(buffer) == rows * (FRAME + small)
    files = {p.name: p.stat().st_size for p in (tmp_path / "rb").glob("*.memmap")}
    assert files["pixels.memmap"] == 2000 * FRAME
    assert stored_bytes(buffer) / steps <= 1.1 * FRAME + 64
    batch = sample_sequences(buffer, 4, 16, "cpu")
    assert batch["pixels"].dtype == torch.uint8 and batch["pixels"].shape == (4, 16, 3, 64, 64)
    assert (batch["pixels"][:, :, 0, 0, 0].long() == batch["step_count"].squeeze(-1)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # another batch size than the buffer's: no warning
        assert sample_sequences(buffer, 2, 16, "cpu").shape == (2, 16)


# ---------------------------------------------------------------------------------------------- resume
WRITER_SCRIPT = textwrap.dedent(
    """
    import json, pickle, sys, time
    import torch
    sys.path.insert(0, {tests!r})
    from test_replay import FakeCollector
    from dreamer_rl.replay import StepRowWriter, make_replay_buffer, replay_state, sample_sequences

    torch.manual_seed(0)
    scratch, out = sys.argv[1], sys.argv[2]
    collector = FakeCollector(lambda e, k: 11 + (5 * k + 3 * e) % 9, envs=2, pixels=(8, 8))
    writer = StepRowWriter(obs_keys=("pixels", "observation"))
    buffer = make_replay_buffer(capacity=400, seq_len=6, batch_size=8, scratch_dir=scratch)
    for _ in range(10):
        buffer.extend(writer(collector.batch(10)))
    state = {{"replay": replay_state(buffer), "writer": writer.state_dict()}}
    torch.manual_seed(123)
    sample = sample_sequences(buffer, 8, 6, "cpu")
    rows = buffer.storage[:].clone()
    with open(out, "wb") as f:
        pickle.dump({{"state": state, "sample": sample.to_dict(), "rows": rows.to_dict()}}, f)
    print("SAVED", flush=True)
    for _ in range(5):  # rows written after the checkpoint: the restored buffer must not count them
        buffer.extend(writer(collector.batch(10)))
    print("WROTE_MORE", flush=True)
    time.sleep(600)
    """
)


def test_cross_process_resume_after_sigkill(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT.format(tests=str(REPO / "tests")))
    scratch, out = tmp_path / "replay", tmp_path / "state.pkl"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(script), str(scratch), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.strip())
            if line.startswith("WROTE_MORE"):
                break
        assert lines[-2:] == ["SAVED", "WROTE_MORE"], lines
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with open(out, "rb") as f:
        saved = pickle.load(f)
    state = saved["state"]
    json.dumps(state["replay"])  # small and plain
    assert state["replay"]["len"] == 200 + state["writer"]["next_episode"]  # 10 x 2 envs x 10 steps + resets

    buffer = make_replay_buffer(capacity=400, seq_len=6, batch_size=8, scratch_dir=scratch)
    restore_replay(buffer, state["replay"])
    assert len(buffer) == state["replay"]["len"]
    rows = TensorDict(saved["rows"], batch_size=[len(buffer)])
    assert (buffer.storage[:] == rows).all()  # the very rows of the checkpoint, read from the old files
    torch.manual_seed(123)
    again = sample_sequences(buffer, 8, 6, "cpu")
    assert (again == TensorDict(saved["sample"], batch_size=[8, 6])).all()

    # writing goes on from the checkpoint's cursor with fresh episode ids, over the post-checkpoint rows
    writer = StepRowWriter(obs_keys=("pixels", "observation"))
    writer.load_state_dict(state["writer"])
    collector = FakeCollector(lambda e, k: 12, envs=2, pixels=(8, 8))  # a new env process: episodes restart
    new_rows = writer(collector.batch(10))
    assert int(new_rows["episode"].min()) > state["replay"]["max_episode"]
    buffer.extend(new_rows)
    assert len(buffer) == state["replay"]["len"] + new_rows.shape[0]
    assert (buffer.storage[: len(rows)] == rows).all()
    assert_slices_within_episodes(sample_sequences(buffer, 8, 6, "cpu"))


@pytest.mark.parametrize("fragmented", [False, True])
def test_restore_detaches_rows_of_episodes_written_after_checkpoint(tmp_path: Path, fragmented: bool) -> None:
    """The old process wrapped the buffer after the checkpoint: its newer episodes must not be sampled."""
    kwargs = dict(capacity=110, seq_len=5, batch_size=16, scratch_dir=tmp_path / "rb", fragmented=fragmented)
    collector = FakeCollector(lambda e, k: 13, envs=2)  # episodes in progress at the checkpoint go on after it
    writer = StepRowWriter(obs_keys=("observation",))
    old = make_replay_buffer(**kwargs)
    for _ in range(5):
        old.extend(writer(collector.batch(10)))  # 100 steps + 8 resets = 108 rows
    state, writer_state = replay_state(old), writer.state_dict()
    for _ in range(4):
        old.extend(writer(collector.batch(10)))  # 80 steps + 6 resets = 86 rows: slots 108, 109, 0..83
    del old

    buffer = make_replay_buffer(**kwargs)
    restore_replay(buffer, state)
    stored = buffer.storage[:]
    assert len(buffer) == state["len"] == 108
    rewritten = stored[:84]
    kept = rewritten[rewritten["episode"] >= 0]  # env 1's episode 7 going on: steps 12, 13 (consistent data)
    assert kept["episode"].tolist() == [7, 7] and kept["step_count"].squeeze(-1).tolist() == [12, 13]
    detached = rewritten["episode"][rewritten["episode"] < 0]
    assert len(detached) == 82 and len(detached.unique()) == 82  # one singleton "episode" each
    assert int(stored["episode"].max()) <= state["max_episode"]
    writer = StepRowWriter(obs_keys=("observation",))
    writer.load_state_dict(writer_state)
    fresh = FakeCollector(lambda e, k: 10, envs=2)
    for _ in range(3):
        buffer.extend(writer(fresh.batch(10)))
        batch = sample_sequences(buffer, 16, 5, "cpu")  # fragmented: no duplicate (episode, step) pairs
        assert_slices_within_episodes(batch)
        assert (batch["episode"] >= 0).all()


def test_fresh_buffer_does_not_touch_existing_files_and_restore_errors(tmp_path: Path) -> None:
    collector = FakeCollector(lambda e, k: 10)
    writer = StepRowWriter(obs_keys=("observation",))
    first = make_replay_buffer(capacity=100, seq_len=4, batch_size=2, scratch_dir=tmp_path / "rb")
    first.extend(writer(collector.batch(20)))
    state = replay_state(first)
    before = {p.name: p.read_bytes() for p in (tmp_path / "rb").iterdir()}

    second = make_replay_buffer(capacity=100, seq_len=4, batch_size=2, scratch_dir=tmp_path / "rb")
    with pytest.raises(RuntimeError, match="already exists"):
        second.extend(writer(collector.batch(5)))  # forgot restore_replay: refused, nothing overwritten
    assert {p.name: p.read_bytes() for p in (tmp_path / "rb").iterdir()} == before

    with pytest.raises(UserError, match="capacity"):
        restore_replay(make_replay_buffer(capacity=200, seq_len=4, batch_size=2, scratch_dir=tmp_path / "rb"), state)
    with pytest.raises(UserError, match="not found"):
        restore_replay(make_replay_buffer(capacity=100, seq_len=4, batch_size=2, scratch_dir=tmp_path / "x"), state)
    with pytest.raises(UserError, match="scratch_dir"):
        restore_replay(make_replay_buffer(capacity=100, seq_len=4, batch_size=2), state)
    with pytest.raises(UserError, match="unreadable"):
        restore_replay(make_replay_buffer(capacity=100, seq_len=4, batch_size=2, scratch_dir=tmp_path / "rb"), {})
