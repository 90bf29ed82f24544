"""dreamer_rl: the Dreamer family of world-model agents as TorchRL-native PyTorch components."""

from __future__ import annotations

__version__ = "0.1.0"
