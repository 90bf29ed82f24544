"""Deterministic transition cells of the RSSM: ``h_t = f(h_{t-1}, z_{t-1}, a_{t-1})``.

Every cell has the same interface so the RSSM's scan over ``T`` is one loop for all of them:

- ``action_input(a) -> [..., X]``: the part that depends only on the action, computed for all ``T`` at once before
  the sequential loop (one matmul instead of ``T``);
- ``forward(deter [N, D], stoch [N, Z], action_in [N, X]) -> deter [N, D]``.

Kinds (``model.cell``):

``gru`` (PlaNet, Dreamer V1): ``x = act(norm(W_z z + W_a a + b))``, ``h = GRUCell(x, h)`` (PyTorch's GRU).

``gru_ln`` (DreamerV2, ``common/nets.py`` GRUCell with ``norm=True``): the same input layer, then
    ``[r, c, u] = LayerNorm(W [x, h] + b)``,  ``r = σ(r)``,  ``c = tanh(r ⊙ c)``,  ``u = σ(u - 1)``,
    ``h' = u ⊙ c + (1 - u) ⊙ h``.

``block_gru`` (DreamerV3, ``dreamerv3/rssm.py`` ``_core``): three input branches ``x_h = act(norm(W_0 h))``,
``x_z = act(norm(W_1 z))``, ``x_a = act(norm(W_2 a))`` (each ``hidden`` wide) are shared by ``G`` blocks; block
``g`` sees ``[h_g, x_h, x_z, x_a]`` (``h_g`` its ``D/G`` slice of ``h``), then
    ``y = act(norm(BlockLinear(·)))`` (``D`` wide),   ``[r, c, u] = BlockLinear(y)`` (``3D``),
    ``h' = σ(u - 1) ⊙ tanh(σ(r) ⊙ c) + (1 - σ(u - 1)) ⊙ h``.
A block-diagonal layer mixes only within a block, so the recurrent weights are ``G`` times smaller than a dense GRU
of the same width. Speed: the shared branch ``[x_h, x_z, x_a] W_shared`` is one dense matmul for all blocks; only
the ``h_g`` part is block-diagonal (one batched matmul).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from dreamer_rl.nets.mlp import Activation, LayerNorm, Norm, norm_act, pre_norm_bias
from dreamer_rl.nets.init import trunc_normal_in_

CellKind = Literal["gru", "gru_ln", "block_gru"]


class LayerNormGRUCell(nn.Module):
    """DreamerV2's GRU cell (see the module docstring): ``(x [N, I], h [N, D]) -> h' [N, D]``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.layer = nn.Linear(input_size + hidden_size, 3 * hidden_size)  # the author keeps the bias before the norm
        self.norm = LayerNorm(3 * hidden_size, eps=1e-3)  # float32 statistics under bf16 autocast too

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # noqa: D102
        reset, cand, update = self.norm(self.layer(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)
        return update * cand + (1 - update) * h


class GRUTransition(nn.Module):
    """``gru`` / ``gru_ln``: input layer on ``(z, a)`` then a GRU cell (see the module docstring)."""

    def __init__(self, stoch: int, action_dim: int, deter: int, hidden: int, *, act: Activation = "elu",
                 norm: Norm = "none", layer_norm_gru: bool = False) -> None:
        super().__init__()
        # img_in(cat(z, a)) = W_z z + W_a a + b, split so W_a a is computed for all T at once.
        self.img_in_stoch = nn.Linear(stoch, hidden, bias=pre_norm_bias(norm))
        self.img_in_action = nn.Linear(action_dim, hidden, bias=False)
        self.img_in_norm, self.act = norm_act(norm, hidden, act)
        self.cell: nn.Module = LayerNormGRUCell(hidden, deter) if layer_norm_gru else nn.GRUCell(hidden, deter)

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """``[..., A] -> [..., hidden]``."""
        return self.img_in_action(action)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.act(self.img_in_norm(self.img_in_stoch(stoch) + action_in))
        return self.cell(x, deter).to(deter.dtype)  # the state keeps its dtype under bf16 autocast


class BlockGRU(nn.Module):
    """DreamerV3's block GRU transition (see the module docstring); ``deter`` must divide by ``blocks``."""

    def __init__(self, stoch: int, action_dim: int, deter: int, hidden: int, *, blocks: int = 8,
                 act: Activation = "silu", norm: Norm = "rms") -> None:
        super().__init__()
        if deter % blocks:
            raise ValueError(f"block_gru: deter {deter} is not divisible by blocks {blocks}")
        self.blocks, self.deter, self.hidden = blocks, deter, hidden
        g, d = blocks, deter // blocks
        self.in_deter = nn.Sequential(nn.Linear(deter, hidden, bias=pre_norm_bias(norm)), *norm_act(norm, hidden, act))
        self.in_stoch = nn.Sequential(nn.Linear(stoch, hidden, bias=pre_norm_bias(norm)), *norm_act(norm, hidden, act))
        self.in_action = nn.Sequential(nn.Linear(action_dim, hidden, bias=pre_norm_bias(norm)), *norm_act(norm, hidden, act))
        # Block-linear hidden layer: block g maps [h_g (d), x (3 hidden)] -> d. The x part is shared by all blocks,
        # so its weights form one dense [3 hidden, D] matrix; the h_g part is block-diagonal [g, d, d].
        fan_in = d + 3 * hidden
        bound = 1 / math.sqrt(fan_in)
        self.hid_shared = nn.Parameter(torch.empty(3 * hidden, deter).uniform_(-bound, bound))
        self.hid_block = nn.Parameter(torch.empty(g, d, d).uniform_(-bound, bound))
        self.hid_bias = nn.Parameter(torch.zeros(deter)) if pre_norm_bias(norm) else None
        self.hid_norm, self.hid_act = norm_act(norm, deter, act)
        # Block-linear gates: block g maps its d hidden units to its 3d gate pre-activations.
        bound = 1 / math.sqrt(d)
        self.gates = nn.Parameter(torch.empty(g, d, 3 * d).uniform_(-bound, bound))
        self.gates_bias = nn.Parameter(torch.zeros(g, 3 * d))

    @torch.no_grad()
    def dreamer_v3_init(self) -> None:
        """V3's block-linear kernels: fan-in the whole input width (``g (d + 3 hidden)`` for the hidden layer,
        ``D`` for the gates), see :mod:`dreamer_rl.nets.init`; biases zero."""
        fan_hidden = self.blocks * (self.deter // self.blocks + 3 * self.hidden)
        trunc_normal_in_(self.hid_shared, fan_hidden)
        trunc_normal_in_(self.hid_block, fan_hidden)
        trunc_normal_in_(self.gates, self.deter)
        self.gates_bias.zero_()
        if self.hid_bias is not None:
            self.hid_bias.zero_()

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """``[..., A] -> [..., hidden]``; actions are scaled into [-1, 1] first (``a / max(1, |a|)``, as V3)."""
        action = action / action.abs().clamp(min=1).detach()
        return self.in_action(action)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor, action_in: torch.Tensor) -> torch.Tensor:  # noqa: D102
        lead = deter.shape[:-1]  # any leading dims (an unbatched env step has none)
        deter, stoch, action_in = deter.reshape(-1, self.deter), stoch.reshape(-1, stoch.shape[-1]), \
            action_in.reshape(-1, action_in.shape[-1])
        N, g = deter.shape[0], self.blocks
        x = torch.cat([self.in_deter(deter), self.in_stoch(stoch), action_in], -1)  # [N, 3H]
        h_blocks = deter.view(N, g, -1).transpose(0, 1)  # [g, N, d]
        y = x @ self.hid_shared + torch.bmm(h_blocks, self.hid_block).transpose(0, 1).reshape(N, self.deter)
        if self.hid_bias is not None:
            y = y + self.hid_bias
        y = self.hid_act(self.hid_norm(y))  # [N, D]
        parts = torch.bmm(y.view(N, g, -1).transpose(0, 1), self.gates)  # [g, N, 3d]
        r, c, u = parts.chunk(3, -1)  # each [g, N, d]
        b_r, b_c, b_u = self.gates_bias[:, None].chunk(3, -1)  # each [g, 1, d]; biases added inside the gates
        reset = torch.sigmoid(r + b_r)
        cand = torch.tanh(reset * (c + b_c))
        update = torch.sigmoid(u + (b_u - 1))
        # u ⊙ c + (1 - u) ⊙ h in one pass, in the state's dtype (float32 under bf16 autocast too)
        new = torch.lerp(h_blocks, cand.to(h_blocks.dtype), update.to(h_blocks.dtype))
        return new.transpose(0, 1).reshape(*lead, self.deter)


def make_transition(kind: CellKind, stoch: int, action_dim: int, deter: int, hidden: int, *, act: Activation,
                    norm: Norm, blocks: int = 8) -> nn.Module:
    """The transition cell of ``kind`` (see the module docstring)."""
    if kind == "gru":
        return GRUTransition(stoch, action_dim, deter, hidden, act=act, norm=norm)
    if kind == "gru_ln":
        return GRUTransition(stoch, action_dim, deter, hidden, act=act, norm=norm, layer_norm_gru=True)
    if kind == "block_gru":
        return BlockGRU(stoch, action_dim, deter, hidden, blocks=blocks, act=act, norm=norm)
    raise ValueError(f"cell kind {kind!r}; available: 'gru', 'gru_ln', 'block_gru'")
