"""Gymnasium environments (``gym_<id>``, e.g. ``gym_CartPole-v1``, or any ``gymnasium.Env``) as TorchRL envs.

:func:`make` builds a registered id by name; :func:`wrap` applies the same stack to an env instance the user built
(``train(gymnasium.make("CartPole-v1"), recipe)``); :func:`fresh_copy` rebuilds an instance for evaluation. The
stack is ``TransformedEnv(GymWrapper(env), Compose([ActionScaling], GymObservation, InitTracker))``.

Observations (what the agent sees, all on ``device``):

==================================  ===============================================================================
Gymnasium observation               TorchRL keys
==================================  ===============================================================================
``from_pixels=True`` (any space)    ``pixels`` uint8 ``[3, S, S]``: ``env.render()`` (``render_mode="rgb_array"``)
                                    resized to ``S = image_size``; the env's own observation is dropped.
``Box`` image (uint8 ``HxWx3`` or   ``pixels`` uint8 ``[C, S, S]``, channels first, resized to ``S``.
``HxWx1``)
``Box`` (any other), ``Discrete``   ``observation`` float32 ``[D]``: flattened (``Discrete`` one-hot) and cast.
``Dict`` (nested allowed)           its image part -> ``pixels`` as above (at most one image part); every other leaf
                                    flattened, cast to float32 and concatenated in sorted key order (nested keys
                                    sort as tuples) into ``observation`` ``[D]``.
==================================  ===============================================================================

Frames are resized with ``F.interpolate(mode="bilinear", antialias=True)`` on float and rounded back to uint8
(:func:`resize_frame`); a non-square render (CartPole's 400x600) is stretched to the square. The render happens once
per agent step, after the action-repeat loop, and once per reset, never per Gymnasium step.

Actions (what the agent emits -> what ``env.step`` receives):

- ``Discrete(n, start)``: one-hot ``[n]`` (``OneHot`` spec) -> ``start + argmax``.
- ``MultiDiscrete(nvec, start)`` (1-D): one one-hot per sub-space, concatenated ``[sum(nvec)]`` (``MultiOneHot``
  spec) -> ``start + [argmax of each part]``.
- ``Box`` (float, 1-D, finite bounds): ``[-1, 1]`` rescaled affinely to ``[low, high]`` by ``ActionScaling``
  (skipped when the bounds already are [-1, 1]).
- Anything else (``Box`` with infinite bounds, ``Tuple``, ``Dict``, ``Text``, ``MultiBinary``, ...): ``UserError``.

Frame counting follows :mod:`envs.dmc`: one agent step is ``action_repeat`` Gymnasium steps (``GymWrapper``'s
``frame_skip``, rewards summed, the loop stops early when the episode ends). :func:`make` limits an episode to
``max_episode_frames`` Gymnasium steps, capped by the id's registered limit (CartPole-v1: 500, Pendulum-v1: 200) and
rounded down to a whole number of agent steps; the time limit sets ``truncated``, the task's own end
``terminated``. The returned env has ``action_repeat`` (read by ``dreamer_rl.train.action_repeat_of``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import Compose, GymWrapper, InitTracker, Transform, TransformedEnv
from torchrl.envs.transforms import ActionScaling

from dreamer_rl.errors import MissingDependencyError, UserError

__all__ = ["GymObservation", "fresh_copy", "make", "resize_frame", "task_names", "wrap"]

PREFIX = "gym_"
SUPPORTED_ACTIONS = "Discrete, MultiDiscrete, bounded Box"
SUPPORTED_OBSERVATIONS = "Box, Discrete, MultiDiscrete, MultiBinary and Dict of these"

NestedKey = tuple[str, ...]


def _gymnasium() -> Any:
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError.for_extra("gymnasium", "gym") from exc
    return gymnasium


def task_names() -> list[str]:
    """``gym_<id>`` for every id in Gymnasium's registry, sorted."""
    return sorted(f"{PREFIX}{env_id}" for env_id in _gymnasium().envs.registry)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- frames ----------------------------------------------------------------------------------------------------------
