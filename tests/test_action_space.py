"""Action spaces: detection from TorchRL specs, one-hot round trips, uniform random actions, ε-greedy statistics,
the TF1 exploration schedule, the one-hot actor distributions, and what a Categorical env really receives.

Statistical checks use fixed seeds and ~20k draws; their tolerances are several standard errors wide (the standard
error of a frequency p over N draws is sqrt(p (1 - p) / N) ≈ 0.003 at N = 20k).
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from torch import distributions as D
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
)
from torchrl.envs import GymEnv, GymWrapper
from torchrl.envs.utils import check_env_specs

from dreamer_rl.action_space import ActionSpace, OneHotActions, explore_amount
from dreamer_rl.env_source import adapt_env
from dreamer_rl.errors import UserError
from dreamer_rl.nets.actors import MultiOneHotDist, OneHotActor, OneHotDist

N = 20_000
SUPPORTED = "supported: Box with finite bounds, Discrete, MultiDiscrete"


# ------------------------------------------------------------------------------------------------ 1. detection
@pytest.mark.parametrize("spec, kind, sizes, encoding", [
    (OneHot(4), "discrete", (4,), "onehot"),
    (MultiOneHot(nvec=[3, 4]), "discrete", (3, 4), "onehot"),
    (Categorical(5), "discrete", (5,), "categorical"),
    (Categorical(5, shape=(1,)), "discrete", (5,), "categorical"),
    (MultiCategorical([2, 3]), "discrete", (2, 3), "categorical"),
    (Bounded(-2.0, 2.0, shape=(3,)), "continuous", (3,), "onehot"),
    (Composite(action=OneHot(4)), "discrete", (4,), "onehot"),
    (Composite(action=Bounded(-1.0, 1.0, shape=(2,))), "continuous", (2,), "onehot"),
    # leading batch dims of a batched env's spec are ignored
    (OneHot(4).expand(5, 4), "discrete", (4,), "onehot"),
    (MultiCategorical([2, 3]).expand(6, 2), "discrete", (2, 3), "categorical"),
], ids=["onehot", "multionehot", "categorical", "categorical1", "multicategorical", "bounded", "composite",
        "composite_bounded", "batched_onehot", "batched_multicategorical"])
def test_action_space_from_spec(spec, kind: str, sizes: tuple[int, ...], encoding: str) -> None:
    space = ActionSpace.from_spec(spec)
    assert (space.kind, space.sizes, space.env_encoding) == (kind, sizes, encoding)
    assert space.discrete == (kind == "discrete") and space.dim == sum(sizes)


@pytest.mark.parametrize("spec, names", [
    (Bounded(-math.inf, math.inf, shape=(2,)), ["finite bounds"]),
    (Bounded(torch.tensor([-1.0, -math.inf]), torch.tensor([1.0, 1.0]), shape=(2,)), ["finite bounds"]),
    (Binary(n=3), ["Binary", "(3,)"]),
    (Unbounded(shape=(2,)), ["Unbounded", "(2,)"]),
    (Categorical(5, shape=(2,)), ["Categorical", "(2,)"]),
    (Bounded(0, 3, shape=(2,), dtype=torch.int64), ["Bounded", "int64"]),
], ids=["inf_bounds", "one_inf_bound", "binary", "unbounded", "categorical_2", "int_bounded"])
def test_unsupported_specs_raise_one_line_naming_spec_and_supported(spec, names: list[str]) -> None:
    with pytest.raises(UserError) as err:
        ActionSpace.from_spec(spec, where="gym_Foo-v0")
    message = str(err.value)
    assert "\n" not in message and message.startswith("gym_Foo-v0: ")
    assert SUPPORTED in message
    for name in names:
        assert name in message, message


def test_composite_without_action_entry_raises() -> None:
    with pytest.raises(UserError, match=r"no 'action' entry.*'obs'"):
        ActionSpace.from_spec(Composite(obs=Unbounded(shape=(2,))))


# ------------------------------------------------------------------------------- 2. one-hot layout and sampling
def test_indices_and_one_hot_by_hand() -> None:
    space = ActionSpace("discrete", (3, 4))
    action = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                           [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    assert space.indices(action).tolist() == [[1, 3], [0, 1]]
    assert space.indices(action).dtype == torch.int64
    torch.testing.assert_close(space.one_hot(torch.tensor([[1, 3], [0, 1]])), action)
    assert [b.tolist() for b in space.split(action[:1])] == [[[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0, 1.0]]]
    assert space.indices(action.bool()).tolist() == [[1, 3], [0, 1]]  # a bool spec's random actions


def test_one_hot_of_indices_round_trips_random_actions() -> None:
    torch.manual_seed(0)
    space = ActionSpace("discrete", (3, 4))
    action = space.random(2, 500)
    assert action.shape == (2, 500, 7) and action.dtype == torch.float32
    index = space.indices(action)
    assert index.shape == (2, 500, 2) and int(index[..., 0].max()) == 2 and int(index[..., 1].max()) == 3
    assert torch.equal(space.one_hot(index), action)
    assert torch.equal(space.indices(space.one_hot(index)), index)


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = counts.sum() * probs
    return float(((counts - expected).square() / expected).sum())


def test_random_discrete_actions_are_uniform_one_hots_per_block() -> None:
    torch.manual_seed(0)
    space = ActionSpace("discrete", (3, 4))
    action = space.random(N)
    assert set(action.unique().tolist()) == {0.0, 1.0}
    for block, n in zip(space.split(action), space.sizes):
        assert (block.sum(-1) == 1).all(), "exactly one 1 per block"
        freq = block.mean(0)
        assert (freq - 1 / n).abs().max() < 0.015, freq
    # joint 3 x 4 table: uniform and independent across blocks (chi-square, 11 dof: 99.9% quantile 31.3)
    index = space.indices(action)
    joint = torch.bincount(index[:, 0] * 4 + index[:, 1], minlength=12).float()
    assert chi_square(joint, torch.full((12,), 1 / 12)) < 31.3


def test_random_continuous_actions_are_uniform_in_unit_box() -> None:
    torch.manual_seed(0)
    action = ActionSpace("continuous", (3,)).random(N)
    assert action.shape == (N, 3) and action.min() >= -1 and action.max() <= 1
    torch.testing.assert_close(action.mean(0), torch.zeros(3), atol=0.02, rtol=0)
    torch.testing.assert_close(action.var(0), torch.full((3,), 1 / 3), atol=0.02, rtol=0)  # Var U[-1, 1] = 1/3


# ------------------------------------------------------------------------------------------------ 3. ε-greedy
@pytest.mark.parametrize("sizes, greedy", [((4,), [2]), ((3, 4), [2, 1])])
def test_epsilon_greedy_replaces_a_fraction_epsilon_of_rows(sizes: tuple[int, ...], greedy: list[int]) -> None:
    """A replaced row equals the greedy one with probability 1 / prod(sizes): P(differs) = ε (1 - 1 / n)."""
    torch.manual_seed(0)
    space = ActionSpace("discrete", sizes)
    action = space.one_hot(torch.tensor(greedy)).expand(N, -1)
    out = space.epsilon_greedy(action, 0.3)
    assert out.shape == action.shape
    assert all((block.sum(-1) == 1).all() for block in space.split(out)), "still one-hot per block"
    differs = (out != action).any(-1).float().mean().item()
    assert differs == pytest.approx(0.3 * (1 - 1 / math.prod(sizes)), abs=0.015)


def test_epsilon_zero_returns_the_input_unchanged() -> None:
    space = ActionSpace("discrete", (3, 4))
    action = torch.rand(100, 7)  # not even one-hot: nothing may touch it
    out = space.epsilon_greedy(action, 0.0)
    assert torch.equal(out, action)
    assert torch.equal(space.epsilon_greedy(action, -0.1), action)


def test_epsilon_greedy_replaces_whole_actions_with_one_coin_per_row() -> None:
    """Sizes (3, 4), greedy (2, 1), ε = 0.3. One coin per row: a replaced row draws both blocks, so

        P(both blocks differ)       = ε · 2/3 · 3/4 = 0.15      (per-block coins: (ε 2/3)(ε 3/4) = 0.045)
        P(only block 0 differs)     = ε · 2/3 · 1/4 = 0.05
        P(only block 1 differs)     = ε · 1/3 · 3/4 = 0.075
    """
    torch.manual_seed(1)
    space = ActionSpace("discrete", (3, 4))
    action = space.one_hot(torch.tensor([2, 1])).expand(N, -1)
    out = space.epsilon_greedy(action, 0.3)
    d0, d1 = [(o != a).any(-1) for o, a in zip(space.split(out), space.split(action))]
    assert (d0 & d1).float().mean().item() == pytest.approx(0.15, abs=0.012)
    assert (d0 & ~d1).float().mean().item() == pytest.approx(0.05, abs=0.01)
    assert (~d0 & d1).float().mean().item() == pytest.approx(0.075, abs=0.01)


def test_epsilon_one_gives_uniform_actions_and_coins_per_env_in_batch_dims() -> None:
    torch.manual_seed(2)
    space = ActionSpace("discrete", (3,))
    action = space.one_hot(torch.tensor([0])).expand(40, 500, 3)
    out = space.epsilon_greedy(action, 1.0)
    assert out.shape == (40, 500, 3)
    freq = out.reshape(-1, 3).mean(0)
    assert (freq - 1 / 3).abs().max() < 0.015, freq


# ------------------------------------------------------------------------------------------ 4. ε schedule (TF1)
@pytest.mark.parametrize("amount, frames, decay, floor, expected", [
    (0.4, 5e6, 1e7, 0.1, 0.2),      # the docstring's example: halfway down the ramp
    (0.4, 9.9e6, 1e7, 0.1, 0.1),    # 0.4 · 0.01 = 0.004, floored at 0.1
    (0.4, 0, 1e7, 0.1, 0.4),        # start of the ramp
    (0.4, 2.5e6, 1e7, 0.1, 0.3),    # 0.4 · 0.75
    (0.4, 3e7, 1e7, 0.0, 0.0),      # past the ramp: 0, not negative
    (0.3, 123_456, 0, 0.0, 0.3),    # decay 0: constant
    (0.3, 1e9, 0, 0.0, 0.3),
    (0.05, 0, 0, 0.1, 0.1),         # never below the floor
])
def test_explore_amount_golden(amount: float, frames: float, decay: float, floor: float, expected: float) -> None:
    assert explore_amount(amount, frames, decay, floor) == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------- 5. one-hot actor distributions
def test_one_hot_dist_matches_torch_categorical_and_docstring() -> None:
    d = OneHotDist(torch.tensor([0.0, math.log(3.0)]))  # probs [1/4, 3/4]
    assert d.mode.tolist() == [0.0, 1.0]
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert d.entropy().item() == pytest.approx(entropy, abs=1e-6)  # 0.5623
    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    ref = D.Categorical(logits=logits)
    d = OneHotDist(logits)
    index = torch.randint(5, (6,))
    torch.testing.assert_close(d.log_prob(torch.nn.functional.one_hot(index, 5).float()), ref.log_prob(index))
    torch.testing.assert_close(d.entropy(), ref.entropy())


def multi_setup(seed: int = 0) -> tuple[torch.Tensor, MultiOneHotDist, list[D.Categorical]]:
    torch.manual_seed(seed)
    logits = torch.randn(5, 7) * 2
    return logits, MultiOneHotDist(logits, (3, 4)), [D.Categorical(logits=logits[:, :3]),
                                                    D.Categorical(logits=logits[:, 3:])]


def test_multi_one_hot_dist_log_prob_entropy_mode_are_sums_of_blocks() -> None:
    logits, d, (c0, c1) = multi_setup()
    assert d.batch_shape == (5,) and d.event_shape == (7,)
    space = ActionSpace("discrete", (3, 4))
    index = torch.tensor([[0, 3], [2, 0], [1, 1], [2, 2], [0, 0]])
    action = space.one_hot(index)
    torch.testing.assert_close(d.log_prob(action), c0.log_prob(index[:, 0]) + c1.log_prob(index[:, 1]))
    torch.testing.assert_close(d.entropy(), c0.entropy() + c1.entropy())
    mode = torch.stack([logits[:, :3].argmax(-1), logits[:, 3:].argmax(-1)], -1)
    assert torch.equal(d.mode, space.one_hot(mode))
    # the docstring: uniform logits, entropy log 3 + log 4
    assert MultiOneHotDist(torch.zeros(7), (3, 4)).entropy().item() == pytest.approx(math.log(12), abs=1e-6)


def test_multi_one_hot_dist_samples_follow_each_blocks_probabilities() -> None:
    logits, d, (c0, c1) = multi_setup()
    torch.manual_seed(3)
    sample = d.sample((4000,))  # [S, 5, 7]
    assert sample.shape == (4000, 5, 7)
    blocks = sample.split([3, 4], -1)
    assert all((b.sum(-1) == 1).all() for b in blocks)
    torch.testing.assert_close(blocks[0].mean(0), c0.probs, atol=0.03, rtol=0)
    torch.testing.assert_close(blocks[1].mean(0), c1.probs, atol=0.03, rtol=0)


def test_multi_one_hot_rsample_is_one_hot_with_straight_through_gradient() -> None:
    """rsample = sample + (p - sg(p)) per block: the value is the one-hot sample, the gradient that of Σ w · p."""
    logits, _, _ = multi_setup()
    logits.requires_grad_(True)
    w = torch.randn(5, 7)
    torch.manual_seed(4)
    sample = MultiOneHotDist(logits, (3, 4)).rsample()
    assert set(sample.detach().unique().tolist()) == {0.0, 1.0}
    assert all((b.sum(-1) == 1).all() for b in sample.detach().split([3, 4], -1))
    (grad,) = torch.autograd.grad((w * sample).sum(), logits)
    probs = torch.cat([logits[:, :3].softmax(-1), logits[:, 3:].softmax(-1)], -1)
    (expected,) = torch.autograd.grad((w * probs).sum(), logits)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, expected)
    assert MultiOneHotDist(logits, (3, 4)).sample().grad_fn is None  # plain sample: no gradient


def test_one_hot_actor_with_sizes_gives_one_one_per_block() -> None:
    torch.manual_seed(0)
    actor = OneHotActor(30, 7, units=16, layers=2, unimix=0.01, sizes=(3, 4))
    feat = torch.randn(64, 30)
    action = actor(feat)
    assert action.shape == (64, 7) and action.requires_grad
    assert (action.detach().sum(-1) == 2).all()
    assert all((b.sum(-1) == 1).all() for b in action.detach().split([3, 4], -1))
    dist = actor.dist(feat)
    assert isinstance(dist, MultiOneHotDist)
    for block, n in zip(dist.parts, (3, 4)):  # unimix: every class keeps at least u / n
        torch.testing.assert_close(block.probs.sum(-1), torch.ones(64))
        assert (block.probs >= 0.01 / n - 1e-7).all()
    greedy = actor(feat, sample=False)
    index = torch.stack([dist.parts[0].logits.argmax(-1), dist.parts[1].logits.argmax(-1)], -1)
    assert torch.equal(greedy, ActionSpace("discrete", (3, 4)).one_hot(index))
    action.sum().backward()  # straight-through: the sample's gradient reaches the actor's weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())
    single = OneHotActor(30, 4, units=16, layers=2)
    assert isinstance(single.dist(feat), OneHotDist) and single.sizes == (4,)


def test_one_hot_actor_sizes_must_sum_to_action_dim() -> None:
    with pytest.raises(ValueError, match=r"sizes \(3, 4\) must sum to action_dim 8"):
        OneHotActor(30, 8, units=16, layers=2, sizes=(3, 4))


# ----------------------------------------------------------------- 6. OneHotActions: what a Categorical env gets
class RecordActions(gymnasium.Wrapper):
    """Stores every action the gymnasium env receives."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.received: list = []

    def step(self, action):  # noqa: ANN001, ANN201
        self.received.append(np.array(action).copy())
        return self.env.step(action)


