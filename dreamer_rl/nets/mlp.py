"""Multi-layer perceptrons used for every vector encoder, decoder and head."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["elu", "relu", "silu", "tanh"]


def activation(name: Activation) -> nn.Module:
    """The activation module for a config name (Dreamer V1 uses ELU throughout)."""
    return {"elu": nn.ELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}[name]()


class MLP(nn.Sequential):
    """``layers`` hidden layers of ``units`` with an activation, then a linear output.

    Shapes: ``[..., in_dim] -> [..., out_dim]``; any number of leading dims (heads run over ``[B, T]`` or ``[H, N]``
    in one call).
    """

    def __init__(self, in_dim: int, out_dim: int, *, units: int, layers: int, act: Activation = "elu") -> None:
        modules: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            modules += [nn.Linear(dim, units), activation(act)]
            dim = units
        modules.append(nn.Linear(dim, out_dim))
        super().__init__(*modules)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x)
