"""DreamerV3's replay context (``train.replay_context 1``): each slice starts from the model state stored with its
first row — the acting policy's posterior, refreshed by training — instead of the zero state.

What each part really receives is checked against the model itself: the state stored with row ``t + 1`` must be the
filter step of row ``t`` from row ``t``'s own stored state (an off-by-one anywhere breaks this exact relation).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe
from dreamer_rl.policy import DreamerPolicy
from dreamer_rl.replay import CONTEXT_KEYS, StepRowWriter, make_replay_buffer, sample_sequences, write_context
from envs import make_env
from recipes.presets import apply_presets
from tests.test_v2_v3 import context_of, make_batch

V3 = Recipe.model_validate(apply_presets(["dreamer_v3", "dmc_proprio", "debug"]))


def test_the_v3_preset_uses_replay_context_instead_of_slice_start_reset() -> None:
    assert V3.train.replay_context == 1 and not V3.train.slice_start_reset
    with pytest.raises(ValueError, match="replay_context 1 starts each slice from its stored state.*set one of"):
        Recipe.model_validate(apply_presets(["dreamer_v3", "debug"]) | {"train": {
            **apply_presets(["dreamer_v3", "debug"])["train"], "slice_start_reset": True}})


def test_stored_context_is_the_policys_filter_of_the_row_before() -> None:
    torch.manual_seed(0)
    env = make_env("dmc_cartpole_balance", from_pixels=False, max_episode_frames=40, seed=1)  # 20-step episodes
    agent = build_dreamer(V3, tuple(env.observation_spec["observation"].shape), env.action_spec.shape[-1])
    policy = DreamerPolicy(agent, obs_key="observation", mode="explore")
    env.append_transform(policy.primer())
    collector = Collector(env, policy, frames_per_batch=50, total_frames=50)
    batch = next(iter(collector))
    collector.shutdown()
    rows = StepRowWriter(obs_keys=("observation",), context=True)(batch)
    deter, stoch = rows["context_deter"], rows["context_stoch"]
    assert deter.dtype == stoch.dtype == torch.float16 and rows.shape[0] == 50 + 3  # three reset rows
    is_init = rows["is_init"].squeeze(-1)
    assert not deter[is_init].any() and not stoch[is_init].any()  # the model resets there
    rssm = agent.world_model.rssm
    groups = stoch[~is_init].float().reshape(-1, rssm.stoch // V3.model.classes, V3.model.classes)
    torch.testing.assert_close(groups.sum(-1), torch.ones(groups.shape[:2]))  # one-hot z, stored exactly
    # row t+1's deter = the deterministic step of row t from row t's own stored state and stored action
    keep = (~is_init[:-1]).float().unsqueeze(-1)
    with torch.no_grad():
        h = rssm.transition(deter[:-1].float() * keep, stoch[:-1].float() * keep,
                            rssm.transition.action_input(rows["action"][:-1] * keep))
    follows = ~is_init[1:]  # (a reset row's own context is zero, checked above)
    torch.testing.assert_close(deter[1:][follows].float(), h[follows], atol=2e-3, rtol=0)  # float16 in [-1, 1]
    # and it is the policy's own state after each transition's observation, stored with the next observation's row
    torch.testing.assert_close(deter[~is_init].float(), batch["next", "recurrent", "deter"], atol=1e-3, rtol=0)
    torch.testing.assert_close(stoch[~is_init].float(), batch["next", "recurrent", "stoch"])


def test_writer_without_the_policy_state_names_what_is_missing() -> None:
    transitions = TensorDict({"observation": torch.zeros(2, 3), "action": torch.zeros(2, 1),
                              "next": {"observation": torch.zeros(2, 3), "reward": torch.zeros(2, 1),
                                       "done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])
    with pytest.raises(KeyError, match=r"context=True.*\('next', 'recurrent', 'deter'\).*DreamerPolicy"):
        StepRowWriter(obs_keys=("observation",), context=True)(transitions)


def test_write_context_stores_each_state_as_the_next_rows_context(tmp_path: Path) -> None:
    n, D, S = 40, 4, 6
    is_init = torch.zeros(n, 1, dtype=torch.bool)
    is_init[[0, 20]] = True  # row 20 starts an episode inside a stream slice: its context stays zero
    rows = TensorDict({"episode": torch.zeros(n, dtype=torch.long), "step_count": torch.arange(n)[:, None],
                       "is_init": is_init, "context_deter": torch.zeros(n, D, dtype=torch.float16),
                       "context_stoch": torch.zeros(n, S, dtype=torch.float16)}, [n])
    buffer = make_replay_buffer(capacity=100, seq_len=5, batch_size=3, scratch_dir=tmp_path / "replay")
    buffer.extend(rows)
    batch = sample_sequences(buffer, 3, 5, "cpu")
    index = torch.stack([torch.arange(3, 8), torch.arange(18, 23), torch.arange(30, 35)])  # [3, 5] storage slots
    deter = torch.arange(1, 16, dtype=torch.float32).reshape(3, 5, 1).expand(3, 5, D) / 16
    stoch = -deter[..., :1].expand(3, 5, S)
    write_context(buffer, index.unsqueeze(-1), deter, stoch)
    stored = buffer.storage[torch.arange(n)]
    expected_deter = torch.zeros(n, D)
    expected_deter[index[:, 1:].reshape(-1)] = deter[:, :-1].reshape(-1, D)
    expected_deter[20] = 0
    torch.testing.assert_close(stored["context_deter"].float(), expected_deter)  # first rows and the rest untouched
    expected_stoch = stoch[:, :-1].reshape(-1, S).clone()
    expected_stoch[index[:, 1:].reshape(-1) == 20] = 0
    torch.testing.assert_close(stored["context_stoch"][index[:, 1:].reshape(-1)].float(), expected_stoch)
    plain = make_replay_buffer(capacity=100, seq_len=5, batch_size=3, scratch_dir=tmp_path / "plain")
    plain.extend(rows.exclude(*CONTEXT_KEYS))
    with pytest.raises(ValueError, match="stores no replay context.*StepRowWriter\\(context=True\\)"):
        write_context(plain, batch["index"], deter, stoch)


def test_the_loss_starts_each_slice_from_its_first_rows_context() -> None:
    torch.manual_seed(0)
    agent = build_dreamer(V3, (5,), 1)
    learner = Learner(agent, V3, obs_key="observation")
    loss = learner.world_model_loss
    data = make_batch(B=2, T=6, A=1, obs_dim=5, context=context_of(agent))
    data["is_init"][:, 0] = False  # slices from the middle of an episode
    data["context_deter"][:, 0] = (torch.rand(2, agent.world_model.rssm.deter) * 2 - 1).half()

    def posterior(td: TensorDict) -> torch.Tensor:
        torch.manual_seed(1)
        with torch.no_grad():
            _, states = loss(learner.prepare(td))
        return states.get(("posterior", "deter"))

    rssm = agent.world_model.rssm
    with torch.no_grad():  # step 0 starts from the stored state with the stored action a_(-1)
        h0 = rssm.transition(data["context_deter"][:, 0].float(), data["context_stoch"][:, 0].float(),
                             rssm.transition.action_input(data["action"][:, 0]))
    torch.testing.assert_close(posterior(data)[:, 0], h0)
    later = data.clone()
    later["context_deter"][:, 1:] = 0.7  # only the first row's context is read
    assert torch.equal(posterior(data), posterior(later))
    zero = data.clone()
    zero["context_deter"].zero_()
    assert not torch.equal(posterior(data), posterior(zero))
    data["is_init"][:, 0] = True  # an episode start resets whatever was stored
    zero["is_init"][:, 0] = True
    assert torch.equal(posterior(data), posterior(zero))
    with pytest.raises(KeyError, match="StepRowWriter\\(context=True\\), or set train.replay_context 0"):
        loss(data.exclude(*CONTEXT_KEYS))


def test_a_v3_run_stores_the_policys_states_and_writes_back_every_update(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: every update hands its batch's slots and posterior states to ``write_context``, and the replay
    on disk holds a state for every row past an episode start."""
    from dreamer_rl import train, training
    from recipes import make_recipe

    calls: list[tuple[torch.Size, torch.Size, torch.Size]] = []

    def spy(buffer, index, deter, stoch):  # noqa: ANN001, ANN202
        calls.append((index.shape, deter.shape, stoch.shape))
        write_context(buffer, index, deter, stoch)

    monkeypatch.setattr(training, "write_context", spy)
    recipe = make_recipe("dreamer_v3", "dmc_proprio", "debug", overrides={
        "run.runs_dir": str(tmp_path / "runs"), "run.threads": 1, "run.steps": 400, "run.name": "ctx",
        "tracking.enabled": False})
    summary = train("dmc_cartpole_balance", recipe)
    B, T = recipe.train.batch_size, recipe.train.seq_len
    D, S = recipe.model.deter, recipe.model.stoch * recipe.model.classes
    assert summary["updates"] > 0 and len(calls) == summary["updates"]
    assert set(calls) == {(torch.Size([B, T, 1]), torch.Size([B, T, D]), torch.Size([B, T, S]))}
    stored = TensorDict.load_memmap(tmp_path / "runs" / "ctx" / "replay")
    n = summary["frames"] // recipe.env.action_repeat + summary["episodes"]  # rows written, reset rows too
    is_init = stored["is_init"][:n].squeeze(-1)
    deter, stoch = stored["context_deter"][:n].float(), stored["context_stoch"][:n].float()
    assert int(is_init.sum()) == summary["episodes"] and not deter[is_init].any() and not stoch[is_init].any()
    # every other row holds a sampled z: one class on per variable (h may be 0 right after a reset: zero biases)
    assert torch.equal(stoch[~is_init].sum(-1), torch.full(((~is_init).sum(),), float(recipe.model.stoch)))