def resize_frame(frame: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> uint8 ``[C, size, size]``, channels first.

    Bilinear with antialiasing (an area-like average when shrinking) on float, then rounded and clamped to
    [0, 255]. A frame already ``size x size`` is only transposed, bit for bit.
    """
    x = torch.as_tensor(np.ascontiguousarray(frame)).permute(2, 0, 1)  # (C, H, W)
    if tuple(x.shape[-2:]) == (size, size):
        return x.contiguous()
    y = F.interpolate(x[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y[0].round_().clamp_(0, 255).to(torch.uint8)  # (C, size, size)


def _is_image(shape: Sequence[int], dtype: Any) -> bool:
    return dtype in (np.uint8, torch.uint8) and len(shape) == 3 and shape[-1] in (1, 3)


def _rgb(frame: Any, name: str) -> np.ndarray:
    """Check a ``render()`` result: uint8 ``[H, W, 3]`` (an alpha channel is dropped)."""
    arr = np.asarray(frame) if frame is not None else None
    if arr is None or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        got = "None" if arr is None else f"{arr.dtype} array of shape {tuple(arr.shape)}"
        raise UserError(f"{name}: env.render() returned {got}; from_pixels=True needs uint8 HxWx3 rgb_array frames")
    return arr[..., :3]


# -- observations ----------------------------------------------------------------------------------------------------
class GymObservation(Transform):
    """Map ``GymWrapper``'s raw observation keys to ``pixels`` and/or ``observation`` (see the module docstring).

    Args:
        raw_keys: top-level keys ``GymWrapper`` writes for the observation; all are removed.
        image_key: the raw leaf holding the env's own image (uint8 ``[H, W, C]``), or ``None``.
        vector_keys: raw leaves concatenated (flattened, float32) into ``observation`` ``[D]``, in this order.
        vector_dim: ``D``.
        image_size: side ``S`` of ``pixels`` ``[C, S, S]``.
        render: take ``pixels`` (``[3, S, S]``) from the Gymnasium env's ``render()`` instead (then ``image_key`` and
            ``vector_keys`` must be empty). The env is the ``GymWrapper`` this transform sits on.
        image_channels: ``C`` of the env's own image.
    """

    def __init__(
        self,
        *,
        raw_keys: Sequence[str],
        image_key: NestedKey | None,
        vector_keys: Sequence[NestedKey],
        vector_dim: int,
        image_size: int,
        render: bool,
        image_channels: int = 3,
    ) -> None:
        out_keys = (["pixels"] if render or image_key is not None else []) + (["observation"] if vector_keys else [])
        super().__init__(in_keys=list(raw_keys), out_keys=out_keys)
        assert not (render and (image_key is not None or vector_keys)), "render replaces the env's observation"
        self.raw_keys = list(raw_keys)
        self.image_key = image_key
        self.vector_keys = [tuple(k) for k in vector_keys]
        self.vector_dim = vector_dim
        self.image_size = image_size
        self.render = render
        self.channels = 3 if render else image_channels

    def render_frame(self) -> torch.Tensor:
        """The Gymnasium env's current ``render()``, resized: uint8 ``[3, S, S]``."""
        parent = self.parent
        if parent is None:
            raise RuntimeError("GymObservation(render=True) renders through its env: use it inside a TransformedEnv")
        gym_env = parent.base_env._env
        return resize_frame(_rgb(gym_env.render(), type(gym_env.unwrapped).__name__), self.image_size)

    def _call(self, tensordict: TensorDictBase) -> TensorDictBase:
        out: dict[str, torch.Tensor] = {}
        if self.render:
            out["pixels"] = self.render_frame()
        elif self.image_key is not None:
            out["pixels"] = resize_frame(tensordict.get(self.image_key).cpu(), self.image_size)
        if self.vector_keys:
            parts = [tensordict.get(k).reshape(-1).to(torch.float32) for k in self.vector_keys]
            out["observation"] = torch.cat(parts)  # (D,)
        for key in self.raw_keys:
            if key in tensordict:
                tensordict.del_(key)
        for key, value in out.items():
            tensordict.set(key, value.to(tensordict.device) if tensordict.device is not None else value)
        return tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        device = observation_spec.device
        for key in self.raw_keys:
            if key in observation_spec:
                del observation_spec[key]
        if "pixels" in self.out_keys:
            shape = (self.channels, self.image_size, self.image_size)
            observation_spec["pixels"] = Bounded(0, 255, shape=shape, dtype=torch.uint8, device=device)
        if "observation" in self.out_keys:
            observation_spec["observation"] = Unbounded(shape=(self.vector_dim,), dtype=torch.float32, device=device)
        return observation_spec


