"""What ``train(env, recipe)`` accepts as an env, turned into the loop's ``env_fn(recipe, seed) -> EnvBase``.

| given | training env | evaluation env (a fresh instance each time) |
|---|---|---|
| task name ``str`` (``"gym_CartPole-v1"``, ``"dmc_walker_walk"``, ``"atari_pong"``) | the registry's env | the registry's env |
| ``gymnasium.Env`` | the instance, through :func:`envs.gym.wrap` | ``envs.gym.fresh_copy(env)`` (needs ``env.spec``) |
| TorchRL ``EnvBase`` | the instance, adapted (below) | ``copy.deepcopy`` of the instance as given |
| a callable ``() -> gymnasium.Env | EnvBase`` | its first result | a new call each time |

Adapting a TorchRL env (:func:`adapt_env`): ``Categorical`` / ``MultiCategorical`` actions get :class:`~dreamer_rl.
action_space.OneHotActions` (the agent acts one-hot), bounded continuous actions outside [-1, 1] get TorchRL's
``ActionScaling``, and an env without ``is_init`` gets ``InitTracker``. Any other action spec is refused in one line.

A gymnasium instance is observed as it renders: ``env.from_pixels`` in the recipe is honoured only when the instance
was made with ``render_mode="rgb_array"`` (otherwise its own observations are used, and the log says so).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

from torchrl.data import Bounded
from torchrl.envs import Compose, EnvBase, InitTracker, TransformedEnv
from torchrl.envs.transforms import ActionScaling

from dreamer_rl.action_space import ActionSpace, OneHotActions
from dreamer_rl.config import Recipe
from dreamer_rl.errors import UserError

__all__ = ["adapt_env", "env_source", "task_name_of"]

log = logging.getLogger(__name__)
EnvFn = Callable[[Recipe, int], EnvBase]


def _is_gymnasium_env(env: Any) -> bool:
    try:
        import gymnasium
    except ImportError:  # pragma: no cover - gymnasium is a core dependency
        return False
    return isinstance(env, gymnasium.Env)


def task_name_of(env: Any) -> str | None:
    """The name a given env runs under (run name, MLflow ``task`` tag), ``None`` for a callable.

    A task name as given; ``gym_<spec id>`` for a gymnasium env with a spec (also inside a TorchRL ``GymWrapper`` /
    ``GymEnv``); ``torchrl_<class name>`` for any other TorchRL env.
    """
    if isinstance(env, str):
        return env
    if _is_gymnasium_env(env):
        return f"gym_{env.spec.id}" if env.spec is not None else f"gym_{type(env.unwrapped).__name__}"
    if isinstance(env, EnvBase):
        base = env
        while isinstance(base, TransformedEnv):
            base = base.base_env
        inner = getattr(base, "_env", None)
        if _is_gymnasium_env(inner) and inner.spec is not None:
            return f"gym_{inner.spec.id}"
        return f"torchrl_{type(base).__name__}"
    return None


def adapt_env(env: EnvBase, *, where: str = "env") -> EnvBase:
    """A TorchRL env as the loop needs it: one-hot or [-1, 1] actions and an ``is_init`` flag (see the module)."""
    space = ActionSpace.from_spec(env.action_spec_unbatched, where=where)
    transforms = []
    if space.env_encoding == "categorical":
        index_shape = env.action_spec_unbatched.shape
        transforms.append(OneHotActions(space, index_shape))
    spec = env.action_spec_unbatched
    if not space.discrete and isinstance(spec, Bounded):
        low, high = spec.space.low, spec.space.high
        if not (bool((low == -1).all()) and bool((high == 1).all())):
            transforms.append(ActionScaling())
    if "is_init" not in env.observation_spec.keys():
        transforms.append(InitTracker())
    if not transforms:
        return env
    return TransformedEnv(env, Compose(*transforms))


def _wrap_gymnasium(gym_env: Any, recipe: Recipe, seed: int) -> EnvBase:
    from envs.gym import wrap

    e = recipe.env
    pixels = e.from_pixels and getattr(gym_env, "render_mode", None) == "rgb_array"
    if e.from_pixels and not pixels:
        log.info("env.from_pixels is set but the gymnasium env was not made with render_mode='rgb_array': "
                 "training on its own observations")
    repeat = e.action_repeat if isinstance(e.action_repeat, int) else 1
    return wrap(gym_env, name=task_name_of(gym_env), from_pixels=pixels, action_repeat=repeat,
                image_size=e.image_size, max_episode_frames=e.max_episode_frames, seed=seed)


def _as_env(made: Any, recipe: Recipe, seed: int) -> EnvBase:
    if _is_gymnasium_env(made):
        return _wrap_gymnasium(made, recipe, seed)
    if isinstance(made, EnvBase):
        made.set_seed(seed)
        return adapt_env(made)
    raise UserError(f"train() got an env of type {type(made).__name__}; pass a gymnasium.Env, a TorchRL EnvBase, "
                    f"a registered task name, or a callable returning one of these")


def env_source(env: Any) -> EnvFn:
    """``env_fn(recipe, seed)`` for ``env`` (see the module docstring): the first call gives the env itself."""
    if isinstance(env, str):
        from dreamer_rl.training import default_env_fn

        return default_env_fn
    if callable(env) and not isinstance(env, EnvBase) and not _is_gymnasium_env(env):
        def build(recipe: Recipe, seed: int) -> EnvBase:
            return _as_env(env(), recipe, seed)

        build.picklable_factory = True  # type: ignore[attr-defined]  # worker processes may call it
        return build
    if not (_is_gymnasium_env(env) or isinstance(env, EnvBase)):
        return lambda recipe, seed: _as_env(env, recipe, seed)  # raises the one-line type error
    given = {"env": env}
    pristine = None
    if isinstance(env, EnvBase):
        try:
            pristine = copy.deepcopy(env)
        except Exception:  # noqa: BLE001 - any failure means: cannot copy
            pristine = None

    def env_fn(recipe: Recipe, seed: int) -> EnvBase:
        first = given.pop("env", None)
        if first is not None:
            return _as_env(first, recipe, seed)
        if _is_gymnasium_env(env):
            from envs.gym import fresh_copy

            return _as_env(fresh_copy(env), recipe, seed)
        if pristine is None:
            raise UserError(f"cannot make a fresh copy of the {type(env).__name__} for evaluation (deepcopy "
                            f"failed); pass a callable that builds the env instead: train(lambda: make_env(), recipe)")
        return _as_env(copy.deepcopy(pristine), recipe, seed)

    return env_fn
