"""dreamer_rl: the Dreamer family of world-model agents as TorchRL-native PyTorch components.

The training entry point is ``from dreamer_rl import train``: ``train(env, recipe)`` with a gymnasium env, a TorchRL
env or a task name and a :class:`dreamer_rl.config.Recipe` (``recipes.make_recipe(...)``), or ``train(recipe)``
(:mod:`dreamer_rl.training`); the components live in their modules (``dreamer_rl.rssm``, ``dreamer_rl.losses``,
``dreamer_rl.policy``, ``dreamer_rl.replay``, ...). Importing the package itself loads nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["train"]


def __getattr__(name: str):  # lazy: importing the package loads nothing heavy
    if name == "train":
        from dreamer_rl.training import train

        return train
    raise AttributeError(f"module 'dreamer_rl' has no attribute {name!r}")
