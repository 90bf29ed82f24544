"""The world model: observation encoder, RSSM, observation decoder, reward head and optional continuation head.

A plain ``nn.Module`` holding the parts; the losses in :mod:`dreamer_rl.losses` read and write TensorDicts and call
these parts with plain tensors. Observations are either pixels (``[..., 3, 64, 64]`` uint8, conv encoder/decoder) or a
state vector (``[..., D]`` float, MLP encoder/decoder).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dreamer_rl.nets.conv import ConvDecoder, ConvEncoder, preprocess
from dreamer_rl.nets.mlp import MLP, Activation
from dreamer_rl.rssm import RSSM, CellKind, LatentKind, RSSMStates


class WorldModel(nn.Module):
    """Encoder + RSSM + decoder + reward head (+ continuation head when ``pcont``).

    :param obs_shape: ``(3, 64, 64)`` for pixels, ``(D,)`` for a state vector.
    :param action_dim: ``A``.
    """

    def __init__(self, obs_shape: tuple[int, ...], action_dim: int, *, stoch: int = 30, deter: int = 200,
                 hidden: int = 200, units: int = 400, cnn_depth: int = 32, act: Activation = "elu",
                 min_std: float = 0.1, latent: LatentKind = "gaussian", cell: CellKind = "gru",
                 encoder_layers: int = 3, decoder_layers: int = 3, reward_layers: int = 2, pcont: bool = False,
                 pcont_layers: int = 3) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.pixels = len(self.obs_shape) == 3
        if self.pixels:
            self.encoder: nn.Module = ConvEncoder(depth=cnn_depth, act=act, image_size=self.obs_shape[-1],
                                                  channels=self.obs_shape[0])
            embed_dim = self.encoder.out_dim
        else:
            embed_dim = units
            self.encoder = MLP(self.obs_shape[0], embed_dim, units=units, layers=encoder_layers - 1, act=act)
        self.rssm = RSSM(action_dim, embed_dim, stoch=stoch, deter=deter, hidden=hidden, act=act, min_std=min_std,
                         latent=latent, cell=cell)
        feat = self.rssm.feat_dim
        if self.pixels:
            self.decoder: nn.Module = ConvDecoder(feat, depth=cnn_depth, act=act, channels=self.obs_shape[0])
        else:
            self.decoder = MLP(feat, self.obs_shape[0], units=units, layers=decoder_layers, act=act)
        self.reward = MLP(feat, 1, units=units, layers=reward_layers, act=act)
        self.pcont = MLP(feat, 1, units=units, layers=pcont_layers, act=act) if pcont else None

    @property
    def obs_kind(self) -> Literal["pixels", "vector"]:
        return "pixels" if self.pixels else "vector"

    def target(self, obs: torch.Tensor) -> torch.Tensor:
        """What the decoder reconstructs: pixels as float in ``[-0.5, 0.5]``, vectors as they are."""
        return preprocess(obs) if obs.dtype == torch.uint8 else obs.to(torch.float32)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., *obs_shape] -> [..., E]``, all leading dims in one call."""
        return self.encoder(obs if self.pixels else obs.to(torch.float32))

    def observe(self, obs: torch.Tensor, action: torch.Tensor, is_init: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None) -> RSSMStates:
        """Encode ``[B, T, *obs_shape]`` in one call, then filter with the RSSM (see :meth:`RSSM.observe`)."""
        return self.rssm.observe(self.embed(obs), action.to(torch.float32), is_init, state)
