"""Multi-layer perceptrons used for every vector encoder, decoder and head."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["elu", "relu", "silu", "tanh"]


def activation(name: Activation) -> nn.Module:
    """The activation module for a config name (Dreamer V1 uses ELU throughout).

    In place where the op allows it: every activation here follows a layer whose output nothing else keeps, and
    ELU/ReLU backward can work from their result, so no second full-size activation tensor is allocated.
    """
    if name == "tanh":
        return nn.Tanh()
    if name == "silu":
        return nn.SiLU()  # its backward needs the input: not in place
    return {"elu": nn.ELU, "relu": nn.ReLU}[name](inplace=True)


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
