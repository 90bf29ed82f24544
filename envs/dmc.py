"""DeepMind Control Suite tasks as TorchRL environments.

Names are ``dmc_<domain>_<task>`` for every task in ``dm_control.suite.ALL_TASKS`` (``dmc_cheetah_run``,
``dmc_point_mass_easy``, ``dmc_ball_in_cup_catch``, ...), plus Dreamer's short domain aliases ``cup`` for
``ball_in_cup`` and ``pointmass`` for ``point_mass`` (``dmc_cup_catch``, ``dmc_pointmass_easy``). Names are matched
against this table, never split on underscores, so domains containing underscores parse correctly.

Frame counting: one *control frame* is one ``dm_control`` ``env.step`` (``control_timestep`` seconds of physics).
One *agent step* is ``action_repeat`` control frames with the same action; rewards are summed over them. An episode
is ``max_episode_frames`` control frames (1000 by default, as in every Dreamer paper), i.e.
``max_episode_frames // action_repeat`` agent steps, after which ``truncated`` is set. dm_control's own time limit is
switched off (``time_limit=inf``) so this counter alone decides truncation; ``terminated`` is set only when the task
itself ends the episode with discount 0.

Rendering happens once per agent step, after the action-repeat loop (and once per reset), never per control frame.

True physical state (``physics_state=True``, for ``tracking.collect_latents``): every reset and step also emits
``position`` (``physics.data.qpos``) and ``velocity`` (``physics.data.qvel``), float32, read from the physics at the
same moment as the observation of that step, so a stored row's state belongs to its own observation.

Discrete-action cartpole (the PlaNet discrete-action fork's tasks, :data:`DISCRETE_TASKS`): ``dmc_cartpole_balance_da``
and ``dmc_cartpole_swingup_da`` offer 5 forces (:data:`FORCES_DA`), ``dmc_cartpole_balance_daf``,
``dmc_cartpole_swingup_daf`` and ``dmc_cartpole_swingupsparse_daf`` (dm_control's ``swingup_sparse``) 9 finer ones
(:data:`FORCES_DAF`). The action is one-hot ``[n]`` (``OneHot`` spec); its argmax picks the force from the table,
which goes to dm_control as the 1-D continuous action. The fork runs them with action repeat 4 over 1000 frames, so
``action_repeat="planet"`` gives 4 for these names (PlaNet's per-domain table says 8 for cartpole; the fork's
discrete tasks use 4).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from typing import TYPE_CHECKING, Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tensordict import TensorDict, TensorDictBase  # noqa: E402
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded  # noqa: E402
from torchrl.envs import Compose, EnvBase, InitTracker, TransformedEnv  # noqa: E402

from dreamer_rl.errors import MissingDependencyError, UserError  # noqa: E402

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "DISCRETE_TASKS",
    "DOMAIN_ALIASES",
    "DREAMER_TASKS",
    "FORCES_DA",
    "FORCES_DAF",
    "PLANET_ACTION_REPEAT",
    "PLANET_DISCRETE_REPEAT",
    "DMCEnv",
    "make",
    "planet_action_repeat",
    "resolve",
    "task_names",
]

PREFIX = "dmc_"

#: PlaNet's per-domain action repeat (Hafner et al. 2019, table 1), keyed by dm_control domain name
#: (``ball_in_cup`` is Dreamer's "cup"). Domains not listed use :data:`PLANET_DEFAULT_REPEAT`.
PLANET_ACTION_REPEAT: dict[str, int] = {
    "cartpole": 8,
    "finger": 2,
    "cheetah": 4,
    "ball_in_cup": 4,
    "walker": 2,
    "reacher": 4,
}
PLANET_DEFAULT_REPEAT = 2

#: Dreamer's short domain names -> dm_control domain names.
DOMAIN_ALIASES: dict[str, str] = {"cup": "ball_in_cup", "pointmass": "point_mass"}

#: The 26 DMC tasks of the DreamerV1-V3 benchmark tables, spelled as Dreamer spells them.
DREAMER_TASKS: tuple[str, ...] = tuple(
    f"dmc_{t}"
    for t in (
        "acrobot_swingup", "cartpole_balance", "cartpole_balance_sparse", "cartpole_swingup",
        "cartpole_swingup_sparse", "cheetah_run", "cup_catch", "finger_spin", "finger_turn_easy",
        "finger_turn_hard", "fish_upright", "hopper_hop", "hopper_stand", "humanoid_walk", "manipulator_bring_ball",
        "pendulum_swingup", "pointmass_easy", "quadruped_escape", "quadruped_fetch", "quadruped_run",
        "quadruped_walk", "reacher_easy", "reacher_hard", "walker_run", "walker_stand", "walker_walk",
    )
)  # fmt: skip

#: The discrete-action fork's force tables: 5 forces (``_da``) and 9 finer ones (``_daf``), in cartpole's [-1, 1].
FORCES_DA: tuple[float, ...] = (-1.0, -0.25, 0.0, 0.25, 1.0)
FORCES_DAF: tuple[float, ...] = (-1.0, -0.25, -0.05, -0.01, 0.0, 0.01, 0.05, 0.25, 1.0)

#: Discrete-action task name -> (dm_control domain, task, force table).
DISCRETE_TASKS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "dmc_cartpole_balance_da": ("cartpole", "balance", FORCES_DA),
    "dmc_cartpole_swingup_da": ("cartpole", "swingup", FORCES_DA),
    "dmc_cartpole_balance_daf": ("cartpole", "balance", FORCES_DAF),
    "dmc_cartpole_swingup_daf": ("cartpole", "swingup", FORCES_DAF),
    "dmc_cartpole_swingupsparse_daf": ("cartpole", "swingup_sparse", FORCES_DAF),
}

#: ``action_repeat="planet"`` for :data:`DISCRETE_TASKS`: the fork's repeat (not the cartpole entry of the table).
PLANET_DISCRETE_REPEAT = 4

#: dm_control bounds at or beyond this magnitude are treated as unbounded (lqr uses +-1e10): no rescaling there.
_UNBOUNDED = 1e6


def _suite() -> ModuleType:
    try:
        from dm_control import suite
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError.for_extra("dm_control", "dmc") from exc
    return suite


def _table() -> dict[str, tuple[str, str]]:
    """``name -> (domain, task)`` for every suite task, every alias and every discrete-action task."""
    table: dict[str, tuple[str, str]] = {}
    for domain, task in _suite().ALL_TASKS:
        table[f"{PREFIX}{domain}_{task}"] = (domain, task)
    for alias, domain in DOMAIN_ALIASES.items():
        for d, task in _suite().ALL_TASKS:
            if d == domain:
                table[f"{PREFIX}{alias}_{task}"] = (domain, task)
    for name, (domain, task, _) in DISCRETE_TASKS.items():
        table[name] = (domain, task)
    return table


def task_names() -> list[str]:
    """Every accepted ``dmc_`` name (suite tasks, Dreamer's aliases, discrete-action cartpole), sorted."""
    return sorted(_table())


def resolve(name: str) -> tuple[str, str]:
    """``dmc_<domain>_<task>`` -> ``(domain, task)`` as dm_control names them; ``UnknownTaskError`` otherwise."""
    table = _table()
    if name not in table:
        from envs.registry import unknown_task

        raise unknown_task(name, "dmc", sorted(table))
    return table[name]


def planet_action_repeat(domain: str) -> int:
    """PlaNet's action repeat for a dm_control domain (or Dreamer alias)."""
    return PLANET_ACTION_REPEAT.get(DOMAIN_ALIASES.get(domain, domain), PLANET_DEFAULT_REPEAT)


def _check_repeat(action_repeat: int | str, domain: str, name: str = "") -> int:
    if isinstance(action_repeat, str):
        if action_repeat != "planet":
            raise UserError(f"action_repeat must be a positive integer or 'planet', got {action_repeat!r}")
        return PLANET_DISCRETE_REPEAT if name in DISCRETE_TASKS else planet_action_repeat(domain)
    if isinstance(action_repeat, bool) or not isinstance(action_repeat, int) or action_repeat < 1:
        raise UserError(f"action_repeat must be a positive integer or 'planet', got {action_repeat!r}")
    return action_repeat


class DMCEnv(EnvBase):
    """One dm_control suite task as an unbatched TorchRL env (``batch_size=[]``).

    Keys (all on ``device``):

    - ``pixels``: uint8 ``[3, image_size, image_size]``, channels first (``from_pixels=True``; no state vector then).
      Camera :attr:`camera_id` is 2 for quadruped, 0 otherwise.
    - ``observation``: float32 ``[D]`` (``from_pixels=False``): the dm_control observation dict, each entry
      flattened and concatenated in dm_control's own key order (:attr:`dmc_observation_keys`).
    - ``action``: float32 ``[A]``, bounded in [-1, 1]. Tasks whose actuator range differs (quadruped's
      [-1, 1.1] / [-0.8, 0.8] joints) are rescaled affinely to their range; effectively unbounded ranges (lqr,
      +-1e10) get the clipped action as is. With ``forces`` (discrete-action tasks, 1-D actuator): one-hot
      ``[n]`` (``OneHot(n)`` spec, int64; any dtype accepted), and ``forces[argmax(action)]`` is the actuator value.
    - ``position``, ``velocity``: float32 ``[nq]``, ``[nv]`` (``physics_state=True`` only): the physics'
      ``qpos`` and ``qvel`` when the step's observation was taken (cartpole: cart position and pole angle).
    - ``reward``: float32 ``[1]``, summed over the ``action_repeat`` control frames of the step.
    - ``done``, ``terminated``, ``truncated``: bool ``[1]``. ``truncated`` after ``max_episode_frames //
      action_repeat`` agent steps (and if dm_control ends an episode with non-zero discount); ``terminated`` only if
      dm_control ends the episode with discount 0. They are never both set; ``done = terminated | truncated``.

    Seeding: :meth:`set_seed` replaces the task's ``numpy`` random state, which draws every initial state, so two
    envs with the same seed produce the same first observation and, with the same actions, the same episode.
    """

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        from_pixels: bool = True,
        action_repeat: int = 2,
        image_size: int = 64,
        max_episode_frames: int = 1000,
        seed: int = 0,
        device: str | torch.device = "cpu",
        forces: tuple[float, ...] | None = None,
        physics_state: bool = False,
    ) -> None:
        if image_size < 1:
            raise UserError(f"image_size must be a positive integer, got {image_size!r}")
        if max_episode_frames < action_repeat:
            raise UserError(
                f"max_episode_frames ({max_episode_frames}) must be at least action_repeat ({action_repeat})"
            )
        super().__init__(device=device, batch_size=torch.Size([]))
        self.domain, self.task = domain, task
        self.from_pixels = from_pixels
        self.physics_state = physics_state
        self.action_repeat = action_repeat
        self.image_size = image_size
        self.max_episode_frames = max_episode_frames
        self.max_episode_steps = max_episode_frames // action_repeat
        self.camera_id = 2 if domain == "quadruped" else 0
        self._env: Any = _suite().load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")})
        self._steps = 0

        spec = self._env.action_spec()
        low = np.broadcast_to(np.asarray(spec.minimum, dtype=np.float64), spec.shape).copy()
        high = np.broadcast_to(np.asarray(spec.maximum, dtype=np.float64), spec.shape).copy()
        scaled = (np.abs(low) < _UNBOUNDED) & (np.abs(high) < _UNBOUNDED) & ((low != -1.0) | (high != 1.0))
        self._scaled = scaled if scaled.any() else None
        self._low, self._high = low, high
        self.forces = None if forces is None else np.asarray(forces, dtype=np.float64)
        if self.forces is not None and (spec.shape != (1,) or np.any(np.abs(self.forces) > 1.0)):
            raise UserError(f"{domain}_{task}: a force table needs a 1-D action in [-1, 1], got shape {spec.shape}")
        self.dmc_observation_keys: list[str] = list(self._env.observation_spec().keys())

        if from_pixels:
            obs = Bounded(0, 255, shape=(3, image_size, image_size), dtype=torch.uint8, device=self.device)
            self.observation_spec = Composite(pixels=obs, shape=(), device=self.device)
        else:
            dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
            obs = Unbounded(shape=(dim,), dtype=torch.float32, device=self.device)
            self.observation_spec = Composite(observation=obs, shape=(), device=self.device)
        if physics_state:
            data = self._env.physics.data
            for key, size in (("position", data.qpos.shape[0]), ("velocity", data.qvel.shape[0])):
                self.observation_spec[key] = Unbounded(shape=(size,), dtype=torch.float32, device=self.device)
        if self.forces is not None:
            self.action_spec = OneHot(len(self.forces), dtype=torch.int64, device=self.device)
        else:
            self.action_spec = Bounded(-1.0, 1.0, shape=spec.shape, dtype=torch.float32, device=self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        flag = Categorical(2, shape=(1,), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(
            done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=(), device=self.device
        )
        self.set_seed(seed)

    # -- observations -------------------------------------------------------------------------------------------
    def _observe(self, observation: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = self._physics_state() if self.physics_state else {}
        if self.from_pixels:
            frame = self._env.physics.render(
                height=self.image_size, width=self.image_size, camera_id=self.camera_id
            )
            pixels = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))
            out["pixels"] = pixels.to(self.device)
            return out
        flat = np.concatenate(
            [np.asarray(observation[k], dtype=np.float32).reshape(-1) for k in self.dmc_observation_keys]
        )
        out["observation"] = torch.from_numpy(flat).to(self.device)
        return out

    def _physics_state(self) -> dict[str, torch.Tensor]:
        """``position`` (qpos) and ``velocity`` (qvel) of the physics now, float32 copies."""
        data = self._env.physics.data
        return {key: torch.tensor(np.asarray(value, dtype=np.float32), device=self.device)
                for key, value in (("position", data.qpos), ("velocity", data.qvel))}

    def _flags(self, terminated: bool, truncated: bool) -> dict[str, torch.Tensor]:
        def flag(v: bool) -> torch.Tensor:
            return torch.tensor([v], dtype=torch.bool, device=self.device)

        return {"done": flag(terminated or truncated), "terminated": flag(terminated), "truncated": flag(truncated)}

    # -- EnvBase API --------------------------------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        timestep = self._env.reset()
        self._steps = 0
        out = self._observe(timestep.observation)
        out.update(self._flags(False, False))
        return TensorDict(out, batch_size=torch.Size([]), device=self.device)

    def _env_action(self, action: torch.Tensor) -> np.ndarray:
        if self.forces is not None:  # one-hot [n] -> the table's force, shape [1]
            return self.forces[int(action.detach().reshape(-1).float().argmax())].reshape(1)
        a = np.clip(action.detach().to("cpu", torch.float64).numpy(), -1.0, 1.0)
        if self._scaled is not None:
            rescaled = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
            a = np.where(self._scaled, rescaled, a)
        return a

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._env_action(tensordict.get("action"))
        reward, last, terminated = 0.0, False, False
        for _ in range(self.action_repeat):
            timestep = self._env.step(action)
            reward += float(timestep.reward or 0.0)
            if timestep.last():
                last, terminated = True, float(timestep.discount) == 0.0
                break
        self._steps += 1
        truncated = not terminated and (last or self._steps >= self.max_episode_steps)
        out = self._observe(timestep.observation)
        out["reward"] = torch.tensor([reward], dtype=torch.float32, device=self.device)
        out.update(self._flags(terminated, truncated))
        return TensorDict(out, batch_size=torch.Size([]), device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)

    def close(self, *, raise_if_closed: bool = True) -> None:
        env = self.__dict__.get("_env")
        if env is not None:
            env.close()
        super().close(raise_if_closed=raise_if_closed)


def make(
    name: str,
    *,
    from_pixels: bool = True,
    action_repeat: int | str = 2,
    image_size: int = 64,
    max_episode_frames: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    physics_state: bool = False,
) -> TransformedEnv:
    """Build ``name`` (``dmc_<domain>_<task>``) as ``TransformedEnv(DMCEnv(...), Compose(InitTracker()))``.

    ``action_repeat`` is a positive int or ``"planet"`` (:data:`PLANET_ACTION_REPEAT`; 4 for the discrete-action
    cartpole tasks of :data:`DISCRETE_TASKS`, whose one-hot action picks a force from the task's table). The
    ``InitTracker`` adds ``is_init`` (bool ``[1]``, True on the first observation of each episode); nothing else
    is transformed. ``physics_state``: also emit ``position`` / ``velocity`` (the physics' qpos / qvel, see
    :class:`DMCEnv`), for ``tracking.collect_latents``.
    """
    domain, task = resolve(name)
    repeat = _check_repeat(action_repeat, domain, name)
    forces = DISCRETE_TASKS[name][2] if name in DISCRETE_TASKS else None
    base = DMCEnv(
        domain,
        task,
        from_pixels=from_pixels,
        action_repeat=repeat,
        image_size=image_size,
        max_episode_frames=max_episode_frames,
        seed=seed,
        device=device,
        forces=forces,
        physics_state=physics_state,
    )
    return TransformedEnv(base, Compose(InitTracker()))
