"""Multi-layer perceptrons and normalisation layers used for every vector encoder, decoder and head.

A hidden layer is ``act(norm(W x + b))``: Dreamer V1 uses no norm and ELU; DreamerV2's heads use ELU (LayerNorm
in its GRU); DreamerV3 uses RMSNorm (eps 1e-4) and SiLU everywhere, and its dense and conv layers keep their bias
before the norm (``embodied/jax/nets.py``: ``Linear(bias=True)`` then ``Norm('rms')``). RMSNorm does not subtract
the mean, so that bias is a real parameter there; before a LayerNorm it would cancel, so those layers have none.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dreamer_rl.nets.norm_act import RMSNormSiLU

Activation = Literal["elu", "relu", "silu", "tanh"]
Norm = Literal["none", "layer", "rms"]


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


NORM_EPS: dict[str, float] = {"layer": 1e-3, "rms": 1e-4}
"""Each norm's eps as its authors set it: Keras' LayerNorm default (DreamerV2), ``nn.Norm.eps`` (DreamerV3)."""


def pre_norm_bias(kind: Norm) -> bool:
    """Whether the linear or conv layer in front of a ``kind`` norm has a bias: not before LayerNorm (its mean
    subtraction cancels a bias), yes before RMSNorm (DreamerV3 keeps it) or no norm."""
    return kind != "layer"


class LayerNorm(nn.LayerNorm):
    """:class:`torch.nn.LayerNorm` computed in float32 whatever the input (bf16 autocast hands it bfloat16): the
    statistics of a bfloat16 row lose digits, and DreamerV3 normalises in float32 too. Same parameters and keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x.float())


class RMSNorm(nn.RMSNorm):
    """:class:`torch.nn.RMSNorm` computed in float32 whatever the input (see :class:`LayerNorm`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x.float())


def norm_layer(kind: Norm, dim: int, eps: float | None = None) -> nn.Module:
    """``LayerNorm`` / ``RMSNorm`` over the last dim (learned scale; LayerNorm also a shift), or identity.

    RMSNorm: ``x / sqrt(mean(x²) + eps) * g`` (DreamerV3's ``norm: rms``). ``eps=None``: the kind's own
    (:data:`NORM_EPS`).
    """
    eps = NORM_EPS.get(kind, 0.0) if eps is None else eps
    if kind == "none":
        return nn.Identity()
    if kind == "layer":
        return LayerNorm(dim, eps=eps)
    if kind == "rms":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"norm {kind!r}; available: 'none', 'layer', 'rms'")


def norm_act(kind: Norm, dim: int, act: Activation, eps: float | None = None) -> tuple[nn.Module, nn.Module]:
    """``(norm, act)`` modules of a hidden layer, applied as ``act(norm(x))``.

    RMSNorm + SiLU (DreamerV3's every hidden layer) is one fused module (:class:`~dreamer_rl.nets.norm_act.RMSNormSiLU`,
    a third fewer passes over the map) followed by an identity, so the modules, their positions in a
    ``Sequential`` and the state-dict keys (``<i>.weight``) stay those of the separate pair.
    """
    if kind == "rms" and act == "silu":
        return RMSNormSiLU(dim, NORM_EPS["rms"] if eps is None else eps), nn.Identity()
    return norm_layer(kind, dim, eps), activation(act)


class MLP(nn.Sequential):
    """``layers`` hidden layers ``act(norm(W x + b))`` of ``units``, then a linear output (``output=False``: none, the
    last hidden layer is the output, as DreamerV3's vector encoder).

    Shapes: ``[..., in_dim] -> [..., out_dim]``; any number of leading dims (heads run over ``[B, T]`` or ``[H, N]``
    in one call). ``norm="none"`` reproduces the plain V1 MLP exactly (same modules, same initialisation order).
    """

    def __init__(self, in_dim: int, out_dim: int, *, units: int, layers: int, act: Activation = "elu",
                 norm: Norm = "none", output: bool = True) -> None:
        modules: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            modules.append(nn.Linear(dim, units, bias=pre_norm_bias(norm)))
            norm_module, act_module = norm_act(norm, units, act)
            if norm != "none":
                modules.append(norm_module)
            modules.append(act_module)
            dim = units
        if output:
            modules.append(nn.Linear(dim, out_dim))
        elif out_dim != units:
            raise ValueError(f"an MLP without an output layer ends in its {units} hidden units, not {out_dim}")
        super().__init__(*modules)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        # float32 out whatever the compute dtype (bf16 autocast: ``train.precision``); a no-op in float32
        return super().forward(x).float()
