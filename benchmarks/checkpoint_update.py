"""Seconds per ``Learner.update`` on a training checkpoint, fresh weights against the trained state.

``python -m benchmarks.update_speed --checkpoint PATH`` calls :func:`checkpoint_speed`. A long run can slow down
for reasons fresh weights do not show (subnormal floats in the weights, optimiser moments and the gradients they
produce were one: see :func:`dreamer_rl.runtime.flush_denormals`); timing both on the same random batches of the
recipe's shape separates the state from the code.

The checkpoint (``dreamer_rl.training.Run.save``) stores the recipe, the agent's ``state_dict`` and the optimiser
states, but not the observation or action sizes: :func:`infer_dims` reads them off the stored weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from benchmarks.speed_harness import time_update
from dreamer_rl.agent import Learner, build_dreamer
from dreamer_rl.checkpoint import load_agent_weights, load_checkpoint
from dreamer_rl.config import Recipe
from dreamer_rl.runtime import flush_denormals

PIXELS = (3, 64, 64)


def _shapes(recipe: Recipe, obs_shape: tuple[int, ...], action_dim: int) -> dict[str, tuple[int, ...]]:
    """Parameter / buffer shapes of the agent the recipe builds for these sizes (on the meta device: no memory)."""
    try:
        with torch.device("meta"):
            agent = build_dreamer(recipe, obs_shape, action_dim)
    except (RuntimeError, NotImplementedError):  # a constructor that needs real data: build it for real
        agent = build_dreamer(recipe, obs_shape, action_dim)
    # tensors only: a module's extra state (``get_extra_state``) can be any object
    return {k: tuple(v.shape) for k, v in agent.state_dict().items() if isinstance(v, torch.Tensor)}


def infer_dims(recipe: Recipe, stored: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], int]:
    """``(obs_shape, action_dim)`` of the agent whose ``state_dict`` is ``stored``.

    Every weight size is affine in the observation size D and the action size A (``D`` inputs of an encoder
    layer, ``stoch + A`` inputs of the RSSM, ``2A`` outputs of the actor, ...). Building the recipe's agent at
    (D, A) = (1, 1), (2, 1) and (1, 2) gives each size's intercept and slopes; a size that moves with one of them
    alone, compared with the stored one, gives it. Pixels fix ``obs_shape`` to ``[3, 64, 64]``. Knows nothing of
    the architecture, so it keeps working as the networks change.
    """
    pixels = recipe.env.from_pixels

    def obs(d: int) -> tuple[int, ...]:
        return PIXELS if pixels else (d,)

    base, more_d, more_a = _shapes(recipe, obs(1), 1), _shapes(recipe, obs(2), 1), _shapes(recipe, obs(1), 2)
    found: dict[str, set[int]] = {"D": set(), "A": set()}
    for key, shape in base.items():
        if not isinstance(stored.get(key), torch.Tensor) or len(stored[key].shape) != len(shape):
            continue
        for i, b in enumerate(shape):
            slope_d, slope_a = more_d[key][i] - b, more_a[key][i] - b
            size = stored[key].shape[i]
            for name, slope, other in (("D", slope_d, slope_a), ("A", slope_a, slope_d)):
                if slope and not other and (size - b) % slope == 0:
                    found[name].add(1 + (size - b) // slope)
    if len(found["A"]) != 1 or (not pixels and len(found["D"]) != 1):
        raise ValueError(f"cannot read the observation / action sizes off the checkpoint's weights "
                         f"(candidates: obs {sorted(found['D'])}, action {sorted(found['A'])})")
    obs_shape = PIXELS if pixels else (found["D"].pop(),)
    return obs_shape, found["A"].pop()


def context_sizes(recipe: Recipe, agent: torch.nn.Module) -> tuple[int, int] | None:
    """``(D, S)`` of the replay context a recipe's batches carry (``train.replay_context``), else None."""
    rssm = agent.world_model.rssm
    return (rssm.deter, rssm.stoch) if recipe.train.replay_context else None


