"""Environment factories: task names -> TorchRL ``EnvBase`` (see :mod:`envs.registry`).

``make_env("dmc_cheetah_run")`` gives a pixel DeepMind Control env; ``make_env("gym_Pendulum-v1",
from_pixels=False)`` a proprio Gymnasium env; ``list_tasks()`` lists every accepted name by suite.
"""

from __future__ import annotations

from envs.registry import list_tasks, make_env

__all__ = ["list_tasks", "make_env"]
