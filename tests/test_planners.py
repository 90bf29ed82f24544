"""Latent planners: CEM and MPPI on toy models whose optimum is known, warm starts, batching, plan summaries."""

from __future__ import annotations

import torch
from torch import nn

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.planners import CEMPlanner, MPPIPlanner, latent_returns, make_planner, sample_onehot
from dreamer_rl.planners.base import LatentPlanner
from dreamer_rl.rssm import RSSM


class _Move(nn.Module):
    """Transition of a point on a line: ``x' = x + step · a`` (continuous) or ``x + values · onehot(a)``."""

    def __init__(self, values: torch.Tensor | None = None) -> None:
        super().__init__()
        self.values = values

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        if self.values is None:
            return action[..., :1]
        return (action * self.values).sum(-1, keepdim=True)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:
        return deter + action_in


class ToyModel(nn.Module):
    """A deterministic 'world model': the state is the position, the reward ``-(x - target)²``."""

    def __init__(self, target: float, values: torch.Tensor | None = None) -> None:
        super().__init__()
        self.transition, self.target = _Move(values), target
        self.deter, self.stoch = 1, 1

    def prior(self, deter):
        return torch.zeros(*deter.shape[:-1], 2)

    def sample(self, stats):
        return stats[..., :1]

    def mode(self, stats):
        return stats[..., :1]

    def feat(self, stoch, deter):
        return deter

    prior_step = RSSM.prior_step  # the planners' step: transition, prior, sample or mode, feat

    def reward(self, feat):
        return -(feat - self.target).square()


def _start(n: int, x: float = 0.0):
    return torch.full((n, 1), x), torch.zeros(n, 1)


def test_cem_continuous_finds_the_known_optimum():
    torch.manual_seed(0)
    model = ToyModel(target=0.7)
    planner = CEMPlanner(model, model.reward, ActionSpace("continuous", (1,)), horizon=5, candidates=500,
                         iterations=8, top_k=50)
    action, plan = planner(*_start(3))
    # the best sequence reaches 0.7 at once and stays: a_0 = 0.7, then 0
    assert torch.allclose(action, torch.full((3, 1), 0.7), atol=0.05), action
    assert plan.shape == (3, 5, 1) and plan[:, 1:].abs().max() < 0.1
    # a start beyond the target moves back (the planner reads each env's own state)
    action, _ = planner(torch.tensor([[0.0], [1.2]]), torch.zeros(2, 1))
    assert action[0, 0] > 0.6 and action[1, 0] < -0.4


def test_cem_discrete_finds_the_known_optimum():
    torch.manual_seed(0)
    values = torch.tensor([-1.0, 0.0, 1.0])
    model = ToyModel(target=2.0, values=values)
    space = ActionSpace("discrete", (3,))
    planner = CEMPlanner(model, model.reward, space, horizon=4, candidates=300, iterations=5, top_k=30)
    action, logits = planner(*_start(2))
    assert torch.equal(action, torch.tensor([[0.0, 0.0, 1.0]] * 2))  # +1 first (two steps to the target)
    # the refit logits: step 0 and 1 all "+1", then "stay" preferred (log freq + 1e-6)
    assert (logits[:, 0].argmax(-1) == 2).all() and (logits[:, 1].argmax(-1) == 2).all()
    assert (logits[:, 2].argmax(-1) == 1).all()
    assert torch.allclose(logits.exp()[:, 0].sum(-1), torch.ones(2), atol=1e-4)


def test_mppi_continuous_and_discrete():
    torch.manual_seed(0)
    model = ToyModel(target=-0.5)
    planner = MPPIPlanner(model, model.reward, ActionSpace("continuous", (1,)), horizon=5, candidates=400,
                          iterations=8, top_k=40, temperature=5.0)
    action, plan = planner(*_start(2))
    assert torch.allclose(plan[:, 0], torch.full((2, 1), -0.5), atol=0.1), plan[:, 0]
    assert action.shape == (2, 1) and (action - (-0.5)).abs().max() < 0.3
    model = ToyModel(target=-2.0, values=torch.tensor([-1.0, 0.0, 1.0]))
    planner = make_planner("mppi", model, model.reward, ActionSpace("discrete", (3,)), horizon=4, candidates=300,
                           iterations=5, top_k=30)
    action, _ = planner(*_start(2))
    assert torch.equal(action, torch.tensor([[1.0, 0.0, 0.0]] * 2))


