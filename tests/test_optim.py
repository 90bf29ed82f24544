"""LaProp + AGC + warmup (dreamer_rl/optim.py): golden values worked out by hand in the comments.

Most tests use float64 parameters so the hand arithmetic holds to ~1e-12. A handy fact: with ``eps = 0`` the first
update of any tensor is ``u = g / sqrt(v_hat) = sign(g)`` and ``m_hat = u``, so it moves every entry by exactly
``lr_t`` against the sign of its gradient, whatever AGC did to the gradient's scale.
"""

from __future__ import annotations

import copy
import doctest
import io

import pytest
import torch

import dreamer_rl.optim
from dreamer_rl.optim import LaProp

F64 = torch.float64


def _param(*values: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=F64))


def _grad(p: torch.Tensor, *values: float) -> None:
    p.grad = torch.tensor(values, dtype=p.dtype)


def test_two_steps_agc_clips_then_not() -> None:
    # p0 = [3, 4] (||p0|| = 5); b1 = b2 = 0.5, eps = 0, lr = 0.1, no warmup, agc = 0.3, pmin = 1e-3.
    p = _param(3.0, 4.0)
    opt = LaProp([p], lr=0.1, betas=(0.5, 0.5), eps=0.0, agc=0.3, warmup=0)

    # Step 1: g = [30, 40], ||g|| = 50 > 0.3 * 5 = 1.5 -> clipped by 1.5 / 50 = 0.03 to [0.9, 1.2].
    #   v1 = 0.5 * [0.81, 1.44] = [0.405, 0.72];  v_hat = v1 / (1 - 0.5) = [0.81, 1.44];  u = [1, 1]
    #   m1 = 0.5 * u = [0.5, 0.5];  m_hat = m1 / 0.5 = [1, 1];  p1 = p0 - 0.1 * [1, 1] = [2.9, 3.9]
    _grad(p, 30.0, 40.0)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.9, 3.9], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(opt.state[p]["exp_avg_sq"], torch.tensor([0.405, 0.72], dtype=F64))
    assert p.grad is not None and p.grad.tolist() == [30.0, 40.0]  # the caller's .grad is not clipped in place

    # Step 2: g = [0.3, -0.4], ||g|| = 0.5 < 0.3 * ||p1|| = 0.3 * sqrt(23.62) = 1.458 -> not clipped.
    #   v2 = 0.5 * [0.405, 0.72] + 0.5 * [0.09, 0.16] = [0.2475, 0.44];  v_hat = v2 / 0.75 = [0.33, 0.58667]
    #   u = [0.3 / sqrt(0.33), -0.4 / sqrt(0.58667)] = [+s, -s] with s = sqrt(0.09 / 0.33) = sqrt(3/11) = 0.522233
    #   m2 = 0.5 * [0.5, 0.5] + 0.5 * u = [0.25 + s/2, 0.25 - s/2];  m_hat = m2 / 0.75 = [1/3 + 2s/3, 1/3 - 2s/3]
    #   p2 = [2.9 - (1/3 + 2s/3) / 10, 3.9 - (1/3 - 2s/3) / 10] = [2.8318511354755, 3.9014821978578]
    _grad(p, 0.3, -0.4)
    opt.step()
    expected = torch.tensor([2.8318511354755271, 3.9014821978578063], dtype=F64)
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-12)
    assert opt.state[p]["step"].item() == 2


def test_agc_zero_disables_clipping() -> None:
    # Same two steps as above with agc = 0. Step 1 is not clipped but, being the first, still moves by lr:
    #   v1 = 0.5 * [900, 1600] = [450, 800];  v_hat = [900, 1600];  u = [1, 1];  p1 = [2.9, 3.9]
    # Step 2: g = [0.3, -0.4];  v2 = [225 + 0.045, 400 + 0.08] = [225.045, 400.08];  v_hat = [300.06, 533.44]
    #   u = [+s, -s] with s = 0.3 / sqrt(300.06) = 0.0173188 (the large first gradient still dominates v)
    #   p2 = [2.9 - (1/3 + 2s/3) / 10, 3.9 - (1/3 - 2s/3) / 10] = [2.8655120815810, 3.8678212517523]
    p = _param(3.0, 4.0)
    opt = LaProp([p], lr=0.1, betas=(0.5, 0.5), eps=0.0, agc=0.0, warmup=0)
    _grad(p, 30.0, 40.0)
    opt.step()
    torch.testing.assert_close(opt.state[p]["exp_avg_sq"], torch.tensor([450.0, 800.0], dtype=F64))
    _grad(p, 0.3, -0.4)
    opt.step()
    expected = torch.tensor([2.8655120815810236, 3.8678212517523094], dtype=F64)
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-12)


