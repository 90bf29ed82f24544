"""Network parts: shapes, and the exactness of the decoder's folded first layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dreamer_rl.nets.conv import ConvDecoder, ConvEncoder
from dreamer_rl.nets.distributions import TanhNormalActor, gaussian_log_prob, mean_gaussian_nll


def test_encoder_decoder_shapes_over_leading_dims() -> None:
    enc, dec = ConvEncoder(depth=4), ConvDecoder(20, depth=4)
    pixels = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    assert enc(pixels).shape == (2, 3, 128)
    assert dec(torch.randn(2, 3, 20)).shape == (2, 3, 3, 64, 64)


@pytest.mark.parametrize("rows,feat_dim,depth", [(5, 30, 8), (400, 10, 4)], ids=["two_layers", "folded"])
def test_decoder_first_layer_equals_linear_then_transposed_conv(rows: int, feat_dim: int, depth: int) -> None:
    """Both paths of the first layer (folded when that is cheaper, else two matmuls) equal the reference."""
    torch.manual_seed(0)
    dec = ConvDecoder(feat_dim, depth=depth)
    feat = torch.randn(rows, feat_dim, requires_grad=True)
    x = F.elu(dec.first(dec.linear(feat)[:, :, None, None]))  # the unfolded computation
    reference = dec.net(x)
    torch.testing.assert_close(dec(feat), reference, atol=1e-5, rtol=1e-5)
    g_ref = torch.autograd.grad(reference.square().sum(), [dec.linear.weight, dec.first.weight, feat])
    g_out = torch.autograd.grad(dec(feat).square().sum(), [dec.linear.weight, dec.first.weight, feat])
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_mean_gaussian_nll_equals_log_prob_form() -> None:
    x, mu = torch.randn(4, 5, 3, 8, 8), torch.randn(4, 5, 3, 8, 8)
    torch.testing.assert_close(mean_gaussian_nll(x, mu, 3), -gaussian_log_prob(x, mu, 3).mean())


def test_actor_bounds_initial_std_and_reparameterisation() -> None:
    torch.manual_seed(0)
    actor = TanhNormalActor(10, 3, units=16, layers=2, init_std=5.0)
    feat = torch.zeros(1000, 10, requires_grad=True)
    with torch.no_grad():
        actor.net[-1].weight.zero_(), actor.net[-1].bias.zero_()
    mean, std = actor.params(feat)
    torch.testing.assert_close(std, torch.full_like(std, 5.0 + 1e-4))
    a = actor(feat)
    assert a.abs().max() <= 1 and a.std() > 0.7  # std 5 before tanh: near-uniform in [-1, 1]
    a.sum().backward()
    assert feat.grad is not None  # reparameterised: gradients reach the features
    assert actor(feat[:1], sample=False).abs().max() == 0
