"""The decoders' image layer as conv + pixel shuffle: the outputs and gradients of ``nn.ConvTranspose2d``, exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dreamer_rl.nets import subpixel
from dreamer_rl.nets.conv import ConvDecoder
from dreamer_rl.nets.conv_v3 import V3ConvDecoder
from dreamer_rl.nets.subpixel import SubpixelConvTranspose2d

# (kernel, padding, output_padding, input size): V1's image layer, V3's, and others (cropping windows included)
CASES = [(6, 0, 0, 7), (5, 2, 1, 8), (4, 1, 0, 6), (3, 1, 1, 5), (2, 0, 0, 5), (7, 3, 1, 6), (5, 0, 1, 4), (6, 2, 0, 9)]


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    apply = subpixel._SubpixelForward.apply

    def counted(*args):
        calls[0] += 1
        return apply(*args)

    monkeypatch.setattr(subpixel._SubpixelForward, "apply", counted)
    return calls


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("kernel,padding,output_padding,size", CASES)
def test_subpixel_matches_the_transposed_convolution(kernel: int, padding: int, output_padding: int, size: int,
                                                      channels_last: bool, bias: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_calls(monkeypatch)
    torch.manual_seed(0)
    plain = nn.ConvTranspose2d(4, 3, kernel, stride=2, padding=padding, output_padding=output_padding,
                               bias=bias).double()
    sub = SubpixelConvTranspose2d(4, 3, kernel, stride=2, padding=padding, output_padding=output_padding,
                                  bias=bias).double()
    sub.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, size, size + 1, dtype=torch.float64)  # a non-square map
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x_plain, x_sub = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_plain, y_sub = plain(x_plain), sub(x_sub)
    assert calls[0] == 1  # the sub-pixel route was taken, not the fallback
    torch.testing.assert_close(y_sub, y_plain)
    grad = torch.randn_like(y_plain)
    (y_plain * grad).sum().backward()
    (y_sub * grad).sum().backward()
    torch.testing.assert_close(x_sub.grad, x_plain.grad)
    torch.testing.assert_close(sub.weight.grad, plain.weight.grad)
    if bias:
        torch.testing.assert_close(sub.bias.grad, plain.bias.grad)


def test_odd_output_size_and_autocast_fall_back_to_the_plain_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_calls(monkeypatch)
    layer = SubpixelConvTranspose2d(4, 3, 5, stride=2)  # 5x5 -> 13x13: odd, no common phase length
    assert layer(torch.randn(1, 4, 5, 5)).shape == (1, 3, 13, 13)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(1, 4, 6, 6)).dtype == torch.bfloat16
    assert calls[0] == 0


def test_decoders_image_layer_takes_the_subpixel_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """V1's (and V2's, PlaNet's) decoder and V3's strided decoder end with the sub-pixel layer, with the pixel
    means they had (a 64x64 image from the same weights as a plain transposed layer)."""
    calls = _count_calls(monkeypatch)
    torch.manual_seed(0)
    for decoder in (ConvDecoder(40, depth=4), V3ConvDecoder(16, 64, depth=4, units=16, strided=True)):
        feat = torch.randn(3, 80 if isinstance(decoder, V3ConvDecoder) else 40)
        image_layer = decoder.net[-1]
        assert isinstance(image_layer, SubpixelConvTranspose2d)
        got = decoder(feat)
        monkeypatch.setattr(image_layer, "forward", lambda x: nn.ConvTranspose2d.forward(image_layer, x))
        torch.testing.assert_close(got, decoder(feat), rtol=1e-5, atol=1e-6)
        assert got.shape == (3, 3, 64, 64)
    assert calls[0] == 2
