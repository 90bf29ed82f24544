"""Discrete actions end to end: the agent's one-hot actor, the acting policy's modes and exploration, the actor
gradient choice, a learning update on one-hot batches, and the integer action a gymnasium env really receives.

Statistical checks steer an untrained actor with a fixed output bias (class 0 of every block with probability
~1 - 2e-9, no unimix), so the greedy action is known and exploration is the only source of other classes.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.agent import Dreamer, Learner, build_dreamer, resolve_actor_grad
from dreamer_rl.errors import UserError
from dreamer_rl.nets.actors import MultiOneHotDist, OneHotActor, OneHotDist
from dreamer_rl.policy import DreamerPolicy, with_recurrent_state
from envs import make_env
from recipes import make_recipe

OBS = 4
PROPRIO = {"env.from_pixels": False, "model.obs_loss": "symlog_mse"}


def v3(**overrides: object) -> object:
    return make_recipe("dreamer_v3", "debug", overrides={**PROPRIO, **overrides})


def agent_for(sizes: tuple[int, ...], **overrides: object) -> Dreamer:
    torch.manual_seed(0)
    return build_dreamer(v3(**overrides), (OBS,), ActionSpace("discrete", sizes))


def steer_to_class_zero(agent: Dreamer) -> None:
    """Actor output: weights 0, bias +10 on the first class of each block and -10 elsewhere."""
    actor = agent.actor
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        bias = torch.full_like(actor.net[-1].bias, -10.0)
        start = 0
        for n in actor.sizes:
            bias[start] = 10.0
            start += n
        actor.net[-1].bias.copy_(bias)


def first_step(E: int, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict({"observation": torch.randn(E, OBS, generator=g),
                       "is_init": torch.ones(E, 1, dtype=torch.bool)}, [E])


def assert_valid_one_hot(action: torch.Tensor, sizes: tuple[int, ...]) -> None:
    assert action.shape[-1] == sum(sizes) and action.dtype == torch.float32
    assert set(action.unique().tolist()) <= {0.0, 1.0}
    for block in action.split(list(sizes), -1):
        assert (block.sum(-1) == 1).all(), "exactly one 1 per block"


def greedy_fraction(action: torch.Tensor, sizes: tuple[int, ...]) -> float:
    """Fraction of rows equal to the all-class-0 action."""
    index = ActionSpace("discrete", sizes).indices(action)
    return (index == 0).all(-1).float().mean().item()


# -------------------------------------------------------------------------------------------- building the agent
@pytest.mark.parametrize("sizes", [(2,), (3, 4)])
def test_discrete_space_gets_a_one_hot_actor_of_its_sizes(sizes: tuple[int, ...]) -> None:
    recipe = v3()
    assert recipe.behavior.actor_dist == "bounded_normal"  # the recipe's continuous choice is overridden
    agent = agent_for(sizes)
    assert isinstance(agent.actor, OneHotActor) and agent.actor.sizes == sizes
    assert agent.actor.unimix == recipe.behavior.actor_unimix == 0.01
    assert agent.world_model.rssm.action_dim == sum(sizes)
    assert agent.action_space == ActionSpace("discrete", sizes)
    dist = agent.actor.dist(torch.randn(3, agent.world_model.rssm.feat_dim))
    assert isinstance(dist, MultiOneHotDist if len(sizes) > 1 else OneHotDist)


def test_onehot_actor_dist_on_continuous_actions_raises() -> None:
    recipe = v3(**{"behavior.actor_dist": "onehot"})
    for actions in (2, ActionSpace("continuous", (2,))):
        with pytest.raises(UserError, match="'onehot' needs a discrete action space"):
            build_dreamer(recipe, (OBS,), actions)


def test_auto_actor_grad_is_reinforce_for_discrete_and_dynamics_for_continuous() -> None:
    discrete, continuous = ActionSpace("discrete", (3,)), ActionSpace("continuous", (2,))
    assert resolve_actor_grad("auto", discrete) == "reinforce"
    assert resolve_actor_grad("auto", continuous) == "dynamics"
    for explicit in ("dynamics", "reinforce", "both"):
        assert resolve_actor_grad(explicit, discrete) == resolve_actor_grad(explicit, continuous) == explicit
    agent = agent_for((3,), **{"behavior.actor_grad": "auto"})
    assert Learner(agent, v3(**{"behavior.actor_grad": "auto"}), obs_key="observation").actor_loss.actor_grad \
        == "reinforce"


# ---------------------------------------------------------------------------------------------- acting: modes
@pytest.mark.parametrize("sizes", [(2,), (3, 4)])
@pytest.mark.parametrize("mode", ["random", "explore", "eval"])
def test_policy_outputs_valid_one_hot_actions(sizes: tuple[int, ...], mode: str) -> None:
    agent = agent_for(sizes)
    policy = DreamerPolicy(agent, obs_key="observation", mode=mode, expl="epsilon_greedy", expl_amount=0.3)
    td = policy(first_step(64))
    assert_valid_one_hot(td["action"], sizes)
    assert torch.equal(td["next", "recurrent", "action"], td["action"])
    # the next step, from the carried state, too
    step = TensorDict({"observation": torch.randn(64, OBS), "is_init": torch.zeros(64, 1, dtype=torch.bool),
                       "recurrent": td["next", "recurrent"].clone()}, [64])
    assert_valid_one_hot(policy(step)["action"], sizes)


@pytest.mark.parametrize("sizes", [(2,), (3, 4)])
def test_eval_without_noise_is_the_actor_argmax(sizes: tuple[int, ...]) -> None:
    agent = agent_for(sizes)
    with torch.no_grad():  # a random, confident actor: the argmax differs between rows
        agent.actor.net[-1].weight.normal_(0.0, 2.0)
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval", eval_noise=0.0, expl="epsilon_greedy",
                           expl_amount=1.0)
    td = policy(first_step(256))
    rssm = agent.world_model.rssm
    feat = rssm.feat(td["next", "recurrent", "stoch"], td["next", "recurrent", "deter"])
    dist = agent.actor.dist(feat)
    parts = dist.parts if isinstance(dist, MultiOneHotDist) else [dist]
    index = torch.stack([p.logits.argmax(-1) for p in parts], -1)
    space = ActionSpace("discrete", sizes)
    assert torch.equal(space.indices(td["action"]), index)
    assert all(len(index[:, i].unique()) == n for i, n in enumerate(sizes)), "every class is someone's argmax"


def test_eval_noise_is_epsilon_greedy_around_the_argmax() -> None:
    torch.manual_seed(0)
    agent = agent_for((2,), **{"behavior.actor_unimix": 0.0})
    steer_to_class_zero(agent)
    policy = DreamerPolicy(agent, obs_key="observation", mode="eval", eval_noise=0.4)
    assert 1 - greedy_fraction(policy(first_step(20_000))["action"], (2,)) == pytest.approx(0.2, abs=0.015)


@pytest.mark.parametrize("sizes", [(2,), (3, 4)])
def test_explore_with_epsilon_one_is_uniform_and_zero_is_the_actor(sizes: tuple[int, ...]) -> None:
    agent = agent_for(sizes, **{"behavior.actor_unimix": 0.0})
    steer_to_class_zero(agent)
    torch.manual_seed(1)
    greedy = DreamerPolicy(agent, obs_key="observation", mode="explore", expl="epsilon_greedy", expl_amount=0.0)
    assert greedy_fraction(greedy(first_step(2000))["action"], sizes) == 1.0
    uniform = DreamerPolicy(agent, obs_key="observation", mode="explore", expl="epsilon_greedy", expl_amount=1.0)
    action = uniform(first_step(20_000))["action"]
    assert_valid_one_hot(action, sizes)
    for block, n in zip(action.split(list(sizes), -1), sizes):
        freq = block.mean(0)
        assert (freq - 1 / n).abs().max() < 0.015, freq


@pytest.mark.parametrize("mode, expl", [("random", "epsilon_greedy"), ("explore", "random")])
def test_random_actions_ignore_the_actor(mode: str, expl: str) -> None:
    agent = agent_for((3, 4), **{"behavior.actor_unimix": 0.0})
    steer_to_class_zero(agent)
    torch.manual_seed(2)
    policy = DreamerPolicy(agent, obs_key="observation", mode=mode, expl=expl, expl_amount=0.0)
    action = policy(first_step(20_000))["action"]
    assert greedy_fraction(action, (3, 4)) == pytest.approx(1 / 12, abs=0.01)


def test_additive_gaussian_on_discrete_actions_is_epsilon_greedy() -> None:
    """The continuous default ``additive_gaussian`` means ε-greedy with the same amount for one-hot actions."""
    agent = agent_for((2,), **{"behavior.actor_unimix": 0.0})
    steer_to_class_zero(agent)
    torch.manual_seed(3)
    policy = DreamerPolicy(agent, obs_key="observation", mode="explore", expl="additive_gaussian", expl_amount=0.3)
    action = policy(first_step(20_000))["action"]
    assert_valid_one_hot(action, (2,))
    assert 1 - greedy_fraction(action, (2,)) == pytest.approx(0.15, abs=0.015)  # ε (1 - 1/2)


@pytest.mark.parametrize("frames, epsilon", [(0, 0.4), (2_500_000, 0.3), (5_000_000, 0.2), (9_900_000, 0.1)])
def test_policy_frames_drive_the_decayed_epsilon(frames: int, epsilon: float) -> None:
    """The TF1 discrete schedule: ε = max(0.1, 0.4 (1 - frames / 1e7)); non-greedy rows are ε / 2 of them."""
    agent = agent_for((2,), **{"behavior.actor_unimix": 0.0})
    steer_to_class_zero(agent)
    policy = DreamerPolicy(agent, obs_key="observation", mode="explore", expl="epsilon_greedy", expl_amount=0.4,
                           expl_decay=1e7, expl_min=0.1)
    policy.frames = frames
    assert policy.exploration() == pytest.approx(epsilon, abs=1e-12)
    torch.manual_seed(4)
    action = policy(first_step(20_000))["action"]
    assert 1 - greedy_fraction(action, (2,)) == pytest.approx(epsilon / 2, abs=0.015)


# ------------------------------------------------------------------------------------------------- learning
def random_discrete_batch(sizes: tuple[int, ...], B: int = 3, T: int = 8, seed: int = 0) -> TensorDict:
    """Stored rows ``[B, T]`` (see dreamer_rl.replay): one-hot actions, zero on the is_init rows; a second
    episode starts at t = 4 (a stream slice crossing an episode boundary)."""
    g = torch.Generator().manual_seed(seed)
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[:, 0] = True
    is_init[:, 4] = True
    torch.manual_seed(seed)
    action = ActionSpace("discrete", sizes).random(B, T) * (~is_init)
    terminated = torch.zeros(B, T, 1, dtype=torch.bool)
    terminated[:, 3] = True
    return TensorDict({"observation": torch.randn(B, T, OBS, generator=g), "action": action,
                       "reward": torch.randn(B, T, 1, generator=g), "is_init": is_init,
                       "terminated": terminated}, [B, T])


def wake_heads(agent: Dreamer) -> None:
    """Random output layers for the (zero-initialised two-hot) reward and critic heads, so imagined returns depend on
    the actions (as in tests/test_v2_v3.py)."""
    with torch.no_grad():
        for head in (agent.world_model.reward, agent.value):
            head.net[-1].weight.normal_(0.0, 0.3)
            k = torch.arange(head.bins.numel(), dtype=torch.float32)
            head.net[-1].bias.copy_(-(k - head.bins.numel() // 2).abs())


@pytest.mark.parametrize("sizes", [(3,), (3, 4)])
@pytest.mark.parametrize("actor_grad", ["reinforce", "dynamics"])
def test_learner_update_on_discrete_batch_reaches_the_actor(actor_grad: str, sizes: tuple[int, ...]) -> None:
    """Entropy bonus off: the actor's gradient comes from the returns alone (REINFORCE's log π · advantage, or the
    straight-through one-hot sample differentiated through the dynamics, V1's discrete actor)."""
    overrides = {"behavior.actor_grad": actor_grad, "behavior.actor_entropy": 0.0}
    recipe = v3(**overrides)
    agent = agent_for(sizes, **overrides)
    wake_heads(agent)
    learner = Learner(agent, recipe, obs_key="observation")
    assert learner.actor_loss.actor_grad == actor_grad and learner.repval_loss is not None
    batch = random_discrete_batch(sizes)
    rssm = agent.world_model.rssm  # V3's replay context: zero stored start states
    batch["context_deter"] = torch.zeros(*batch.shape, rssm.deter, dtype=torch.float16)
    batch["context_stoch"] = torch.zeros(*batch.shape, rssm.stoch, dtype=torch.float16)
    metrics = learner.update(batch)
    assert all(torch.isfinite(v).all() for v in metrics.values()), metrics
    grads = [p.grad for p in agent.actor.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0, "no gradient reached the actor"


def test_v1_discrete_update_moves_the_actor_through_the_dynamics() -> None:
    """DreamerV1 with the TF1 ``discrete`` preset: Adam per module, dynamics gradient through the one-hot sample."""
    recipe = make_recipe("dreamer_v1", "discrete", "debug", overrides=PROPRIO)
    assert resolve_actor_grad(recipe.behavior.actor_grad, ActionSpace("discrete", (3,))) == "dynamics"
    torch.manual_seed(0)
    agent = build_dreamer(recipe, (OBS,), ActionSpace("discrete", (3,)))
    learner = Learner(agent, recipe, obs_key="observation")
    assert not learner.joint and learner.actor_loss.actor_grad == "dynamics" and learner.actor_loss.entropy == 0
    before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = learner.update(random_discrete_batch((3,)))
    assert float(metrics["train/grad_norm/actor"]) > 0
    moved = [not torch.equal(b, p) for b, p in zip(before, agent.actor.parameters())]
    assert all(moved), "every actor parameter moved"


# ------------------------------------------------------------------------------------ what the env receives
def test_gym_env_receives_the_argmax_of_the_policys_one_hot_action() -> None:
    env = make_env("gym_CartPole-v1", from_pixels=False, action_repeat=1, seed=0)
    space = ActionSpace.from_spec(env.action_spec_unbatched)
    assert space == ActionSpace("discrete", (2,))
    obs_shape = tuple(env.observation_spec["observation"].shape)
    torch.manual_seed(0)
    agent = build_dreamer(v3(), obs_shape, space)
    policy = DreamerPolicy(agent, obs_key="observation", mode="explore", expl="epsilon_greedy", expl_amount=0.5)
    env = with_recurrent_state(env, policy)

    gym_env = env.base_env._env  # the gymnasium env under TorchRL's GymWrapper
    received: list[int] = []
    step = gym_env.step

    def recording_step(action):  # noqa: ANN001, ANN202
        received.append(int(action))
        return step(action)

    gym_env.step = recording_step
    td = env.rollout(20, policy, break_when_any_done=False)
    sent = td["action"].argmax(-1).tolist()
    assert td["action"].shape == (20, 2)
    assert_valid_one_hot(td["action"], (2,))
    assert received == sent and len(set(sent)) == 2
    # the recurrent action the policy reads next is the one it sent (zero after a reset)
    carried = td["recurrent", "action"][1:]
    fresh = td["is_init"][1:].squeeze(-1)
    assert torch.equal(carried[~fresh], td["action"][:-1][~fresh])
    assert (carried[fresh] == 0).all()
