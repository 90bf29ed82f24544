"""The fused ``silu(RMSNorm(x))`` (``dreamer_rl.nets.norm_act``): its hand-written backward against autograd of the
composite and numerical gradients, and its place in every DreamerV3 module (same modules, same state-dict keys)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamer_rl.nets.mlp import MLP, norm_act
from dreamer_rl.nets.norm_act import RMSNormSiLU, _RMSNormSiLU, rms_norm_silu


def composite(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return F.silu(F.rms_norm(x, (x.shape[-1],), weight, eps))


def test_backward_passes_gradcheck_in_double() -> None:
    torch.manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(5, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: _RMSNormSiLU.apply(a, b, 1e-3), (x, w))


@pytest.mark.parametrize("shape", [(4, 9), (2, 3, 16), (2, 3, 4, 32)])
def test_matches_autograd_of_the_composite(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(shape[-1], dtype=torch.float64) + 0.5).requires_grad_()
    out, ref = rms_norm_silu(x, w, 1e-3), composite(x, w, 1e-3)
    torch.testing.assert_close(out, ref)
    dz = torch.randn_like(out)
    for got, want in zip(torch.autograd.grad(out, (x, w), dz), torch.autograd.grad(ref, (x, w), dz), strict=True):
        torch.testing.assert_close(got, want)


def test_non_contiguous_input_and_small_rms() -> None:
    torch.manual_seed(0)
    x = (1e-3 * torch.randn(6, 8, dtype=torch.float64)).t().requires_grad_()  # [8, 6], not contiguous
    w = torch.rand(6, dtype=torch.float64).requires_grad_()
    out, ref = rms_norm_silu(x, w, 1e-3), composite(x, w, 1e-3)
    torch.testing.assert_close(out, ref)
    dz = torch.randn_like(out)
    for got, want in zip(torch.autograd.grad(out, (x, w), dz), torch.autograd.grad(ref, (x, w), dz), strict=True):
        torch.testing.assert_close(got, want)


def test_bfloat16_input_is_normalised_in_float32() -> None:
    """bf16 autocast hands the norm bfloat16 maps: the statistics are taken in the weight's float32."""
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    w = torch.rand(8)
    out = rms_norm_silu(x, w, 1e-3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, composite(x.float(), w, 1e-3))


def test_norm_act_fuses_only_rms_with_silu() -> None:
    norm, act = norm_act("rms", 8, "silu")
    assert isinstance(norm, RMSNormSiLU) and isinstance(act, nn.Identity)
    norm, act = norm_act("rms", 8, "elu")
    assert isinstance(norm, nn.RMSNorm) and isinstance(act, nn.ELU)
    norm, act = norm_act("layer", 8, "silu")
    assert isinstance(norm, nn.LayerNorm) and isinstance(act, nn.SiLU)


def test_fused_mlp_keeps_the_unfused_state_dict_and_output() -> None:
    """A checkpoint written with separate ``RMSNorm`` + ``SiLU`` modules loads into the fused MLP unchanged."""
    torch.manual_seed(0)
    fused = MLP(10, 3, units=16, layers=2, act="silu", norm="rms")
    unfused = nn.Sequential(nn.Linear(10, 16), nn.RMSNorm(16, eps=1e-4), nn.SiLU(),
                            nn.Linear(16, 16), nn.RMSNorm(16, eps=1e-4), nn.SiLU(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in unfused.parameters():
            p.uniform_(-0.5, 1.0)
    assert list(fused.state_dict()) == list(unfused.state_dict())
    fused.load_state_dict(unfused.state_dict())
    x = torch.randn(5, 10)
    torch.testing.assert_close(fused(x), unfused(x))