def test_multidiscrete_samples_one_onehot_per_block():
    logits = torch.zeros(2, 3, 5)
    logits[..., 1] = 50.0  # block 0 (2 classes): always class 1
    samples = sample_onehot(logits, (2, 3), candidates=64)
    assert samples.shape == (2, 64, 3, 5)
    assert torch.equal(samples[..., :2].sum(-1), torch.ones(2, 64, 3))
    assert torch.equal(samples[..., 2:].sum(-1), torch.ones(2, 64, 3))
    assert (samples[..., 1] == 1).all()
    freq = samples[..., 2:].mean((0, 1, 2))  # uniform block: about a third each
    assert (freq - 1 / 3).abs().max() < 0.1


def test_warm_start_shift_and_reset():
    plan = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1) + 1
    shifted = LatentPlanner.shift(plan)
    assert torch.equal(shifted[:, :3], plan[:, 1:]) and (shifted[:, 3] == 0).all()
    reset = LatentPlanner.shift(plan, torch.tensor([[False], [True]]))
    assert torch.equal(reset[0], shifted[0]) and (reset[1] == 0).all()


def test_warm_start_is_used():
    """A warm start near the optimum gets there with one iteration; a cold start does not."""
    torch.manual_seed(0)
    model = ToyModel(target=0.9)
    planner = CEMPlanner(model, model.reward, ActionSpace("continuous", (1,)), horizon=3, candidates=50,
                         iterations=1, top_k=5, init_std=0.05)
    warm = torch.zeros(1, 3, 1)
    warm[:, 0] = 0.9
    assert abs(float(planner(*_start(1), warm)[0]) - 0.9) < 0.05
    assert abs(float(planner(*_start(1))[0]) - 0.9) > 0.5


def test_objectives():
    model = ToyModel(target=0.0)
    actions = torch.ones(1, 1, 3, 1) * 0.5  # positions 0.5, 1.0, 1.5 -> rewards -0.25, -1, -2.25
    deter, stoch = _start(1)
    total = latent_returns(model, model.reward, deter, stoch, actions)
    assert torch.allclose(total, torch.tensor([[-3.5]]))
    disc = latent_returns(model, model.reward, deter, stoch, actions, objective="discounted", gamma=0.5)
    assert torch.allclose(disc, torch.tensor([[-0.25 - 0.5 - 0.5625]]))
    value = latent_returns(model, model.reward, deter, stoch, actions, objective="value", gamma=0.5,
                           value=lambda f: 10 * f)
    assert torch.allclose(value, disc + 0.125 * 15)


def test_plan_summary_and_candidate_batching():
    torch.manual_seed(0)
    model = ToyModel(target=0.3)
    calls = []

    def reward(feat):
        calls.append(feat.shape)
        return model.reward(feat)

    planner = CEMPlanner(model, reward, ActionSpace("continuous", (1,)), horizon=6, candidates=100, iterations=4,
                         top_k=10, summarise=True)
    planner(*_start(3))
    planner(*_start(3))
    # one reward call per iteration over all envs x candidates x steps: no loop over candidates
    assert calls == [torch.Size([300, 6, 1])] * 8
    summary = planner.plan_summary()
    assert summary["plan/return_last_mean"] > summary["plan/return_first_mean"]
    assert summary["plan/return_last_max"] <= 0 and summary["plan/return_first_min"] < summary["plan/return_last_min"]
    assert planner.last_returns.shape == (3, 100)
    assert planner.plan_summary() == {}


def test_planner_on_a_real_world_model_and_its_device_placement():
    from dreamer_rl.world_model import WorldModel

    wm = WorldModel((5,), 2, stoch=4, deter=8, hidden=8, units=8)
    planner = CEMPlanner(wm.rssm, wm.reward, ActionSpace("continuous", (2,)), horizon=3, candidates=20,
                         iterations=2, top_k=4)
    assert list(planner.parameters()) == [] and planner.state_dict() == {}  # the model is the agent's
    deter, stoch = wm.rssm.initial((2,))
    action, plan = planner(deter, stoch)
    assert action.shape == (2, 2) and plan.shape == (2, 3, 2) and action.abs().max() <= 1
