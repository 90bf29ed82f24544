"""``train.compile``: ``torch.compile`` the sequential steps of the world model.

A Dreamer update spends its sequential time in two loops of small steps: the filter (``T`` posterior steps over
``B`` rows, :meth:`dreamer_rl.rssm.RSSM.filter_step`) and imagination (``H`` prior steps over ``N = B T`` starts,
:meth:`~dreamer_rl.rssm.RSSM.img_step`); a planner rolls ``H`` prior steps over its candidates in each of its
iterations (:meth:`~dreamer_rl.rssm.RSSM.prior_step`, also what :class:`dreamer_rl.model_env.WorldModelEnv` steps,
so TorchRL's planners on it use the compiled step too). Each step is a handful of matmuls wrapped in norms, activations, gates,
the unimix softmax and the sample: a dozen elementwise kernels per matmul in eager mode. Compiling a step fuses
those into a few kernels (forward and backward), and is reused at every step of the loop, since every step has
the same shapes (``dynamic=False``). The step functions are pure tensor functions with static shapes (no host
syncs, no value branches), so they compile without graph breaks.

Modes (``torch.compile``'s):

- ``default``: inductor kernels (CPU: C++/OpenMP, GPU: Triton);
- ``reduce-overhead``: the same plus CUDA graphs on a GPU (each step replayed as one graph launch); on a CPU it is
  ``default``;
- ``max-autotune``: also benchmarks matmul and convolution kernels (long compiles; GPU);
- ``none``: eager (the default).

Compilation happens at the first update (tens of seconds on a CPU), and again when a step meets a new shape
(imagination's ``N`` and the filter's ``B`` differ, so each step compiles once per shape it meets). The compiled
functions are set on the model *instance*, so parameters, ``state_dict`` keys and checkpoints are those of the
eager model, and the math is the same: :mod:`tests.test_compile` compares compiled steps against eager ones.

On this project's CPU (``benchmarks/RESULTS.md``, one thread): DreamerV3's state-vector update at size1m 1.22x
faster (bf16), no change where matmuls dominate (size12m pixels, a PlaNet plan). Its purpose is a GPU, where a
step's many small kernels cost more than its matmuls (``reduce-overhead``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = ("none", "default", "reduce-overhead", "max-autotune")
#: what :func:`compile_steps` compiles on a transition model
STEP_METHODS: tuple[str, ...] = ("filter_step", "img_step", "prior_step")


def compile_steps(model: nn.Module, mode: CompileMode) -> list[str]:
    """Replace ``model``'s :data:`STEP_METHODS` by compiled versions (in place, on the instance); returns their names.

    ``model`` is a transition model (:class:`~dreamer_rl.rssm.RSSM` or a
    :class:`~dreamer_rl.transitions.base.TransitionModel`). Calling it again compiles the class's own methods
    afresh (a mode change replaces the earlier compiled ones); ``mode "none"`` restores eager steps.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r}; available: {', '.join(COMPILE_MODES)}")
    done = []
    for name in STEP_METHODS:
        eager = getattr(type(model), name, None)
        if eager is None:
            continue
        model.__dict__.pop(name, None)  # back to the class's method
        if mode != "none":
            bound = eager.__get__(model, type(model))
            model.__dict__[name] = torch.compile(bound, mode=None if mode == "default" else mode, dynamic=False)
            done.append(name)
    return done


def is_compiled(model: nn.Module) -> bool:
    """Whether :func:`compile_steps` compiled ``model``'s steps."""
    return any(name in model.__dict__ for name in STEP_METHODS)