def random_batch_fn(obs_key: str, obs_shape: tuple[int, ...], action_dim: int, batch_size: int, seq_len: int,
                    device: torch.device, context: tuple[int, int] | None = None) -> Callable[[], TensorDictBase]:
    """Random stored rows ``[B, T]`` as the replay buffer yields them (uint8 pixels or a float vector); with
    ``context = (D, S)`` also the stored start states (float16, deter in [-1, 1], one-hot-sized zeros)."""

    def make_batch() -> TensorDictBase:
        B, T = batch_size, seq_len
        obs = (torch.randint(0, 256, (B, T, *obs_shape), dtype=torch.uint8) if len(obs_shape) == 3
               else torch.randn(B, T, *obs_shape))
        is_init = torch.zeros(B, T, 1, dtype=torch.bool)
        is_init[:, 0] = True  # every sequence starts an episode
        rows = TensorDict({
            obs_key: obs,
            "action": torch.rand(B, T, action_dim) * 2 - 1,
            "reward": torch.randn(B, T, 1),
            "is_init": is_init,
            "terminated": torch.zeros(B, T, 1, dtype=torch.bool),
        }, [B, T])
        if context is not None:
            rows["context_deter"] = (torch.rand(B, T, context[0]) * 2 - 1).half()
            rows["context_stoch"] = torch.zeros(B, T, context[1], dtype=torch.float16)
        return rows.to(device)

    return make_batch


def _time_learner(state: dict[str, Any] | None, recipe: Recipe, obs_key: str, obs_shape: tuple[int, ...],
                  action_dim: int, make_batch: Callable[[], TensorDictBase], warmup: int, iters: int,
                  device: torch.device, keep_denormals: bool) -> dict[str, Any]:
    """Time ``Learner.update``; with ``state`` (a checkpoint) after loading its weights and optimiser states."""
    torch.manual_seed(recipe.run.seed)
    agent = build_dreamer(recipe, obs_shape, action_dim).to(device)
    learner = Learner(agent, recipe, obs_key=obs_key)
    if state is not None:
        load_agent_weights(agent, state["agent"], "the checkpoint")
        learner.load_optim_state(state["optim"])
    if keep_denormals:
        flush_denormals(False)  # the Learner turned flushing on
    return time_update(lambda batch: learner.update(batch), make_batch, warmup=warmup, iters=iters)


def checkpoint_speed(path: Path, warmup: int = 1, iters: int = 3, device: str = "cpu", threads: int | None = None,
                     keep_denormals: bool = False) -> dict[str, float]:
    """Time updates with fresh weights, then with the checkpoint's state; print and return the figures."""
    if threads is not None:
        torch.set_num_threads(threads)
    state = load_checkpoint(path)
    recipe = Recipe.model_validate(state["recipe"])
    obs_key = state.get("obs_key") or ("pixels" if recipe.env.from_pixels else "observation")
    obs_shape, action_dim = infer_dims(recipe, state["agent"])
    dev = torch.device(device)
    context = context_sizes(recipe, build_dreamer(recipe, obs_shape, action_dim))
    make_batch = random_batch_fn(obs_key, obs_shape, action_dim, recipe.train.batch_size, recipe.train.seq_len, dev,
                                 context)
    args = (recipe, obs_key, obs_shape, action_dim, make_batch, warmup, iters, dev, keep_denormals)
    fresh = _time_learner(None, *args)
    trained = _time_learner(state, *args)
    figures = {"sec_per_update_fresh": fresh["sec_per_update"], "sec_per_update_trained": trained["sec_per_update"]}
    for name, r in (("fresh", fresh), ("trained", trained)):
        print(f"{name}: {r['sec_per_update']:.3f} s/update (times {[round(t, 3) for t in r['times_s']]})")
    print(f"checkpoint={path}")
    print(f"algo={recipe.run.algo}")
    print(f"obs_shape={'x'.join(map(str, obs_shape))}")
    print(f"action_dim={action_dim}")
    print(f"batch={recipe.train.batch_size}x{recipe.train.seq_len}")
    print(f"trained_updates={state.get('counters', {}).get('updates', 'unknown')}")
    print(f"threads={torch.get_num_threads()}")
    print(f"denormals={'kept' if keep_denormals else 'flushed'}")
    for k, v in figures.items():
        print(f"{k}={v:.3f}")
    return figures
