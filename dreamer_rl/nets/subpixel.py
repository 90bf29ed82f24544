"""A stride-2 transposed convolution computed as a convolution and a pixel shuffle: the decoders' image layer.

The image layer of every pixel decoder maps many channels to 3 at 64x64 (V1: ``ConvTranspose2d(32, 3, 6, stride
2)`` from 30x30; V3: ``ConvTranspose2d(32, 3, 5, stride 2, padding 2, output_padding 1)`` from 32x32). oneDNN's CPU
kernel for a transposed convolution with 3 output channels leaves most of each vector unused: at V1's paper batch
(2500 frames) its forward runs at ~20 GFLOP/s on one thread of this project's CPU, a quarter of a dense convolution.

Sub-pixel form (1-D, stride 2, kernel ``k``, padding ``p``): output ``o = 2i + t - p`` receives input ``i`` through
tap ``t``. Writing ``o = 2m + r`` (phase ``r`` in {0, 1}), phase ``r`` uses only the taps ``t ≡ r + p (mod 2)``, and

    y[2m + r] = Σ_u x[m + u] · w[r + p - 2u],      over the ``u`` with ``0 <= r + p - 2u < k``,

an ordinary (stride-1) correlation of ``x`` with a small kernel per phase. Both phases of both axes share one window
``u ∈ [u_lo, u_hi]`` (taps a phase does not use are zero), so the four phases are the ``4·C_out`` output channels of
one ``Conv2d(C_in, 4 C_out, u_hi - u_lo + 1)``, and ``pixel_shuffle(·, 2)`` interleaves them into the
``[C_out, 2M, 2M]`` image (channel ``4c + 2 r_y + r_x`` -> pixel ``(2m_y + r_y, 2m_x + r_x)``). The kernel is
re-gathered from the transposed layer's own weight on every call (a few thousand numbers), so parameters, optimiser
state and checkpoints are those of :class:`torch.nn.ConvTranspose2d`.

Only the forward pass takes this route: the backward is the transposed convolution's own
(``aten.convolution_backward``), which oneDNN runs at full speed. Measured on this project's CPU, one thread,
forward + backward of the image layer: V1 paper batch 1197 ms -> ~640 ms, V3 size12m batch 391 ms -> ~240 ms.
Other devices (cuDNN), other strides or an odd output size use the plain transposed convolution.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


@functools.lru_cache(maxsize=64)  # a few (kernel, padding, size) per decoder: built once, not every update
def _phase_taps(kernel: int, padding: int, size_in: int, size_out: int) -> tuple[torch.Tensor, int, int]:
    """Per axis: ``taps [2, Q]`` (the weight tap of phase ``r`` at window offset ``q``, ``kernel`` = a zero tap),
    and the ``(before, after)`` zero padding of the input that makes the convolution's output ``size_out / 2``."""
    offsets = {r: [u for u in range(-kernel, kernel + 1) if 0 <= r + padding - 2 * u < kernel] for r in (0, 1)}
    lo, hi = min(offsets[0] + offsets[1]), max(offsets[0] + offsets[1])
    taps = torch.full((2, hi - lo + 1), kernel, dtype=torch.long)
    for r in (0, 1):
        for u in offsets[r]:
            taps[r, u - lo] = r + padding - 2 * u
    return taps, -lo, size_out // 2 + hi - size_in


class _SubpixelForward(torch.autograd.Function):
    """``conv_transpose2d`` forward by conv + pixel shuffle, backward by ``aten.convolution_backward``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int],
                output_padding: tuple[int, int], taps_y: torch.Tensor, taps_x: torch.Tensor,
                pad: tuple[int, int, int, int]) -> torch.Tensor:  # noqa: D102
        c_in, c_out = weight.shape[:2]
        w = F.pad(weight, (0, 1, 0, 1))  # tap index ``kernel`` reads 0
        w = w[:, :, taps_y[:, :, None, None], taps_x[None, None, :, :]]  # [C_in, C_out, 2, Q, 2, Q]
        w = w.permute(1, 2, 4, 0, 3, 5).reshape(4 * c_out, c_in, taps_y.shape[1], taps_x.shape[1])
        b = None if bias is None else bias.repeat_interleave(4)
        top, bottom, left, right = pad
        if top == bottom >= 0 and left == right >= 0:
            y = F.conv2d(x, w, b, padding=(top, left))
        else:  # negative padding crops
            y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b)
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.output_padding, ctx.has_bias = padding, output_padding, bias is not None
        return F.pixel_shuffle(y, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        x, weight = ctx.saved_tensors
        mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2])
        dx, dw, db = torch.ops.aten.convolution_backward(
            grad.contiguous(memory_format=torch.channels_last) if x.is_contiguous(memory_format=torch.channels_last)
            else grad.contiguous(), x, weight, [weight.shape[1]] if ctx.has_bias else None, [2, 2],
            list(ctx.padding), [1, 1], True, list(ctx.output_padding), 1, list(mask))  # stride 2, dilation 1, 1 group
        return dx, dw, db, None, None, None, None, None


class SubpixelConvTranspose2d(nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` whose CPU forward is a convolution + pixel shuffle (module docstring).

    Same constructor, parameters and outputs; the sub-pixel route is taken for stride 2, dilation 1, one group and an
    even output size, on a CPU, without bf16 autocast; anything else runs the plain transposed convolution.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:  # noqa: D102
        if (output_size is not None or x.device.type != "cpu" or x.dim() != 4 or self.stride != (2, 2)
                or self.dilation != (1, 1) or self.groups != 1 or torch.is_autocast_enabled("cpu")):
            return super().forward(x, output_size)
        (h, w), (kh, kw), (ph, pw), (oh, ow) = x.shape[-2:], self.kernel_size, self.padding, self.output_padding
        out_h, out_w = (h - 1) * 2 - 2 * ph + kh + oh, (w - 1) * 2 - 2 * pw + kw + ow
        if out_h % 2 or out_w % 2:
            return super().forward(x, output_size)
        taps_y, top, bottom = _phase_taps(kh, ph, h, out_h)
        taps_x, left, right = _phase_taps(kw, pw, w, out_w)
        return _SubpixelForward.apply(x, self.weight, self.bias, self.padding, self.output_padding, taps_y, taps_x,
                                      (top, bottom, left, right))
