"""DreamerV3 in your own TorchRL loop: a plain TorchRL collector and replay buffer, our agent and learner.

The recipe (``dreamer_v3`` preset, tiny ``debug`` sizes) only chooses the options; nothing here runs our training
loop (:mod:`dreamer_rl.training`). The pieces:

- env: ``envs.make_env`` -> a TorchRL ``EnvBase`` (DMC cartpole from its state vector, ``InitTracker`` last);
- ``DreamerPolicy``: a TensorDict module that filters the RSSM posterior and acts; its ``TensorDictPrimer``
  makes the env carry the recurrent state from step to step;
- TorchRL ``Collector``: steps the env with the policy, yields ``[N]`` transitions ``(o_t, a_t, ("next", ...))``;
- ``StepRowWriter``: transitions -> stored rows ``(o_t, a_{t-1}, r_t, is_init_t, ...)``, each observation once;
- TorchRL ``TensorDictReplayBuffer`` + ``SliceSampler``: samples ``B`` slices of ``T`` rows within one episode;
- ``Learner.update``: world-model, actor and critic losses, one backward, one LaProp step over all modules (V3);
- replay context (V3's ``replay_context 1``): rows also store the model state they start from
  (``StepRowWriter(context=True)``), and ``write_context`` puts each update's filtered states back into the buffer.

    python examples/dreamer_v3.py
"""

from __future__ import annotations

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, SliceSampler, TensorDictReplayBuffer

from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.config import Recipe
from dreamer_rl.policy import DreamerPolicy
from dreamer_rl.replay import StepRowWriter, write_context
from envs import make_env
from recipes.presets import apply_presets


def main(batches: int = 3, frames_per_batch: int = 100, updates_per_batch: int = 2, seed: int = 0,
         verbose: bool = True) -> dict[str, float]:
    torch.manual_seed(seed)
    # DreamerV3's options (block GRU, categorical latents, two-hot heads, LaProp, ...) at the debug sizes
    recipe = Recipe.model_validate(apply_presets(["dreamer_v3", "dmc_proprio", "debug"],
                                                 {"env": {"task": "dmc_cartpole_balance"}, "run": {"seed": seed}}))
    e, t = recipe.env, recipe.train

    # a TorchRL env; "observation" is the state vector, "is_init" marks the first step of each episode
    env = make_env(e.task, from_pixels=False, action_repeat=e.action_repeat,
                   max_episode_frames=e.max_episode_frames, seed=seed)
    obs_shape = tuple(env.observation_spec["observation"].shape)
    agent = build_dreamer(recipe, obs_shape, env.action_spec.shape[-1])
    learner = Learner(agent, recipe, obs_key="observation")  # the three losses and one LaProp

    # acting: random actions for the first batch (prefill), then the actor; the primer adds zero recurrent state
    # ("recurrent", "deter" | "stoch" | "action") at every reset so step_mdp carries it to the next step
    policy = DreamerPolicy(agent, obs_key="observation", expl=recipe.behavior.expl,
                           expl_amount=recipe.behavior.expl_amount, mode="random")
    env.append_transform(policy.primer())
    collector = Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=batches * frames_per_batch)

    # a TorchRL buffer of stored rows; SliceSampler draws slices of seq_len rows that never cross an episode
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(t.replay_capacity),
        sampler=SliceSampler(slice_len=t.seq_len, traj_key="episode", strict_length=True),
        batch_size=t.batch_size * t.seq_len,
    )
    context = t.replay_context > 0  # the preset's: slices start from the state stored with their first row
    to_rows = StepRowWriter(obs_keys=("observation",), context=context)

    out: dict[str, float] = {}
    for i, transitions in enumerate(collector):
        buffer.extend(to_rows(transitions))
        policy.mode = "explore"  # the collector calls this same policy object for the next batch
        for _ in range(updates_per_batch):
            batch = buffer.sample().reshape(t.batch_size, t.seq_len)  # [B, T] rows
            metrics = learner.update(batch)
            if context:  # the states this update filtered become the stored context of the rows after them
                states = learner.last_states
                write_context(buffer, batch["index"], states["posterior", "deter"], states["posterior", "stoch"])
        out = {"frames": (i + 1) * frames_per_batch * e.action_repeat}  # env frames, after action repeat
        out.update({k.removeprefix("train/"): v.item() for k, v in metrics.items() if k.startswith("train/loss/")})
        if verbose:
            print(" ".join(f"{k}={v:.4g}" for k, v in out.items()), flush=True)
    collector.shutdown()
    env.close()
    out["stored_rows"] = len(buffer)
    return out


if __name__ == "__main__":
    main()
