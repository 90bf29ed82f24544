"""Neural-network parts: encoders, decoders, MLP heads and action distributions."""

from __future__ import annotations

from dreamer_rl.nets.conv import ConvDecoder, ConvEncoder
from dreamer_rl.nets.distributions import TanhNormalActor, gaussian_log_prob
from dreamer_rl.nets.mlp import MLP, activation

__all__ = ["MLP", "ConvDecoder", "ConvEncoder", "TanhNormalActor", "activation", "gaussian_log_prob"]
