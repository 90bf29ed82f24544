"""The world model: observation encoder, RSSM, observation decoder, reward head and optional continuation head.

A plain ``nn.Module`` holding the parts; the losses in :mod:`dreamer_rl.losses` read and write TensorDicts and call
these parts with plain tensors. Observations are either pixels (``[..., C, H, W]`` uint8, conv encoder/decoder) or a
state vector (``[..., D]`` float, MLP encoder/decoder; ``symlog_inputs`` feeds ``symlog(x)`` to the encoder, as V3),
or both (``vector_dim > 0`` with pixels: a dict observation with an image part and vector parts, as DreamerV2/V3's
``cnn_keys`` + ``mlp_keys``): the embedding is ``[conv(pixels), mlp(vector)]`` concatenated, and a second MLP decoder
reconstructs the vector, its loss added to the image's.

Options (DESIGN.md's table): the transition model (``transition``: the RSSM of :mod:`dreamer_rl.rssm` with its
latent and cell, or PlaNet's SSM and the fork's moving-average and clockwork RSSMs of :mod:`dreamer_rl.transitions`,
any of them ``mean_only``), the pixel encoder/decoder
(``conv``: the Dreamer V1/V2 stack of :mod:`dreamer_rl.nets.conv`, or DreamerV3's of :mod:`dreamer_rl.nets.conv_v3`,
max-pooled or ``conv_strided``), the hidden layers' norm, the
observation likelihood ``obs_loss`` and the reward head kind (:mod:`dreamer_rl.nets.heads`), and a continuation
head (``pcont``, a Bernoulli over "the episode goes on", trained towards ``γ (1 - terminated)``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dreamer_rl.nets.cells import CellKind
from dreamer_rl.nets.conv import ConvDecoder, ConvEncoder, preprocess, quantise
from dreamer_rl.nets.conv_v3 import V3ConvDecoder, V3ConvEncoder
from dreamer_rl.nets.heads import HeadKind, ObsLoss, ScalarHead, obs_nll
from dreamer_rl.nets.mlp import MLP, Activation, Norm
from dreamer_rl.nets.outputs import symlog
from dreamer_rl.rssm import LatentKind, RSSMStates
from dreamer_rl.transitions import TransitionKind, make_rssm

ConvKind = Literal["dreamer", "dreamer_v3"]


class WorldModel(nn.Module):
    """Encoder + RSSM + decoder + reward head (+ continuation head when ``pcont``).

    :param obs_shape: ``(3, 64, 64)`` for pixels, ``(D,)`` for a state vector.
    :param action_dim: ``A``.
    """

    def __init__(self, obs_shape: tuple[int, ...], action_dim: int, *, stoch: int = 30, deter: int = 200,
                 hidden: int = 200, units: int = 400, cnn_depth: int = 32, act: Activation = "elu",
                 min_std: float = 0.1, latent: LatentKind = "gaussian", cell: CellKind = "gru", classes: int = 32,
                 unimix: float = 0.0, norm: Norm = "none", prior_layers: int = 1, blocks: int = 8,
                 encoder_layers: int = 3, decoder_layers: int = 3, reward_layers: int = 2, pcont: bool = False,
                 pcont_layers: int = 3, obs_loss: ObsLoss = "gaussian", reward_head: HeadKind = "gaussian",
                 symlog_inputs: bool = False, bins: int = 255, conv: ConvKind = "dreamer",
                 conv_strided: bool = False, vector_dim: int = 0, transition: TransitionKind = "rssm",
                 mean_only: bool = False, ma_ppn: float = 0.25, ma_alpha: float = 0.25,
                 clock_periods: tuple[int, ...] | list[int] = (1, 4), clock_deter: tuple[int, ...] | list[int] = (),
                 clock_stoch: tuple[int, ...] | list[int] = (), cell_as_prior: float = 0.0,
                 image_bits: int = 8, vector_embed: Literal["linear", "hidden"] = "linear") -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        if not 1 <= image_bits <= 8:
            raise ValueError(f"image_bits must be in 1..8, got {image_bits}")
        self.image_bits = image_bits
        self.pixels = len(self.obs_shape) == 3
        if vector_dim and not self.pixels:
            raise ValueError("vector_dim is the vector part beside pixels; a vector-only model takes obs_shape (D,)")
        self.vector_dim = vector_dim
        self.obs_loss, self.symlog_inputs = obs_loss, symlog_inputs
        if self.pixels and conv == "dreamer_v3":
            self.encoder: nn.Module = V3ConvEncoder(depth=cnn_depth, act=act, image_size=self.obs_shape[-1],
                                                    channels=self.obs_shape[0], strided=conv_strided)
            embed_dim = self.encoder.out_dim
        elif self.pixels:
            self.encoder = ConvEncoder(depth=cnn_depth, act=act, image_size=self.obs_shape[-1],
                                       channels=self.obs_shape[0])
            embed_dim = self.encoder.out_dim
        else:
            embed_dim = units
            self.encoder = self._vector_encoder(self.obs_shape[0], units, encoder_layers, act, norm, vector_embed)
        self.vector_encoder: nn.Module | None = None
        if vector_dim:
            self.vector_encoder = self._vector_encoder(vector_dim, units, encoder_layers, act, norm, vector_embed)
            embed_dim += units
        self.rssm = make_rssm(action_dim, embed_dim, transition=transition, stoch=stoch, deter=deter, hidden=hidden,
                              act=act, min_std=min_std, latent=latent, cell=cell, classes=classes, unimix=unimix,
                              norm=norm, prior_layers=prior_layers, blocks=blocks, mean_only=mean_only,
                              ma_ppn=ma_ppn, ma_alpha=ma_alpha, clock_periods=clock_periods,
                              clock_deter=clock_deter, clock_stoch=clock_stoch, cell_as_prior=cell_as_prior)
        feat = self.rssm.feat_dim
        if self.pixels and conv == "dreamer_v3" and transition != "rssm":
            raise ValueError(f"conv 'dreamer_v3' decodes the RSSM's [z, h] features; transition {transition!r} "
                             f"needs conv 'dreamer'")
        if self.pixels and conv == "dreamer_v3":
            self.decoder: nn.Module = V3ConvDecoder(self.rssm.stoch, deter, depth=cnn_depth, units=units, act=act,
                                                    channels=self.obs_shape[0], strided=conv_strided, blocks=blocks,
                                                    image_size=self.obs_shape[-1])
        elif self.pixels:
            self.decoder = ConvDecoder(feat, depth=cnn_depth, act=act, channels=self.obs_shape[0])
        else:
            self.decoder = MLP(feat, self.obs_shape[0], units=units, layers=decoder_layers, act=act, norm=norm)
        self.vector_decoder = (MLP(feat, vector_dim, units=units, layers=decoder_layers, act=act, norm=norm)
                               if vector_dim else None)
        self.reward = ScalarHead(feat, kind=reward_head, units=units, layers=reward_layers, act=act, norm=norm,
                                 bins=bins)
        self.pcont = MLP(feat, 1, units=units, layers=pcont_layers, act=act, norm=norm) if pcont else None

    @staticmethod
    def _vector_encoder(in_dim: int, units: int, layers: int, act: Activation, norm: Norm,
                        embed: Literal["linear", "hidden"]) -> MLP:
        """``[..., in_dim] -> [..., units]``: ``layers - 1`` hidden layers and a linear embedding (V1, V2), or
        ``layers`` hidden layers whose last, normalised and activated, is the embedding (V3's ``Encoder``)."""
        if embed == "hidden":
            return MLP(in_dim, units, units=units, layers=layers, act=act, norm=norm, output=False)
        return MLP(in_dim, units, units=units, layers=layers - 1, act=act, norm=norm)

    @property
    def obs_kind(self) -> Literal["pixels", "vector"]:
        return "pixels" if self.pixels else "vector"

    def target(self, obs: torch.Tensor) -> torch.Tensor:
        """What the decoder reconstructs: pixels as float in ``[-0.5, 0.5]``, vectors as they are.

        Pixels come as uint8 ``[0, 255]`` (our envs, the replay) or as float ``[0, 1]`` (TorchRL's
        ``ToTensorImage``); both reach the networks on the same scale. With ``image_bits < 8`` they are quantised to
        that many bits per channel plus uniform dequantisation noise (PlaNet's 5 bits, :func:`quantise`).
        """
        if not self.pixels:
            return obs.to(torch.float32)
        if self.image_bits < 8:
            raw = obs if obs.dtype == torch.uint8 else (obs.to(torch.float32) * 255).round_().clamp_(0, 255)
            return quantise(raw, self.image_bits)
        return preprocess(obs) if obs.dtype == torch.uint8 else obs.to(torch.float32) - 0.5

    def embed(self, obs: torch.Tensor, preprocessed: bool = False, vector: torch.Tensor | None = None
              ) -> torch.Tensor:
        """``[..., *obs_shape] -> [..., E]`` (with ``vector [..., vector_dim]`` beside pixels when the model has a
        vector part), all leading dims in one call.

        ``preprocessed``: ``obs`` is already :meth:`target`'s output (the loss converts a batch once).
        """
        x = obs if preprocessed else self.target(obs)
        embed = self.encoder(symlog(x) if self.symlog_inputs and not self.pixels else x)
        if self.vector_encoder is None:
            return embed
        if vector is None:
            raise ValueError("this world model also encodes a vector observation: pass vector=[..., D]")
        v = vector.to(torch.float32)
        return torch.cat([embed, self.vector_encoder(symlog(v) if self.symlog_inputs else v)], -1)

    def vector_nll(self, vector: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """Reconstruction loss of the vector part (the model's ``obs_loss`` over ``D`` dims), a scalar."""
        return obs_nll(self.obs_loss, vector.to(torch.float32), self.vector_decoder(feat), 1)

    def obs_nll(self, target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """The reconstruction loss of ``pred`` (the decoder's output) against ``target`` (:meth:`target`), a scalar."""
        return obs_nll(self.obs_loss, target, pred, 3 if self.pixels else 1)

    def observe(self, obs: torch.Tensor, action: torch.Tensor, is_init: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None, preprocessed: bool = False,
                vector: torch.Tensor | None = None) -> RSSMStates:
        """Encode ``[B, T, *obs_shape]`` (and ``vector [B, T, D]``) in one call, then filter with the RSSM (see
        :meth:`RSSM.observe`)."""
        return self.rssm.observe(self.embed(obs, preprocessed, vector), action.to(torch.float32), is_init, state)
