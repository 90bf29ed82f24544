"""Stream slices (DreamerV3's replay): rows numbered per env stream, slices across episode boundaries, resume that
detaches rows the checkpoint never saw, and the replay-value return cut where a slice enters a new episode.

Fake collector output as in tests/test_replay.py: env ``e``'s episode ``k`` at step ``t`` observes ``[1000 e + k, t]``,
takes action ``[t + 1, e]`` and receives reward ``t + 1.5`` with the next observation; every episode terminates.
So a stored row of step ``t > 0`` has ``action[0] == t`` and ``reward == t + 0.5``; a reset row has zeros.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from dreamer_rl.losses.value import ReplayValueLoss
from dreamer_rl.replay import (
    StepRowWriter,
    make_replay_buffer,
    replay_state,
    restore_replay,
    sample_sequences,
)


class Collector:
    """Transitions ``[E, N]`` (or ``[N]`` with ``envs=None``) of deterministic, terminating episodes."""

    def __init__(self, lengths: Callable[[int, int], int], envs: int | None = None) -> None:
        self.lengths, self.envs = lengths, envs
        n = envs or 1
        self.episode, self.t = [0] * n, [0] * n

    def _env(self, e: int, n: int) -> TensorDict:
        obs, nxt, act, rew, init, term = [], [], [], [], [], []
        for _ in range(n):
            k, t = self.episode[e], self.t[e]
            end = t + 1 == self.lengths(e, k)
            obs.append([1000.0 * e + k, t])
            nxt.append([1000.0 * e + k, t + 1])
            act.append([t + 1.0, float(e)])
            rew.append([t + 1.5])
            init.append([t == 0])
            term.append([end])
            self.t[e] = 0 if end else t + 1
            self.episode[e] += int(end)
        term_t = torch.tensor(term)
        return TensorDict({
            "observation": torch.tensor(obs), "action": torch.tensor(act), "is_init": torch.tensor(init),
            "next": {"observation": torch.tensor(nxt), "reward": torch.tensor(rew), "terminated": term_t,
                     "truncated": torch.zeros_like(term_t), "done": term_t.clone()},
        }, batch_size=[n])

    def batch(self, n: int) -> TensorDict:
        if self.envs is None:
            return self._env(0, n)
        return torch.stack([self._env(e, n) for e in range(self.envs)], 0)


def short_episodes(e: int, k: int) -> int:
    return 3 + (5 * k + 2 * e) % 5  # 3 .. 7 steps: 4 .. 8 stored rows, all shorter than seq_len 16


def assert_stream_slices(batch: TensorDictBase) -> None:
    """Every slice: one stream, consecutive stream steps, the row alignment kept across episode boundaries."""
    stream, step = batch["stream"], batch["stream_step"].squeeze(-1)
    assert (stream >= 0).all(), "a detached row was sampled"
    assert (stream == stream[:, :1]).all(), "a slice spans two streams"
    assert (step[:, 1:] - step[:, :-1] == 1).all(), "a slice skips or repeats stream steps"
    init = batch["is_init"].squeeze(-1)
    ident, t = batch["observation"][..., 0], batch["observation"][..., 1]
    new_episode = batch["episode"][:, 1:] != batch["episode"][:, :-1]
    assert torch.equal(new_episode, init[:, 1:]), "episode ids change exactly at reset rows"
    assert torch.equal(ident[:, 1:] != ident[:, :-1], init[:, 1:])
    assert (t[init] == 0).all() and (batch["action"][init] == 0).all() and (batch["reward"][init] == 0).all()
    later = ~init
    assert (batch["action"][..., 0][later] == t[later]).all()
    assert (batch["reward"].squeeze(-1)[later] == t[later] + 0.5).all()
    assert ((t[:, 1:] - t[:, :-1] == 1) | init[:, 1:]).all(), "steps advance by one inside an episode"
    # the row before a reset row is its episode's terminal row
    assert torch.equal(batch["terminated"].squeeze(-1)[:, :-1], init[:, 1:])


# ------------------------------------------------------------------------------------------------ stream rows
def test_writer_numbers_rows_per_stream_across_episodes() -> None:
    collector = Collector(short_episodes, envs=2)
    writer = StepRowWriter(obs_keys=("observation",), streams=True)
    first, second = writer(collector.batch(6)), writer(collector.batch(6))
    for rows in (first, second):
        assert rows["stream"].dtype == torch.int64 and rows["stream"].shape == rows.batch_size
        assert rows["stream_step"].dtype == torch.int64 and rows["stream_step"].shape == (*rows.batch_size, 1)
    rows = torch.cat([first, second], 0)
    for e in (0, 1):
        mine = rows[rows["stream"] == e]
        assert (mine["observation"][:, 0] // 1000 == e).all(), "a stream is one env's rows"
        assert mine["stream_step"].squeeze(-1).tolist() == list(range(len(mine)))
        assert int(mine["is_init"].sum()) >= 3, "the stream runs over several episodes"
    assert "stream" not in StepRowWriter(obs_keys=("observation",))(Collector(short_episodes).batch(4)).keys()


def test_short_episodes_sample_as_stream_slices_but_not_as_episode_slices(tmp_path: Path) -> None:
    """Episodes of 3-7 steps and seq_len 16: no episode holds a slice, the stream holds many."""
    torch.manual_seed(0)
    collector = Collector(short_episodes)
    writer = StepRowWriter(obs_keys=("observation",), streams=True)
    T, B = 16, 32
    stream = make_replay_buffer(capacity=2000, seq_len=T, batch_size=B, scratch_dir=tmp_path / "s", slices="stream")
    episode = make_replay_buffer(capacity=2000, seq_len=T, batch_size=B, scratch_dir=tmp_path / "e")
    for _ in range(10):
        rows = writer(collector.batch(25))
        stream.extend(rows)
        episode.extend(rows)
    assert int(torch.bincount(stream.storage[:]["episode"]).max()) < T
    with pytest.raises(RuntimeError, match="sufficient length"):
        episode.sample()
    starts = set()
    for _ in range(10):
        batch = sample_sequences(stream, B, T, "cpu")
        assert batch.shape == (B, T)
        assert_stream_slices(batch)
        # at most 8 rows per episode: every 16-row slice has a reset row after its first row
        assert batch["is_init"][:, 1:].squeeze(-1).any(-1).all()
        starts.update(batch["stream_step"][:, 0, 0].tolist())
    assert len(starts) > 100, "slices start all over the stream"


def test_several_envs_fragmented_stream_slices_stay_in_one_env(tmp_path: Path) -> None:
    torch.manual_seed(1)
    collector = Collector(short_episodes, envs=3)
    writer = StepRowWriter(obs_keys=("observation",), streams=True)
    T, B = 12, 32
    buffer = make_replay_buffer(capacity=3000, seq_len=T, batch_size=B, scratch_dir=tmp_path / "rb",
                                slices="stream", fragmented=True)
    for _ in range(15):
        buffer.extend(writer(collector.batch(4)))  # 4 steps per env per batch: segments of 4-6 rows
    jumped = 0
    for _ in range(10):
        batch = sample_sequences(buffer, B, T, "cpu")
        assert_stream_slices(batch)
        env = (batch["observation"][..., 0] // 1000).long()
        assert torch.equal(env, batch["stream"]), "a fresh writer's stream e is env e"
        slots = batch["index"].squeeze(-1)
        jumped += int(((slots[:, 1:] - slots[:, :-1]) != 1).any(-1).sum())
    assert jumped > 0, "slices are stitched across the per-env segments"


# --------------------------------------------------------------------------------------------------- resume
def test_restored_writer_opens_new_streams_and_continues_episodes() -> None:
    collector = Collector(lambda e, k: 13, envs=2)
    writer = StepRowWriter(obs_keys=("observation",), streams=True)
    old = torch.cat([writer(collector.batch(10)), writer(collector.batch(10))], 0)
    state = writer.state_dict()
    json.dumps(state)
    restored = StepRowWriter(obs_keys=("observation",), streams=True)
    restored.load_state_dict(state)
    new = restored(collector.batch(5))
    old_ids, new_ids = set(old["stream"].tolist()), set(new["stream"].tolist())
    assert old_ids == {0, 1} and len(new_ids) == 2 and not old_ids & new_ids
    assert all(i >= state["next_stream"] for i in new_ids)
    for e in (0, 1):
        before = old[(old["observation"][:, 0] // 1000) == e]
        after = new[(new["observation"][:, 0] // 1000) == e]
        assert after["stream_step"].squeeze(-1).tolist() == list(range(len(after))), "a new stream starts at 0"
        # the episode itself goes on: same id, next step, no reset row
        assert int(after["episode"][0]) == int(before["episode"][-1])
        assert int(after["step_count"][0]) == int(before["step_count"][-1]) + 1
        assert not bool(after["is_init"][0])
    # a second restore from a newer state never reuses the first restore's streams
    again = StepRowWriter(obs_keys=("observation",), streams=True)
    again.load_state_dict(restored.state_dict())
    assert not set(again(collector.batch(2))["stream"].tolist()) & (old_ids | new_ids)


@pytest.mark.parametrize("fragmented", [False, True])
def test_restore_detaches_stream_rows_written_after_checkpoint(tmp_path: Path, fragmented: bool) -> None:
    """As tests/test_replay.py's episode version: the old process wrapped the buffer after the checkpoint."""
    kwargs = dict(capacity=110, seq_len=5, batch_size=16, scratch_dir=tmp_path / "rb", fragmented=fragmented,
                  slices="stream")
    collector = Collector(lambda e, k: 13, envs=2)
    writer = StepRowWriter(obs_keys=("observation",), streams=True)
    old = make_replay_buffer(**kwargs)
    for _ in range(5):
        old.extend(writer(collector.batch(10)))  # per env 50 steps + 4 resets = 54 rows, stream steps 0..53
    state, writer_state = replay_state(old), writer.state_dict()
    assert state["len"] == 108 and state["stream_ends"] == {"0": 53, "1": 53}
    json.dumps(state)
    for _ in range(4):
        old.extend(writer(collector.batch(10)))  # 86 rows: slots 108, 109, 0..83 (stream steps 54..96)
    del old

    buffer = make_replay_buffer(**kwargs)
    restore_replay(buffer, state)
    stored = buffer.storage[:]
    assert len(buffer) == 108
    lost, kept = stored[:84], stored[84:]
    assert (lost["stream"] < 0).all() and len(lost["stream"].unique()) == 84, "one singleton stream per lost row"
    assert (lost["stream_step"] == 0).all()
    assert set(kept["stream"].tolist()) == {0, 1} and int(kept["stream_step"].max()) <= 53
    restored = StepRowWriter(obs_keys=("observation",), streams=True)
    restored.load_state_dict(writer_state)
    fresh = Collector(lambda e, k: 10, envs=2)
    seen: set[int] = set()
    for _ in range(3):
        buffer.extend(restored(fresh.batch(10)))
        for _ in range(4):
            batch = sample_sequences(buffer, 16, 5, "cpu")
            assert (batch["stream"] >= 0).all(), "a lost row was sampled"
            stream, step = batch["stream"], batch["stream_step"].squeeze(-1)
            assert (stream == stream[:, :1]).all() and (step[:, 1:] - step[:, :-1] == 1).all()
            seen.update(stream[:, 0].tolist())
    assert seen - {0, 1}, "the restored writer's new streams are sampled"
    assert int(replay_state(buffer)["len"]) == 110


