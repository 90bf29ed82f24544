"""dreamer_rl: the Dreamer family of world-model agents as TorchRL-native PyTorch components.

The training entry point is :func:`dreamer_rl.train.train` (``train(recipe, env_fn=None)``) with a
:class:`dreamer_rl.config.Recipe`; the components live in their modules (``dreamer_rl.rssm``, ``dreamer_rl.losses``,
``dreamer_rl.policy``, ``dreamer_rl.replay``, ...). Importing the package itself loads nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0"
