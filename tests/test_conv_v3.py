"""DreamerV3's image encoder and decoder: shapes of both variants, the channel RMSNorm, the decoder's block-linear
input (each block of the deterministic state owns its own channels), and the output range."""

from __future__ import annotations

import pytest
import torch

from dreamer_rl.nets.conv import preprocess
from dreamer_rl.nets.conv_v3 import ChannelRMSNorm, V3ConvDecoder, V3ConvEncoder


@pytest.mark.parametrize("strided", [False, True], ids=["maxpool", "strided"])
def test_encoder_shapes_and_input_scales(strided: bool) -> None:
    torch.manual_seed(0)
    enc = V3ConvEncoder(depth=4, strided=strided)
    pixels = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    out = enc(pixels)
    assert out.shape == (2, 3, 4 * 4 * 4 * 4) and enc.out_dim == 256  # 4x4 map of depth * 4 channels
    torch.testing.assert_close(enc(preprocess(pixels)), out)
    convs = [m for m in enc.net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 12, 16, 16]  # depth * (2, 3, 4, 4)
    assert all(c.kernel_size == (5, 5) and c.stride == ((2, 2) if strided else (1, 1)) for c in convs)


@pytest.mark.parametrize("act", ["silu", "elu"])
def test_fused_norm_silu_matches_autograd_of_the_composite(act: str) -> None:
    from dreamer_rl.nets.conv_v3 import ChannelNormAct

    torch.manual_seed(0)
    fused = ChannelNormAct(6, act)
    with torch.no_grad():
        fused.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 6, 4, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    ref = torch.nn.functional.silu(fused.norm(x)) if act == "silu" else torch.nn.functional.elu(fused.norm(x))
    out = fused(x)
    torch.testing.assert_close(out, ref)
    dz = torch.randn_like(out)
    g_out = torch.autograd.grad(out, [x, fused.norm.weight], dz)
    g_ref = torch.autograd.grad(ref, [x, fused.norm.weight], dz)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_channel_rms_norm_formula() -> None:
    torch.manual_seed(0)
    norm = ChannelRMSNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, 3, 5).contiguous(memory_format=torch.channels_last)
    expected = x / torch.sqrt(x.square().mean(1, keepdim=True) + 1e-4) * norm.weight[:, None, None]
    torch.testing.assert_close(norm(x), expected)


@pytest.mark.parametrize("strided", [False, True], ids=["upsample", "transposed"])
def test_decoder_shapes_range_and_block_linear_input(strided: bool) -> None:
    torch.manual_seed(0)
    Z, D, g = 12, 32, 4
    dec = V3ConvDecoder(Z, D, depth=4, units=8, strided=strided, blocks=g)
    feat = torch.randn(5, Z + D)
    out = dec(feat)
    assert out.shape == (5, 3, 64, 64) and out.min() > -0.5 and out.max() < 0.5  # sigmoid - 0.5
    seen = []
    dec.space_norm_act.register_forward_hook(lambda m, inp, o: seen.append(inp[0].detach()))
    with torch.no_grad():
        dec.space_stoch[-1].weight.zero_()  # leave only the deterministic path
    dec(feat)
    bumped = feat.clone()
    bumped[:, Z:Z + D // g] += 1.0  # block 0 of h
    dec(bumped)
    diff = (seen[1] - seen[0]).abs().amax((0, 2, 3))  # per channel of the 4x4 map (16 channels, 4 per block)
    assert diff[:4].min() > 0 and diff[4:].max() == 0, diff


def test_decoder_gradients_reach_both_inputs() -> None:
    torch.manual_seed(0)
    dec = V3ConvDecoder(12, 32, depth=4, units=8, blocks=4)
    feat = torch.randn(3, 44, requires_grad=True)
    dec(feat).square().sum().backward()
    assert feat.grad[:, :12].abs().sum() > 0 and feat.grad[:, 12:].abs().sum() > 0
    assert all(p.grad is not None for p in dec.parameters())


def test_v3_conv_takes_96x96_frames_as_in_v3_atari() -> None:
    """V3's `atari` config observes 96x96 grey frames: 96 -> 48 -> 24 -> 12 -> 6, and back."""
    from dreamer_rl.action_space import ActionSpace
    from dreamer_rl.agent import build_dreamer
    from recipes import make_recipe

    recipe = make_recipe("dreamer_v3", "atari", "debug")
    assert recipe.env.image_size == 96 and recipe.env.grayscale
    wm = build_dreamer(recipe, (1, 96, 96), ActionSpace("discrete", (18,))).world_model
    pixels = torch.randint(0, 256, (2, 3, 1, 96, 96), dtype=torch.uint8)
    assert wm.encoder.res == 6 and wm.embed(pixels).shape == (2, 3, 36 * 4 * recipe.model.cnn_depth)
    assert wm.decoder(torch.randn(2, 3, wm.rssm.feat_dim)).shape == (2, 3, 1, 96, 96)


def test_frame_size_that_the_conv_cannot_take_is_one_line() -> None:
    from dreamer_rl.errors import UserError
    from recipes import make_recipe

    with pytest.raises(UserError, match="takes 64x64 frames, env.image_size is 96"):
        make_recipe("dreamer_v1", overrides={"env.image_size": 96})
    with pytest.raises(UserError, match="divisible by 16"):
        make_recipe("dreamer_v3", overrides={"env.image_size": 72})