class MultiDiscreteToy(gymnasium.Env):
    """Observation [2] floats, MultiDiscrete([3, 4]) actions, 6-step episodes."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = gymnasium.spaces.MultiDiscrete([3, 4])

    def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN201
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):  # noqa: ANN001, ANN201
        self.t += 1
        obs = np.array([action[0] / 3, action[1] / 4], np.float32)
        return obs, float(action[0]), self.t >= 6, False, {}


def test_categorical_env_gets_one_hot_spec_and_passes_check_env_specs() -> None:
    base = GymEnv("CartPole-v1", categorical_action_encoding=True)
    assert isinstance(base.action_spec, Categorical)
    env = adapt_env(base)
    spec = env.action_spec
    assert isinstance(spec, OneHot) and spec.shape == (2,) and spec.space.n == 2
    assert ActionSpace.from_spec(env.action_spec_unbatched) == ActionSpace("discrete", (2,), "onehot")
    assert "is_init" in env.observation_spec.keys()
    torch.manual_seed(0)
    check_env_specs(env, seed=0)


def test_categorical_env_receives_the_argmax_of_the_one_hot_action() -> None:
    gym_env = RecordActions(gymnasium.make("CartPole-v1"))
    env = adapt_env(GymWrapper(gym_env, categorical_action_encoding=True))
    env.set_seed(0)
    space = ActionSpace("discrete", (2,))
    torch.manual_seed(0)
    td = env.rollout(30, lambda td: td.set("action", space.random()), break_when_any_done=False)
    sent = td["action"].argmax(-1).tolist()
    assert len(set(sent)) == 2 and td["action"].shape == (30, 2)
    assert [int(a) for a in gym_env.received] == sent


def test_multi_categorical_env_receives_per_block_argmax() -> None:
    gym_env = RecordActions(MultiDiscreteToy())
    base = GymWrapper(gym_env, categorical_action_encoding=True)
    assert isinstance(base.action_spec, MultiCategorical)
    env = adapt_env(base)
    assert isinstance(env.action_spec, MultiOneHot) and env.action_spec.shape == (7,)
    transform = env.transform[0]
    assert isinstance(transform, OneHotActions) and transform.index_shape == (2,)
    check_env_specs(env, seed=0)
    gym_env.received.clear()
    space = ActionSpace.from_spec(env.action_spec_unbatched)
    assert space == ActionSpace("discrete", (3, 4), "onehot")
    torch.manual_seed(1)
    td = env.rollout(12, lambda td: td.set("action", space.random()), break_when_any_done=False)
    sent = space.indices(td["action"]).tolist()
    assert [list(map(int, a)) for a in gym_env.received] == sent
    # the env's observation echoes the indices it got: [i0 / 3, i1 / 4]
    expected = torch.tensor(sent, dtype=torch.float32) / torch.tensor([3.0, 4.0])
    torch.testing.assert_close(td["next", "observation"], expected)