def test_first_step_is_bias_corrected_with_dreamerv3_defaults() -> None:
    # betas (0.9, 0.999), eps 1e-20, agc 0.3: v1 = 0.001 g^2 and m1 = 0.1 u. Bias-corrected, m_hat = sign(g), so
    # p1 = [3, 4] - 0.1 * [1, -1] = [2.9, 4.1]. Without the corrections the step would be 0.1 * 0.1 / sqrt(0.001)
    # = 0.316 per entry.
    p = _param(3.0, 4.0)
    opt = LaProp([p], lr=0.1, warmup=0)
    _grad(p, 30.0, -40.0)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.9, 4.1], dtype=F64), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("warmup", "moves"),
    [
        # lr_t = lr * min(1, (t - 1) / warmup): the first update has lr_t = 0 (optax evaluates the schedule at the
        # count before incrementing it); with warmup = 4 and lr = 0.1: 0, 0.025, 0.05, 0.075, 0.1, 0.1.
        (4, [0.0, 0.025, 0.05, 0.075, 0.1, 0.1]),
        (1, [0.0, 0.1, 0.1, 0.1, 0.1, 0.1]),
        (0, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),  # warmup = 0: full lr from the first update
    ],
)
def test_warmup_ramps_linearly_from_zero(warmup: int, moves: list[float]) -> None:
    # A constant gradient keeps v_hat = g^2 and m_hat = sign(g) exactly, so update t moves each entry by lr_t.
    p = _param(1.0, -1.0)
    opt = LaProp([p], lr=0.1, eps=0.0, agc=0.0, warmup=warmup)
    got = []
    for _ in moves:
        before = p.detach().clone()
        _grad(p, 2.0, -0.5)
        opt.step()
        step = before - p.detach()  # sign(g) * lr_t
        assert step[0].item() == pytest.approx(-step[1].item(), abs=1e-12)
        got.append(step[0].item())
    assert got == pytest.approx(moves, abs=1e-12)


def test_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    grads = [torch.randn(2, 3, dtype=F64) * 10 ** (k % 3) for k in range(7)]
    kwargs = dict(lr=0.1, betas=(0.8, 0.95), agc=0.3, warmup=5)  # warmup and bias corrections both read the count

    p = torch.nn.Parameter(torch.randn(2, 3, dtype=F64))
    opt = LaProp([p], **kwargs)
    for g in grads[:3]:
        p.grad = g.clone()
        opt.step()
    buf = io.BytesIO()
    torch.save({"param": p.detach().clone(), "opt": opt.state_dict()}, buf)
    saved = torch.load(io.BytesIO(buf.getvalue()))
    assert saved["opt"]["state"][0]["step"].item() == 3

    resumed_p = torch.nn.Parameter(saved["param"].clone())
    resumed = LaProp([resumed_p], **kwargs)
    resumed.load_state_dict(saved["opt"])
    fresh_p = torch.nn.Parameter(saved["param"].clone())  # same weights, empty optimiser state
    fresh = LaProp([fresh_p], **kwargs)
    for g in grads[3:]:
        for param, o in ((p, opt), (resumed_p, resumed), (fresh_p, fresh)):
            param.grad = g.clone()
            o.step()
    assert torch.equal(resumed_p, p)
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert torch.equal(resumed.state[resumed_p][key], opt.state[p][key]), key
    assert not torch.allclose(fresh_p, p)  # the loaded state (count and moments) is what made them match


def test_params_without_grad_are_skipped() -> None:
    a, b = _param(3.0, 4.0), _param(1.0, 2.0)
    opt = LaProp([a, b], lr=0.1, agc=0.0, warmup=2)  # a constant gradient moves a by exactly lr_t per update
    _grad(a, 3.0, 4.0)
    opt.step()
    opt.step()  # a: updates 1 and 2 (lr_t = 0, then 0.05)
    assert b.tolist() == [1.0, 2.0] and b not in opt.state
    assert opt.last_grad_norm is not None and opt.last_grad_norm.item() == pytest.approx(5.0)

    # b's first gradient starts its own count: update 1 of b has lr_t = 0, update 3 of a has lr_t = 0.1.
    a_before = a.detach().clone()
    _grad(b, 1.0, 1.0)
    opt.step()
    assert b.tolist() == [1.0, 2.0] and opt.state[b]["step"].item() == 1
    torch.testing.assert_close(a_before - a.detach(), torch.tensor([0.1, 0.1], dtype=F64), rtol=0, atol=1e-12)


