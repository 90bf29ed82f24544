"""Collector transitions -> stored replay rows.

The stored-row convention (which observation, action and reward share a row) is documented, with a worked
3-step example, in :mod:`dreamer_rl.replay`, which also re-exports :class:`StepRowWriter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

__all__ = ["CONTEXT_KEYS", "ROW_KEYS", "StepRowWriter"]

#: The keys every stored row carries besides the observation keys.
ROW_KEYS: tuple[str, ...] = ("action", "reward", "is_init", "terminated", "truncated", "episode", "step_count")
#: The stored replay context (``context=True``): the model state ``(h_{t-1}, z_{t-1})`` a row's filter step starts from.
CONTEXT_KEYS: tuple[str, str] = ("context_deter", "context_stoch")
#: Where the acting policy leaves its posterior state of a transition's root observation (:mod:`dreamer_rl.policy`).
_POLICY_STATE = (("next", "recurrent", "deter"), ("next", "recurrent", "stoch"))


def _flag(tensor: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    """A bool ``[n]`` view of a ``[n]`` / ``[n, 1]`` flag (all False when absent)."""
    if tensor is None:
        return torch.zeros(n, dtype=torch.bool, device=device)
    return tensor.reshape(n).to(torch.bool)


class StepRowWriter:
    """Turns collector transitions into stored rows (the convention of :mod:`dreamer_rl.replay`).

    Stateful: remembers, per env, the current episode id, the ``step_count`` of its last row and whether its
    last transition ended the episode, plus the next free episode id (ids are never reused).

    Args:
        obs_keys: observation keys to store (``"pixels"`` must be uint8 ``[3, H, W]``; other keys are stored
            as float32). Each must be present both at the root and under ``"next"`` of the transitions.
        extra_keys: further keys stored exactly like the vector observation keys (float32, the reset row from the
            root, every other row from ``"next"``, so a row's value belongs to its own ``o_t``) but not observed
            by the model: the DMC physics state ``("position", "velocity")`` of ``tracking.collect_latents``.

    Calling the writer on transitions of shape ``[N]`` (one env) or ``[E, N]`` (E envs, time last) returns
    rows of shape ``[R]``, ``R = E * N + (number of is_init transitions)``, on the transitions' device, env by
    env so that each env's rows are contiguous (give the buffer ``fragmented=True`` when ``E > 1``). For each
    transition ``i``: if ``is_init[i]``, the reset row ``(o_i, zero action, reward 0, is_init True)`` under a
    new episode id; then always the row ``(next.o_i, a_i, next.reward_i, is_init False, next.terminated_i,
    next.truncated_i)`` under the current id. Other keys (recurrent state, ``("collector", ...)``) are ignored.

    Missing inputs are derived: ``is_init`` from the previous transition's ``done`` (an env's first transition
    starts an episode), ``terminated`` from ``("next", "done")``, ``truncated`` as ``done & ~terminated``. A
    fresh writer that sees a mid-episode transition (``is_init`` False) starts a new id without a reset row.

    Training-only targets: a ``("next", "life_lost")`` flag (Atari life loss, :mod:`envs.atari`) is stored as
    ``terminated`` (the continuation target is 0 there) while the episode goes on under the same id; and
    ``reward_clip`` (``"tanh"`` or ``"sign"``, the seeds' ``clip_rewards``) clips the stored reward. The env's own
    rewards, and so every reported return, stay raw.

    Replay context (``context=True``, DreamerV3's ``replay_context``): every row also gets ``context_deter``
    ``[D]`` and ``context_stoch`` ``[S]`` (float16), the model state ``(h_{t-1}, z_{t-1})`` its filter step starts
    from: the posterior the acting policy computed for the previous row's observation, which transition ``i``
    carries under ``("next", "recurrent", "deter" | "stoch")`` (the state after ``o_i``, stored with the row of
    ``next.o_i``); zeros on a reset row (the model resets there). Training writes fresher states back
    (:func:`dreamer_rl.replay.write_context`), and a slice starts from its first row's context instead of zeros.
    float16 holds ``h`` (in [-1, 1]) to 3 decimal digits and a one-hot ``z`` exactly, at half the bytes.

    Streams (``streams=True``, for slices that cross episode boundaries, DreamerV3's replay): every row also gets
    ``stream`` (int64 ``[]``), the id of its env's row stream in this writer's life, and ``stream_step`` (int64
    ``[1]``), its position in that stream (0, 1, 2, ... across episodes). A restored writer
    (:meth:`load_state_dict`) opens new streams, so rows written before and after a resume never form one slice.
    """

    def __init__(self, obs_keys: Sequence[str] = ("pixels",), reward_clip: str = "none", streams: bool = False,
                 extra_keys: Sequence[str] = (), context: bool = False) -> None:
        if reward_clip not in ("none", "tanh", "sign"):
            raise ValueError(f"reward_clip must be 'none', 'tanh' or 'sign', got {reward_clip!r}")
        self.reward_clip, self.streams, self.context = reward_clip, streams, context
        self._next_stream = 0
        self._stream: list[int] = []  # per env: stream id
        self._stream_step: list[int] = []  # per env: stream_step of the env's next row
        if isinstance(obs_keys, str):
            obs_keys = (obs_keys,)
        if not obs_keys:
            raise ValueError("StepRowWriter needs at least one observation key, e.g. obs_keys=('pixels',)")
        self.obs_keys: tuple[str, ...] = tuple(obs_keys)
        self.extra_keys: tuple[str, ...] = (extra_keys,) if isinstance(extra_keys, str) else tuple(extra_keys)
        self._next_episode = 0
        self._episode: list[int] = []  # per env: current episode id, -1 for none
        self._step: list[int] = []  # per env: step_count of the env's last row
        self._done: list[bool] = []  # per env: the env's last transition ended its episode

    def __call__(self, transitions: TensorDictBase) -> TensorDictBase:
        """Rows for ``transitions`` (``[N]`` or ``[E, N]``, time last) -> TensorDict ``[R]``."""
        if transitions.ndim not in (1, 2) or transitions.numel() == 0:
            raise ValueError(
                f"StepRowWriter expects non-empty transitions of shape [N] or [E, N] (time last); "
                f"got {tuple(transitions.shape)}"
            )
        envs = [transitions] if transitions.ndim == 1 else list(transitions.unbind(0))
        if not self._episode:
            self._episode, self._step, self._done = [-1] * len(envs), [-1] * len(envs), [True] * len(envs)
        if self.streams and not self._stream:
            self._stream = list(range(self._next_stream, self._next_stream + len(envs)))
            self._stream_step = [0] * len(envs)
            self._next_stream += len(envs)
        elif len(self._episode) != len(envs):
            raise ValueError(
                f"StepRowWriter was tracking {len(self._episode)} envs but got transitions for {len(envs)}; "
                "use one writer per collector"
            )
        rows = [self._env_rows(env, td) for env, td in enumerate(envs)]
        return rows[0] if len(rows) == 1 else torch.cat(rows, 0)

    def _env_rows(self, env: int, td: TensorDictBase) -> TensorDictBase:
        n = td.shape[0]
        action = td.get("action")
        device = action.device
        nxt = td.get("next")

        done = _flag(nxt.get("done", None), n, device)
        terminated = nxt.get("terminated", None)
        terminated = _flag(terminated, n, device) if terminated is not None else done
        truncated = nxt.get("truncated", None)
        truncated = _flag(truncated, n, device) if truncated is not None else done & ~terminated
        ended = done | terminated | truncated

        is_init = td.get("is_init", None)
        if is_init is None:  # a transition right after an episode end starts from a reset observation
            is_init = torch.cat([torch.tensor([self._done[env]], device=device), ended[:-1]])
        else:
            is_init = _flag(is_init, n, device)
        start = is_init.clone()  # where episode ids start: every reset, and a fresh writer's first transition
        if self._episode[env] < 0:
            start[0] = True

        # row layout: transition i's "next" row follows its reset row (if any) and all earlier rows
        n_rows = n + int(is_init.sum())
        next_pos = torch.arange(n, device=device) + torch.cumsum(is_init.long(), 0)
        reset_pos = next_pos[is_init] - 1

        starts_so_far = torch.cumsum(start.long(), 0)
        episode_t = torch.where(starts_so_far > 0, self._next_episode + starts_so_far - 1, self._episode[env])
        episode = torch.empty(n_rows, dtype=torch.int64, device=device)
        episode[next_pos] = episode_t
        episode[reset_pos] = episode_t[is_init]

        is_reset_row = torch.zeros(n_rows, dtype=torch.bool, device=device)
        is_reset_row[reset_pos] = True
        first_row = is_reset_row.clone()  # first stored row of each episode started here
        first_row[next_pos[start & ~is_init]] = True
        pos = torch.arange(n_rows, device=device)
        last_first = torch.cummax(torch.where(first_row, pos, -1), 0).values
        step = torch.where(last_first >= 0, pos - last_first, pos + self._step[env] + 1)

        if action.ndim == 1:
            action = action.unsqueeze(-1)
        out: dict[str, torch.Tensor] = {}
        for key in self.obs_keys + self.extra_keys:
            now, after = td.get(key, None), nxt.get(key, None)
            if now is None or after is None:
                raise KeyError(
                    f"StepRowWriter needs {key!r} and ('next', {key!r}) in the transitions; "
                    f"got keys {sorted(map(str, td.keys(include_nested=True, leaves_only=True)))}"
                )
            if key == "pixels" and after.dtype != torch.uint8:
                raise TypeError(
                    f"'pixels' must be uint8 [3, H, W] (stored as bytes, converted to float on the device); "
                    f"got {after.dtype}: drop ToTensorImage-like transforms from the env"
                )
            dtype = torch.uint8 if key == "pixels" else torch.float32
            obs = torch.empty((n_rows, *after.shape[1:]), dtype=dtype, device=device)
            obs[next_pos] = after.to(dtype)
            obs[reset_pos] = now[is_init].to(dtype)
            out[key] = obs

        def on_next_rows(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
            full = torch.zeros((n_rows, *value.shape[1:]), dtype=dtype, device=device)
            full[next_pos] = value.to(dtype)
            return full

        out["action"] = on_next_rows(action, torch.float32)
        reward = nxt.get("reward").reshape(n, -1).to(torch.float32)
        if self.reward_clip == "tanh":
            reward = torch.tanh(reward)
        elif self.reward_clip == "sign":
            reward = torch.sign(reward)
        life_lost = nxt.get("life_lost", None)
        cont_end = terminated | _flag(life_lost, n, device) if life_lost is not None else terminated
        out["reward"] = on_next_rows(reward, torch.float32)
        out["is_init"] = is_reset_row.unsqueeze(-1)
        out["terminated"] = on_next_rows(cont_end.unsqueeze(-1), torch.bool)
        out["truncated"] = on_next_rows(truncated.unsqueeze(-1), torch.bool)
        out["episode"] = episode
        out["step_count"] = step.unsqueeze(-1)
        if self.context:
            for key, source in zip(CONTEXT_KEYS, _POLICY_STATE, strict=True):
                state = td.get(source, None)
                if state is None:
                    raise KeyError(f"StepRowWriter(context=True) needs the policy's state {source} in the "
                                   f"transitions (dreamer_rl.policy.DreamerPolicy writes it)")
                out[key] = on_next_rows(state, torch.float16)  # reset rows: zeros
        if self.streams:
            out["stream"] = torch.full((n_rows,), self._stream[env], dtype=torch.int64, device=device)
            first = self._stream_step[env]
            out["stream_step"] = torch.arange(first, first + n_rows, dtype=torch.int64, device=device).unsqueeze(-1)
            self._stream_step[env] = first + n_rows

        self._next_episode += int(start.sum())
        self._episode[env] = int(episode_t[-1])
        self._step[env] = int(step[-1])
        self._done[env] = bool(ended[-1])
        return TensorDict(out, batch_size=[n_rows], device=device)

    def state_dict(self) -> dict[str, Any]:
        """Plain-python state: ``next_episode`` (int) and per-env ``episode``/``step_count``/``done`` lists."""
        return {
            "obs_keys": list(self.obs_keys),
            "next_episode": self._next_episode,
            "episode": list(self._episode),
            "step_count": list(self._step),
            "done": list(self._done),
            "next_stream": self._next_stream,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (episode ids continue where they stopped, never reused)."""
        if tuple(state["obs_keys"]) != self.obs_keys:
            raise ValueError(
                f"writer state is for obs_keys={tuple(state['obs_keys'])}, this writer has {self.obs_keys}"
            )
        self._next_episode = int(state["next_episode"])
        self._episode = [int(v) for v in state["episode"]]
        self._step = [int(v) for v in state["step_count"]]
        self._done = [bool(v) for v in state["done"]]
        self._next_stream = int(state.get("next_stream", 0))  # every id below it is used: the next call opens
        self._stream, self._stream_step = [], []  # fresh streams from here
