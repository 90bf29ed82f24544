"""What the agent acts with, read from the env's action spec: continuous, one-hot, or one one-hot per sub-space.

| env action spec (TorchRL) | gymnasium space | agent action ``[..., A]`` | :attr:`ActionSpace.sizes` |
|---|---|---|---|
| ``Bounded`` float | ``Box`` (finite bounds) | in [-1, 1] (the env rescales) | ``(A,)`` |
| ``OneHot(n)`` | ``Discrete(n)`` | one-hot, ``A = n`` | ``(n,)`` |
| ``MultiOneHot(nvec)`` | ``MultiDiscrete(nvec)`` | one one-hot per sub-space, concatenated, ``A = Σ nvec`` | ``nvec`` |
| ``Categorical(n)`` / ``MultiCategorical(nvec)`` | (index encodings) | as the one-hot rows; :class:`OneHotActions` turns them into indices | |

Nothing is configured for the common case: :meth:`ActionSpace.from_spec` reads the spec; the actor is a one-hot
categorical per sub-space for discrete spaces (:class:`~dreamer_rl.nets.actors.OneHotActor`) and the recipe's
continuous distribution otherwise. Exploration of discrete actions is ε-greedy (:meth:`ActionSpace.epsilon_greedy`);
the ε schedule of the TF1 Dreamer seed is :func:`explore_amount`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from tensordict import TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, MultiCategorical, MultiOneHot, OneHot, TensorSpec
from torchrl.envs import Transform

from dreamer_rl.errors import UserError

__all__ = ["ActionSpace", "OneHotActions", "explore_amount"]

SUPPORTED = "Box with finite bounds, Discrete, MultiDiscrete (TorchRL: Bounded, OneHot, MultiOneHot, Categorical, " \
            "MultiCategorical)"


@dataclass(frozen=True)
class ActionSpace:
    """Kind and layout of the agent's actions.

    :param kind: ``"continuous"`` (actions in [-1, 1]) or ``"discrete"`` (one one-hot block per sub-space).
    :param sizes: ``(A,)`` for continuous actions, the classes of each sub-space for discrete ones.
    :param env_encoding: ``"onehot"`` when the env takes the one-hot rows as they are, ``"categorical"`` when it takes
        indices (wrap it in :class:`OneHotActions`).
    """

    kind: Literal["continuous", "discrete"]
    sizes: tuple[int, ...]
    env_encoding: Literal["onehot", "categorical"] = "onehot"

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def dim(self) -> int:
        """Width ``A`` of the agent's action vector."""
        return sum(self.sizes)

    @classmethod
    def from_spec(cls, spec: TensorSpec, *, where: str = "env") -> "ActionSpace":
        """The action space of a TorchRL action spec (of one env; leading batch dims are ignored).

        Raises :class:`UserError` (one line, naming the spec and what is supported) for anything else.
        """
        if isinstance(spec, Composite):
            if "action" not in spec.keys():
                raise UserError(f"{where}: no 'action' entry in the action spec (keys: {list(spec.keys(True))})")
            spec = spec["action"]
        if isinstance(spec, MultiOneHot):
            return cls("discrete", tuple(int(n) for n in spec.nvec))
        if isinstance(spec, OneHot):
            return cls("discrete", (int(spec.space.n),))
        if isinstance(spec, MultiCategorical):
            nvec = torch.as_tensor(spec.nvec).reshape(-1, spec.shape[-1])[0]
            return cls("discrete", tuple(int(n) for n in nvec), "categorical")
        if isinstance(spec, Categorical):
            if spec.shape not in (torch.Size([]), torch.Size([1])):
                raise UserError(f"{where}: a {type(spec).__name__} action spec of shape {tuple(spec.shape)} is not "
                                f"supported; supported: {SUPPORTED}")
            return cls("discrete", (int(spec.space.n),), "categorical")
        if isinstance(spec, Bounded) and spec.dtype.is_floating_point:
            low, high = spec.space.low, spec.space.high
            if not bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
                raise UserError(f"{where}: continuous actions without finite bounds are not supported (the actor "
                                f"acts in [-1, 1] rescaled to the bounds); supported: {SUPPORTED}")
            return cls("continuous", (int(spec.shape[-1]),))
        raise UserError(f"{where}: action spec {type(spec).__name__} (dtype {spec.dtype}, shape {tuple(spec.shape)}) "
                        f"is not supported; supported: {SUPPORTED}")

    # ---------------------------------------------------------------- sampling
    def random(self, *batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Uniform random actions ``[*batch, A]``: U[-1, 1] per dim, or a uniform one-hot per sub-space."""
        if not self.discrete:
            return torch.rand(*batch, self.dim, device=device) * 2 - 1
        parts = []
        for n in self.sizes:
            index = torch.randint(n, (*batch, 1), device=device)
            parts.append(torch.zeros(*batch, n, device=device).scatter_(-1, index, 1.0))
        return torch.cat(parts, -1)

    def epsilon_greedy(self, action: torch.Tensor, epsilon: float) -> torch.Tensor:
        """``action [..., A]`` with each env's whole action replaced, with probability ``ε``, by :meth:`random`.

        As the TF Dreamer seeds' ``epsilon_greedy``: one coin per env (not per sub-space).
        """
        if epsilon <= 0:
            return action
        batch = action.shape[:-1]
        replace = torch.rand(*batch, 1, device=action.device) < epsilon
        return torch.where(replace, self.random(*batch, device=action.device), action)

    def split(self, action: torch.Tensor) -> list[torch.Tensor]:
        """The one-hot blocks ``[..., n_i]`` of a discrete action ``[..., A]``."""
        return list(action.split(list(self.sizes), -1))

    def indices(self, action: torch.Tensor) -> torch.Tensor:
        """``[..., A]`` one-hot blocks -> ``[..., len(sizes)]`` int64 class indices."""
        return torch.stack([block.argmax(-1) for block in self.split(action.float())], -1)  # bool specs too

    def one_hot(self, indices: torch.Tensor) -> torch.Tensor:
        """``[..., len(sizes)]`` class indices -> ``[..., A]`` concatenated one-hot blocks (float)."""
        parts = [torch.nn.functional.one_hot(indices[..., i].long(), n).float() for i, n in enumerate(self.sizes)]
        return torch.cat(parts, -1)


def explore_amount(amount: float, frames: int, decay: float, floor: float) -> float:
    """The exploration amount after ``frames`` env frames: ``max(floor, amount · (1 - frames / decay))``.

    The TF1 Dreamer seed's schedule (``schedule.linear`` with a negative ramp): a linear decay over ``decay`` frames
    (0: constant), never below ``floor``. Its ``discrete`` preset: ε = 0.4 decaying over 1e7 steps with the factor
    floored at 0.25, i.e. ``floor = 0.4 · 0.25 = 0.1``. ``explore_amount(0.4, 5_000_000, 1e7, 0.1) = 0.2``.
    """
    if decay > 0:
        amount = amount * max(0.0, 1.0 - frames / decay)
    return max(floor, amount)


class OneHotActions(Transform):
    """Env transform: the agent's one-hot action in, the env's class index (or indices) out.

    For envs whose action spec is ``Categorical(n)`` (index ``[]`` or ``[1]``) or ``MultiCategorical(nvec)``
    (indices ``[k]``): the action spec seen from outside becomes ``OneHot(n)`` / ``MultiOneHot(nvec)``, and every
    action is turned back into indices by argmax per block before it reaches the env.
    """

    def __init__(self, space: ActionSpace, index_shape: torch.Size) -> None:
        super().__init__(in_keys=[], out_keys=[], in_keys_inv=["action"], out_keys_inv=["action"])
        self.space, self.index_shape = space, torch.Size(index_shape)

    def _inv_apply_transform(self, action: torch.Tensor) -> torch.Tensor:
        index = self.space.indices(action)
        return index.reshape(action.shape[:-1] + self.index_shape)  # index_shape may be () (Categorical [])

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return next_tensordict

    def transform_action_spec(self, action_spec: TensorSpec) -> TensorSpec:
        def convert(leaf: TensorSpec) -> TensorSpec:
            batch = leaf.shape[: leaf.ndim - len(self.index_shape)]
            if len(self.space.sizes) == 1:
                return OneHot(self.space.sizes[0], shape=(*batch, self.space.dim), device=leaf.device,
                              dtype=torch.int64)
            return MultiOneHot(list(self.space.sizes), shape=(*batch, self.space.dim), device=leaf.device,
                               dtype=torch.int64)

        if isinstance(action_spec, Composite):
            action_spec = action_spec.clone()
            action_spec["action"] = convert(action_spec["action"])
            return action_spec
        return convert(action_spec)