def _check_observation_space(space: Any, name: str) -> None:
    spaces = _gymnasium().spaces
    if isinstance(space, spaces.Dict):
        for sub in space.spaces.values():
            _check_observation_space(sub, name)
    elif not isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        raise UserError(
            f"{name}: observation space {_one_line(space)} is not supported; supported: {SUPPORTED_OBSERVATIONS}"
        )


def _observation_layout(spec: Composite, name: str) -> tuple[NestedKey | None, int, list[NestedKey], int]:
    """``(image key, image channels, vector keys in sorted order, vector dim)`` from ``GymWrapper``'s spec."""
    images: list[NestedKey] = []
    vectors: list[NestedKey] = []
    for key, leaf in spec.items(include_nested=True, leaves_only=True):
        key = (key,) if isinstance(key, str) else tuple(key)
        (images if _is_image(leaf.shape, leaf.dtype) else vectors).append(key)
    if len(images) > 1:
        listed = ", ".join(".".join(k) for k in sorted(images))
        raise UserError(f"{name}: the observation has {len(images)} image parts ({listed}); at most one is supported")
    vectors.sort()
    dim = sum(int(spec[k].shape.numel()) for k in vectors)
    image = images[0] if images else None
    channels = int(spec[image].shape[-1]) if image is not None else 0
    return image, channels, vectors, dim


# -- actions ---------------------------------------------------------------------------------------------------------
def _check_action_space(space: Any, name: str) -> None:
    spaces = _gymnasium().spaces
    if isinstance(space, spaces.Discrete):
        return
    if isinstance(space, spaces.MultiDiscrete) and len(space.shape) == 1:
        return
    if (
        isinstance(space, spaces.Box)
        and len(space.shape) == 1
        and np.issubdtype(space.dtype, np.floating)
        and bool(np.isfinite(space.low).all() and np.isfinite(space.high).all())
    ):
        return
    raise UserError(f"{name}: action space {_one_line(space)} is not supported; supported: {SUPPORTED_ACTIONS}")


@functools.cache
def _start_offset_wrapper() -> type:
    """A ``gymnasium.ActionWrapper`` exposing a zero-based ``Discrete``/``MultiDiscrete`` and adding ``start`` back.

    ``GymWrapper`` maps a one-hot to its argmax and ignores ``start``; this puts it back before ``env.step``.
    """
    gymnasium = _gymnasium()
    spaces = gymnasium.spaces

    class StartOffset(gymnasium.ActionWrapper):
        def __init__(self, env: Any) -> None:
            super().__init__(env)
            space = env.action_space
            self.start = np.asarray(space.start)
            if isinstance(space, spaces.Discrete):
                self.action_space = spaces.Discrete(int(space.n))
            else:
                self.action_space = spaces.MultiDiscrete(np.asarray(space.nvec))

        def action(self, action: Any) -> Any:
            shifted = np.asarray(action) + self.start
            return shifted.item() if shifted.ndim == 0 else shifted

    return StartOffset


# -- building --------------------------------------------------------------------------------------------------------
def _check_repeat(action_repeat: int | str) -> int:
    if isinstance(action_repeat, bool) or not isinstance(action_repeat, int) or action_repeat < 1:
        raise UserError(f"action_repeat for gym_ tasks must be a positive integer, got {action_repeat!r}")
    return action_repeat