# ------------------------------------------------------------------------------------------- repval cut
class TableCritic(nn.Module):
    """A critic predicting ``v [B, T-1, 1]`` whatever the states: the loss gradient reads back each target."""

    def __init__(self, B: int, T: int) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.zeros(B, T - 1, 1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.v.expand(*feat.shape[:-1], 1)


def repval_targets(reward: list[list[float]], boot: list[list[float]], is_init: list[list[bool]] | None,
                   scale: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """``(targets R [B, T-1], loss)`` of :class:`ReplayValueLoss` with γ = λ = 0.5, read from its gradient at v = 0:
    ``L = scale · mean_{b,t} w_t [½ (R - v)² + ½ log 2π]``, so ``dL/dv_{b,t} = scale w_t (v - R) / (B (T-1))``.
    ``w_t = 0`` on an episode's last row (``is_init_{t+1}``): its gradient must be 0 and its target reads NaN."""
    B, T = len(reward), len(reward[0])
    td = TensorDict({"feat": torch.randn(B, T, 3), "reward": torch.tensor(reward).unsqueeze(-1),
                     "terminated": torch.zeros(B, T, 1, dtype=torch.bool),
                     "bootstrap": torch.tensor(boot).unsqueeze(-1)}, [B, T])
    weight = torch.ones(B, T - 1)
    if is_init is not None:
        td["is_init"] = torch.tensor(is_init).unsqueeze(-1)
        weight = (~torch.tensor(is_init)[:, 1:]).float()
    critic = TableCritic(B, T)
    loss = ReplayValueLoss(critic, gamma=0.5, lambda_=0.5, scale=scale)(td)["loss_repval"]
    (grad,) = torch.autograd.grad(loss, critic.v)
    assert (grad[..., 0][weight == 0] == 0).all(), "an episode's last row is not trained"
    targets = torch.where(weight > 0, -grad[..., 0] * B * (T - 1) / scale, torch.nan)
    expected = scale * (weight * (0.5 * targets.nan_to_num().square() + 0.5 * math.log(2 * math.pi))).mean()
    torch.testing.assert_close(loss, expected)  # the loss is the weighted unit-Gaussian NLL of these targets
    return targets, loss


def test_replay_value_return_stops_where_a_new_episode_starts() -> None:
    """γ = λ = 0.5, r = [_, 1, 2], b = [10, 20, 30], nothing terminates.

    Uncut (as tests/test_v2_v3.py):  R_1 = 2 + 0.5 (0.5·30 + 0.5·30) = 17,  R_0 = 1 + 0.5 (0.5·20 + 0.5·17) = 10.25
    is_init at t = 2 (s_1 -> s_2 is no transition):  R_1 = b_1 (row 1 is its episode's last: weight 0),
                                                       R_0 = 1 + 0.5 (0.5·20 + 0.5·20) = 11
    is_init at t = 1:                                  R_0 = b_0 (weight 0),   R_1 = 17 (uncut)
    """
    nan = float("nan")
    r, b = [[0.0, 1.0, 2.0]], [[10.0, 20.0, 30.0]]
    uncut = torch.tensor([[10.25, 17.0]])
    for flags in (None, [[False, False, False]], [[True, False, False]]):  # a slice-start flag changes nothing
        torch.testing.assert_close(repval_targets(r, b, flags)[0], uncut)
    cut2, _ = repval_targets(r, b, [[False, False, True]])
    torch.testing.assert_close(cut2, torch.tensor([[11.0, nan]]), equal_nan=True)
    torch.testing.assert_close(repval_targets(r, b, [[False, True, False]])[0], torch.tensor([[nan, 17.0]]),
                               equal_nan=True)
    # past the cut nothing matters: the reward on the reset row and the next episode's bootstrap are ignored
    torch.testing.assert_close(repval_targets([[0.0, 1.0, 99.0]], [[10.0, 20.0, -50.0]], [[False, False, True]])[0],
                               cut2, equal_nan=True)
    # rows of a batch are cut independently
    both, _ = repval_targets(r * 2, b * 2, [[False, False, False], [False, False, True]])
    torch.testing.assert_close(both, torch.tensor([[10.25, 17.0], [11.0, nan]]), equal_nan=True)


def test_replay_value_loss_with_is_init_golden_with_a_gaussian_head() -> None:
    """The same cut through a real ScalarHead: loss = 0.3 · mean_t w_t [½ (R_t - v_t)² + ½ log 2π], R_0 = 11, w = [1, 0]
    (row 1 is its episode's last)."""
    from dreamer_rl.nets.heads import ScalarHead

    torch.manual_seed(0)
    head = ScalarHead(2, kind="gaussian", units=4, layers=1)
    feat = torch.randn(1, 3, 2)
    with torch.no_grad():
        v = head(feat)[0, :2, 0]
    td = TensorDict({"feat": feat, "reward": torch.tensor([[[0.0], [1.0], [2.0]]]),
                     "terminated": torch.zeros(1, 3, 1, dtype=torch.bool),
                     "bootstrap": torch.tensor([[[10.0], [20.0], [30.0]]]),
                     "is_init": torch.tensor([[[False], [False], [True]]])}, [1, 3])
    loss = ReplayValueLoss(head, gamma=0.5, lambda_=0.5, scale=0.3)
    for targets, weight in ((torch.tensor([11.0, 20.0]), torch.tensor([1.0, 0.0])), (None, None)):
        if targets is None:  # without the flag: the uncut recursion, every row weighted
            del td["is_init"]
            targets, weight = torch.tensor([10.25, 17.0]), torch.ones(2)
        expected = 0.3 * (weight * (0.5 * (targets - v).square() + 0.5 * math.log(2 * math.pi))).mean()
        torch.testing.assert_close(loss(td)["loss_repval"], expected)
