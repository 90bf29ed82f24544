"""Convolutional image encoder and decoder (the Dreamer / World Models architecture for 64x64 frames).

Encoder: four 4x4 stride-2 convolutions of depth ``d, 2d, 4d, 8d`` take ``[..., 3, 64, 64]`` uint8 pixels to a
``[..., 32 d]`` embedding (``d = 32`` gives 1024). Decoder: a linear layer to ``32 d`` channels at 1x1, then
transposed convolutions with kernels 5, 5, 6, 6 (stride 2) back to ``[..., 3, 64, 64]``, the mean of a unit-variance
Gaussian over pixels scaled to ``[-0.5, 0.5]``. Shapes per frame: 3x64 -> 32x31 -> 64x14 -> 128x6 -> 256x2 (encoder);
1024x1 -> 128x5 -> 64x13 -> 32x30 -> 3x64 (decoder). Convolutions run channels-last.

Frames stay uint8 until they reach the encoder: :func:`preprocess` turns them into floats on the device, once.
"""

from __future__ import annotations

import torch
from torch import nn

from dreamer_rl.nets.mlp import Activation, activation
from dreamer_rl.nets.subpixel import SubpixelConvTranspose2d


def preprocess(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float ``[-0.5, 0.5]`` (the target space of the decoder)."""
    return pixels.to(torch.float32).div_(255.0).sub_(0.5)


def quantise(pixels: torch.Tensor, bits: int) -> torch.Tensor:
    """PlaNet's image preprocessing: uint8 ``p`` -> ``floor(p / 2^(8-b)) / 2^b + u - 0.5``, ``u ~ U[0, 1/2^b)``.

    The ``b``-bit quantisation keeps the ``2^b`` levels of each channel, and the uniform dequantisation noise spreads
    each level over its bin, so a Gaussian decoder cannot sharpen its likelihood on the discrete levels (PlaNet uses
    ``b = 5``). Values lie in ``[-0.5, 0.5)``; a pixel of 200 at 5 bits falls in ``[25/32, 26/32) - 0.5``. A fresh
    noise sample is drawn at every call (training targets and the encoder's input alike, as PlaNet's ``preprocess``).
    """
    levels = torch.div(pixels.to(torch.int32), 2 ** (8 - bits), rounding_mode="floor").to(torch.float32)
    return levels.add_(torch.rand_like(levels)).div_(2 ** bits).sub_(0.5)


class ConvEncoder(nn.Module):
    """``[..., 3, 64, 64]`` uint8 or float pixels -> ``[..., 32 * depth]`` embedding. All leading dims in one call."""

    def __init__(self, *, depth: int = 32, act: Activation = "elu", image_size: int = 64, channels: int = 3) -> None:
        super().__init__()
        if image_size != 64:
            raise ValueError(f"ConvEncoder supports 64x64 frames, got {image_size}")
        layers: list[nn.Module] = []
        in_ch = channels
        for mult in (1, 2, 4, 8):
            layers += [nn.Conv2d(in_ch, depth * mult, 4, stride=2), activation(act)]
            in_ch = depth * mult
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.out_dim = 32 * depth  # 8d channels at 2x2

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = preprocess(pixels) if pixels.dtype == torch.uint8 else pixels
        lead = x.shape[:-3]
        # channels-last runs the oneDNN convolutions without layout reorders (measured faster on CPU and GPU)
        x = x.reshape(-1, *x.shape[-3:]).contiguous(memory_format=torch.channels_last)
        x = self.net(x)  # (N, 8d, 2, 2)
        return x.reshape(*lead, self.out_dim).float()  # float32 out under bf16 autocast too


class ConvDecoder(nn.Module):
    """``[..., feat_dim]`` -> ``[..., 3, 64, 64]`` pixel means in ``[-0.5, 0.5]`` space."""

    def __init__(self, feat_dim: int, *, depth: int = 32, act: Activation = "elu", channels: int = 3) -> None:
        super().__init__()
        self.depth = depth
        self.linear = nn.Linear(feat_dim, 32 * depth)
        self.first = nn.ConvTranspose2d(32 * depth, 4 * depth, 5, stride=2)  # 1x1 -> 5x5
        self.first_act = activation(act)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * depth, 2 * depth, 5, stride=2), activation(act),  # 13x13
            nn.ConvTranspose2d(2 * depth, depth, 6, stride=2), activation(act),  # 30x30
            SubpixelConvTranspose2d(depth, channels, 6, stride=2),  # 64x64 (conv + pixel shuffle on a CPU)
        ).to(memory_format=torch.channels_last)

    def first_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The linear layer and the first transposed convolution folded into one affine map.

        Dreamer's decoder applies ``Linear(feat, 32d)`` and then, with no activation in between, a 5x5 transposed
        convolution to the resulting 1x1 map, which is itself a linear map ``[32d] -> [4d * 5 * 5]``. Their product
        ``W = W_lin^T W_conv`` (``[feat, 4d*25]``) gives the same output (up to float rounding) with 4.7x fewer
        multiply-adds per frame at the paper size; the parameters (and checkpoints) stay those of the two layers.
        """
        c_in, c_out, kh, kw = self.first.weight.shape
        w_conv = self.first.weight.reshape(c_in, c_out * kh * kw)  # [32d, 4d*25]
        weight = self.linear.weight.t() @ w_conv  # [feat, 4d*25]
        bias = self.linear.bias @ w_conv + self.first.bias.repeat_interleave(kh * kw)  # [4d*25]
        return weight, bias

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # noqa: D102
        lead = feat.shape[:-1]
        c_in, c_out, kh, kw = self.first.weight.shape
        flat = feat.reshape(-1, feat.shape[-1])  # (N, F)
        n, f, c = flat.shape[0], flat.shape[1], c_out * kh * kw
        # fold only when it saves multiply-adds: N F C + F c_in C (fold) against N F c_in + N c_in C (two layers);
        # at the V1 paper size folding is 4.7x cheaper, with V3's wide features (F = 2560) 3x dearer
        if n * f * c + f * c_in * c < n * f * c_in + n * c_in * c:
            weight, bias = self.first_layer()
            x = torch.addmm(bias, flat, weight)  # (N, 4d*25)
        else:
            w_conv = self.first.weight.reshape(c_in, c)
            x = torch.addmm(self.first.bias.repeat_interleave(kh * kw), self.linear(flat), w_conv)
        x = self.first_act(x.view(-1, c_out, kh, kw).contiguous(memory_format=torch.channels_last))  # (N, 4d, 5, 5)
        x = self.net(x)  # (N, C, 64, 64), channels-last
        return x.reshape(*lead, *x.shape[1:]).float()  # float32 out under bf16 autocast too
