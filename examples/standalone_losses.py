"""Dreamer's losses in your own TorchRL loop, without our recipes or training loop.

A plain TorchRL env (gymnasium Pendulum-v1 through ``GymEnv``), a plain TorchRL ``Collector``, a plain TorchRL
replay buffer (``LazyTensorStorage`` + ``SliceSampler``) and our parts: the world model, the acting policy that
carries the recurrent state, the row writer that stores each observation once, and the three ``LossModule``s.

    python examples/standalone_losses.py
"""

from __future__ import annotations

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, SliceSampler, TensorDictReplayBuffer
from torchrl.envs import GymEnv, InitTracker, TransformedEnv

from dreamer_rl.imagine import imagine  # noqa: F401  (what ActorLoss uses; handy for your own objectives)
from dreamer_rl.losses import ActorLoss, ValueLoss, WorldModelLoss
from dreamer_rl.nets import MLP, TanhNormalActor
from dreamer_rl.replay import StepRowWriter
from dreamer_rl.world_model import WorldModel
from dreamer_rl.agent import Dreamer
from dreamer_rl.policy import DreamerPolicy


def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()


def main(iterations: int = 3, frames_per_batch: int = 100, batch_size: int = 4, seq_len: int = 16,
         seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())  # is_init marks episode starts
    env.set_seed(seed)
    obs_dim, action_dim = env.observation_spec["observation"].shape[-1], env.action_spec.shape[-1]

    world_model = WorldModel((obs_dim,), action_dim, stoch=8, deter=64, hidden=64, units=64)
    feat = world_model.rssm.feat_dim
    actor = TanhNormalActor(feat, action_dim, units=64, layers=2)
    value = MLP(feat, 1, units=64, layers=2)
    agent = Dreamer(world_model, actor, value)

    policy = DreamerPolicy(agent, obs_key="observation", expl_amount=0.3)
    env.append_transform(policy.primer())  # recurrent state (deter, stoch, previous action) travels with the td
    collector = Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=iterations * frames_per_batch)

    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(10_000),
        sampler=SliceSampler(slice_len=seq_len, traj_key="episode", strict_length=True),
        batch_size=batch_size * seq_len,
    )
    to_rows = StepRowWriter(obs_keys=("observation",))  # (o_t, a_{t-1}, r_t, is_init_t) rows, each obs once

    wm_loss = WorldModelLoss(world_model, free_nats=3.0)
    wm_loss.set_keys(observation="observation")  # our rows store the state vector under "observation"
    actor_loss = ActorLoss(world_model, actor, value, horizon=10)
    value_loss = ValueLoss(value)
    opts = [torch.optim.Adam(m.parameters(), lr=lr, eps=1e-4)
            for m, lr in ((world_model, 6e-4), (actor, 8e-5), (value, 8e-5))]

    out: dict[str, float] = {}
    for transitions in collector:
        buffer.extend(to_rows(transitions))
        batch = buffer.sample().reshape(batch_size, seq_len)  # [B, T] rows of whole-episode slices
        # world model first, then the actor imagines with the updated model, then the value net
        wm_losses, states = wm_loss(batch)
        step(opts[0], wm_losses["loss_image"] + wm_losses["loss_reward"] + wm_losses["loss_kl"])
        actor_losses, imagined = actor_loss(states)
        step(opts[1], actor_losses["loss_actor"])
        value_losses = value_loss(imagined)
        step(opts[2], value_losses["loss_value"])
        out = {"loss_image": wm_losses["loss_image"].item(), "loss_actor": actor_losses["loss_actor"].item(),
               "loss_value": value_losses["loss_value"].item(), "stored_rows": len(buffer)}
    collector.shutdown()
    return out


if __name__ == "__main__":
    for k, v in main().items():
        print(f"{k}={v}")
