"""DreamerV3's weight initialisation (``embodied/jax/nets.py`` ``Initializer('trunc_normal', 'in')``).

Every dense, block-linear and convolution kernel is drawn from a normal truncated to ``[-2, 2]`` and scaled to unit
variance over its fan-in, biases start at zero::

    W = 1.1368 · t / sqrt(fan_in) · outscale,      t ~ N(0, 1) truncated to [-2, 2]   (std(t) = 1 / 1.1368)

``fan_in`` is the input width of a dense layer, ``C_in · k · k`` of a convolution (the author's ``compute_fans`` of a
``(k, k, C_in, C_out)`` kernel) and the *whole* input width of a block-linear layer (``compute_fans`` of a
``(g, in / g, out / g)`` kernel gives ``g · in / g``), so each block starts ``sqrt(g)`` smaller than a dense layer
of its own width would. Output scales: the policy's last layer ``0.01`` (``policy.outscale``), the reward and critic
two-hot layers ``0`` (already zero in :class:`~dreamer_rl.nets.heads.ScalarHead`, kept), everything else ``1``.

PyTorch's default (``U(±1/sqrt(fan_in))``, std ``1/sqrt(3 fan_in)``, random biases) is ``sqrt(3)`` smaller. Under
LaProp, whose steps have a fixed size, and adaptive clipping to ``0.3 ‖W‖``, the scale of the weights sets how far
each update moves them relative to their size, so V3's recipe uses this scheme (``model.init dreamer_v3``).

Modules with parameters of their own shape (the block GRU, the V3 image decoder's block-linear input) define
``dreamer_v3_init()``; layers a module has zero-initialised on purpose are marked ``zero_init = True`` and left as
they are.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TRUNC_SCALE = 1.1368  # 1 / std of N(0, 1) truncated to [-2, 2]
POLICY_OUTSCALE = 0.01  # configs.yaml policy.outscale: a near-uniform (discrete) or centred first policy


@torch.no_grad()
def trunc_normal_in_(tensor: torch.Tensor, fan_in: int, scale: float = 1.0) -> torch.Tensor:
    """Fill ``tensor`` with ``1.1368 · t / sqrt(fan_in) · scale``, ``t`` a standard normal truncated to ±2."""
    nn.init.trunc_normal_(tensor, 0.0, 1.0, -2.0, 2.0)
    return tensor.mul_(TRUNC_SCALE * scale / math.sqrt(fan_in))


@torch.no_grad()
def dreamer_v3_init(*nets: nn.Module | None, policies: tuple[nn.Module | None, ...] = ()) -> None:
    """Re-initialise every layer of ``nets`` and ``policies`` as DreamerV3 does (``None`` entries are skipped); a
    policy's last layer (``policy.net[-1]``) is then scaled by :data:`POLICY_OUTSCALE`."""
    for net in nets + policies:
        if net is not None:
            _init_tree(net)
    for policy in policies:
        if policy is not None:
            policy.net[-1].weight.mul_(POLICY_OUTSCALE)


def _init_tree(root: nn.Module) -> None:
    """Dense and convolution layers here; modules of other shapes through their ``dreamer_v3_init()``; layers
    marked ``zero_init`` keep their zeros."""
    for module in root.modules():
        if getattr(module, "zero_init", False):
            continue
        if isinstance(module, nn.Linear):
            trunc_normal_in_(module.weight, module.in_features)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            k = math.prod(module.kernel_size)
            trunc_normal_in_(module.weight, module.in_channels * k)
        elif hasattr(module, "dreamer_v3_init") and module is not root:
            module.dreamer_v3_init()
            continue
        else:
            continue
        if module.bias is not None:
            module.bias.zero_()
    if hasattr(root, "dreamer_v3_init"):
        root.dreamer_v3_init()