def _default_name(gym_env: Any) -> str:
    spec = getattr(gym_env, "spec", None)
    return f"{PREFIX}{spec.id}" if spec is not None else f"{PREFIX}{type(gym_env.unwrapped).__name__}"


def wrap(
    gym_env: Any,
    *,
    name: str | None = None,
    from_pixels: bool = False,
    action_repeat: int = 1,
    image_size: int = 64,
    max_episode_frames: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> TransformedEnv:
    """Wrap a ``gymnasium.Env`` as ``TransformedEnv(GymWrapper(env), [ActionScaling], GymObservation, InitTracker)``.

    Args:
        gym_env: the env; with ``from_pixels=True`` it must have been made with ``render_mode="rgb_array"``.
        name: used in error messages; ``gym_<spec id>`` (or ``gym_<class name>``) by default.
        from_pixels: observe ``pixels`` uint8 ``[3, image_size, image_size]`` rendered after each agent step.
        action_repeat: Gymnasium steps per agent step (rewards summed).
        image_size: side of ``pixels``.
        max_episode_frames: if given, truncate an episode after this many Gymnasium steps, rounded down to whole
            agent steps (on top of the env's own time limit); ``None`` keeps the env's own limits only.
        seed: applied through ``env.set_seed`` (``gym_env.reset(seed=seed)``).
        device: where the env's tensors live.

    Raises:
        UserError: an unsupported action or observation space, an env that cannot render ``rgb_array`` frames when
            ``from_pixels=True``, or a bad ``action_repeat`` / ``image_size`` / ``max_episode_frames``.
    """
    gymnasium = _gymnasium()
    name = name or _default_name(gym_env)
    repeat = _check_repeat(action_repeat)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise UserError(f"image_size must be a positive integer, got {image_size!r}")
    _check_action_space(gym_env.action_space, name)
    _check_observation_space(gym_env.observation_space, name)
    if from_pixels:
        modes = gym_env.metadata.get("render_modes", ()) if isinstance(gym_env.metadata, dict) else ()
        if "rgb_array" not in modes:
            raise UserError(
                f"{name} cannot render rgb_array frames (render modes: {list(modes)}); pass from_pixels=False"
            )
        if gym_env.render_mode != "rgb_array":
            raise UserError(
                f"{name}: from_pixels=True needs an env made with render_mode='rgb_array' (this one has "
                f"{gym_env.render_mode!r}), e.g. gymnasium.make(..., render_mode='rgb_array')"
            )
    if max_episode_frames is not None:
        frames = (max_episode_frames // repeat) * repeat
        if frames < 1:
            raise UserError(f"max_episode_frames ({max_episode_frames}) must be at least action_repeat ({repeat})")
        gym_env = gymnasium.wrappers.TimeLimit(gym_env, max_episode_steps=frames)
    if np.asarray(getattr(gym_env.action_space, "start", 0)).any():
        gym_env = _start_offset_wrapper()(gym_env)

    base = GymWrapper(gym_env, frame_skip=repeat, device=device, categorical_action_encoding=False)
    base.action_repeat = repeat
    transforms: list[Transform] = []
    action_spec = base.action_spec
    if isinstance(action_spec, Bounded) and action_spec.dtype.is_floating_point:
        low, high = action_spec.space.low, action_spec.space.high
        if not (bool((low == -1).all()) and bool((high == 1).all())):
            transforms.append(ActionScaling())
    raw = base.observation_spec
    raw_keys = list(raw.keys())
    if from_pixels:
        observe = GymObservation(
            raw_keys=raw_keys, image_key=None, vector_keys=[], vector_dim=0, image_size=image_size, render=True
        )
    else:
        image, channels, vectors, dim = _observation_layout(raw, name)
        observe = GymObservation(
            raw_keys=raw_keys,
            image_key=image,
            vector_keys=vectors,
            vector_dim=dim,
            image_size=image_size,
            render=False,
            image_channels=channels,
        )
    transforms += [observe, InitTracker()]
    env = TransformedEnv(base, Compose(*transforms))
    env.set_seed(seed)  # resets the Gymnasium env, so it can render
    if from_pixels:
        try:
            observe.render_frame()
        except gymnasium.error.DependencyNotInstalled as exc:
            reason = _one_line(exc) or type(exc).__name__
            raise UserError(f"{name}: rendering needs a package that is not installed ({reason}); install it or pass "
                            "from_pixels=False") from exc
    return env


def _registered_render_modes(spec: Any) -> list[str] | None:
    """The ``render_modes`` a registered id's env class declares in its ``metadata``; ``None`` when unknown."""
    from gymnasium.envs.registration import load_env_creator

    try:
        creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
    except Exception:  # noqa: BLE001 - a missing package etc.: gymnasium.make reports it
        return None
    metadata = getattr(creator, "metadata", None)
    modes = metadata.get("render_modes") if isinstance(metadata, dict) else None
    return list(modes) if modes is not None else None


def make(
    name: str,
    *,
    from_pixels: bool = True,
    action_repeat: int | str = 2,
    image_size: int = 64,
    max_episode_frames: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> TransformedEnv:
    """Build ``gym_<id>`` with ``gymnasium.make(id, max_episode_steps=frames)`` and :func:`wrap` it.

    ``frames`` is ``min(max_episode_frames, registered limit)`` rounded down to a multiple of ``action_repeat``. With
    ``from_pixels=True`` the env is made with ``render_mode="rgb_array"``.
    """
    gymnasium = _gymnasium()
    env_id = name[len(PREFIX) :]
    registry = gymnasium.envs.registry
    if env_id not in registry:
        from envs.registry import unknown_task

        raise unknown_task(name, "gym", task_names())
    repeat = _check_repeat(action_repeat)
    frames = max_episode_frames
    registered = registry[env_id].max_episode_steps
    if registered is not None:
        frames = min(frames, registered)
    frames = (frames // repeat) * repeat
    if frames < 1:
        raise UserError(f"max_episode_frames ({max_episode_frames}) must be at least action_repeat ({repeat})")
    if from_pixels:
        modes = _registered_render_modes(registry[env_id])
        if modes is not None and "rgb_array" not in modes:  # asking gymnasium.make anyway warns, or raises TypeError
            raise UserError(f"{name} cannot render rgb_array frames (render modes: {modes}); pass from_pixels=False")
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"} if from_pixels else {}
    try:
        gym_env = gymnasium.make(env_id, max_episode_steps=frames, **kwargs)
    except gymnasium.error.DependencyNotInstalled as exc:
        reason = _one_line(exc) or type(exc).__name__
        raise UserError(f"{name} needs a package that is not installed: {reason}") from exc
    try:
        return wrap(
            gym_env,
            name=name,
            from_pixels=from_pixels,
            action_repeat=repeat,
            image_size=image_size,
            seed=seed,
            device=device,
        )
    except UserError:
        gym_env.close()
        raise


def fresh_copy(gym_env: Any) -> Any:
    """A new, independent instance of ``gym_env`` (for evaluation): ``gymnasium.make(gym_env.spec)``.

    The spec carries the id, the constructor kwargs, the time limit and the registered wrappers; the render mode is
    ``gym_env``'s. An env built without ``gymnasium.make`` has no spec: then a ``UserError`` asks for a callable.
    """
    gymnasium = _gymnasium()
    spec = getattr(gym_env, "spec", None)
    if spec is None:
        raise UserError(
            f"cannot build a second {type(gym_env.unwrapped).__name__} for evaluation: it has no gymnasium spec (it "
            "was not made with gymnasium.make); pass a callable that builds the env instead, e.g. lambda: MyEnv()"
        )
    try:
        return gymnasium.make(spec, render_mode=gym_env.render_mode)
    except gymnasium.error.Error as exc:
        raise UserError(
            f"cannot rebuild {spec.id} from its spec ({_one_line(exc)}); pass a callable that builds the env instead"
        ) from exc