def test_last_grad_norm_is_global_and_before_clipping() -> None:
    # Two groups; gradients [3, 4] and [12] -> global norm sqrt(9 + 16 + 144) = 13. AGC clips both (||p|| is 1 and
    # 5, so the limits are 0.3 and 1.5), and the logged norm must still be the raw 13.
    a, b = _param(0.6, 0.8), _param(5.0)
    opt = LaProp([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1, warmup=0)
    assert opt.last_grad_norm is None
    _grad(a, 3.0, 4.0)
    _grad(b, 12.0)
    opt.step()
    assert opt.last_grad_norm is not None and opt.last_grad_norm.item() == pytest.approx(13.0)
    # Each group keeps its own lr: first updates move by exactly lr.
    torch.testing.assert_close(a.detach(), torch.tensor([0.5, 0.7], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(b.detach(), torch.tensor([4.99], dtype=F64), rtol=0, atol=1e-12)


def test_weight_decay_adds_wd_p_before_the_lr() -> None:
    # d = m_hat + wd p0 = [1, -1] + 0.5 * [3, 4] = [2.5, 1];  p1 = p0 - 0.1 d = [2.75, 3.9]
    p = _param(3.0, 4.0)
    opt = LaProp([p], lr=0.1, eps=0.0, warmup=0, weight_decay=0.5)
    _grad(p, 30.0, -40.0)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.75, 3.9], dtype=F64), rtol=0, atol=1e-12)


def test_nesterov_first_step_follows_the_author() -> None:
    # m1 = (1 - b1) u;  nesterov: (b1 m1 + (1 - b1) u) / (1 - b1) = (1 + b1) u = 1.9 sign(g)
    # p1 = [3, 4] - 0.1 * 1.9 * [1, -1] = [2.81, 4.19]
    p = _param(3.0, 4.0)
    opt = LaProp([p], lr=0.1, eps=0.0, warmup=0, nesterov=True)
    _grad(p, 30.0, -40.0)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.81, 4.19], dtype=F64), rtol=0, atol=1e-12)


def test_zero_gradient_and_zero_param_stay_finite() -> None:
    # ||p|| = 0 uses pmin in AGC; g = 0 gives v = 0 and u = 0 / (0 + eps) = 0: no NaN, no move.
    p = torch.nn.Parameter(torch.zeros(3))
    opt = LaProp([p], warmup=0)
    p.grad = torch.zeros(3)
    opt.step()
    assert p.tolist() == [0.0, 0.0, 0.0]
    assert opt.last_grad_norm is not None and opt.last_grad_norm.item() == 0.0
    # A gradient on a zero tensor is clipped to norm 0.3 * pmin = 3e-4, but a first step still moves by lr = 4e-5.
    q = torch.nn.Parameter(torch.zeros(3))
    opt = LaProp([q], warmup=0)
    q.grad = torch.tensor([1.0, 0.0, -1.0])
    opt.step()
    torch.testing.assert_close(q.detach(), torch.tensor([-4e-5, 0.0, 4e-5]), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=-1.0), dict(betas=(1.0, 0.999)), dict(eps=-1.0), dict(agc=-0.1), dict(agc_pmin=0.0), dict(warmup=-1)],
)
def test_bad_arguments_fail_with_their_name(kwargs: dict) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        LaProp([_param(1.0)], **kwargs)


def test_docstring_example_runs() -> None:
    result = doctest.testmod(dreamer_rl.optim)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_step_makes_no_host_sync_on_cuda() -> None:
    params = [torch.nn.Parameter(torch.randn(64, 64, device="cuda")) for _ in range(8)]
    opt = LaProp(params)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()  # state is created on the first step
    loaded = LaProp(params)
    loaded.load_state_dict(copy.deepcopy(opt.state_dict()))
    torch.cuda.set_sync_debug_mode("error")
    try:
        for o in (opt, loaded):
            o.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert opt.last_grad_norm is not None and opt.last_grad_norm.device.type == "cuda"
