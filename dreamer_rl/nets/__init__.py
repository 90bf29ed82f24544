"""Neural-network parts: encoders, decoders, MLP heads, actors and output helpers (symlog, two-hot, one-hot)."""

from __future__ import annotations

from dreamer_rl.nets.actors import (
    BoundedNormalActor,
    OneHotActor,
    TanhNormalActor,
    TruncNormalActor,
    make_actor,
)
from dreamer_rl.nets.conv import ConvDecoder, ConvEncoder
from dreamer_rl.nets.distributions import gaussian_log_prob
from dreamer_rl.nets.mlp import MLP, activation

__all__ = ["MLP", "BoundedNormalActor", "ConvDecoder", "ConvEncoder", "OneHotActor", "TanhNormalActor",
           "TruncNormalActor", "activation", "gaussian_log_prob", "make_actor"]
