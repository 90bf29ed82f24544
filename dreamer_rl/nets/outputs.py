"""Output transforms and discrete-distribution helpers: symlog, two-hot, unimix, straight-through one-hot, KL.

Pure tensor functions of the DreamerV2/V3 heads and latents (Hafner et al. 2021, "Mastering Atari with Discrete
World Models"; Hafner et al. 2023/2025, "Mastering Diverse Domains through World Models"). Facts checked against the
author's code: ``embodied/jax/nets.py`` (``symlog``, ``symexp``), ``embodied/jax/heads.py`` (``Head.symexp_twohot``:
the bins), ``embodied/jax/outs.py`` (``TwoHot``, ``Categorical``, ``OneHot``, ``Binary``).

Every function works on any number of leading dims (``[B, T]``, ``[H, N]``, ...) and is free of host syncs and of
Python branching on tensor values, so the update that calls them can be captured whole (``torch.compile``, CUDA
graphs). One-hot tensors are built with ``scatter`` rather than ``F.one_hot``, which checks its indices on the host.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


#: Widest last dim served by the composite softmax below: PyTorch's CPU softmax kernels vectorise along the
#: softmaxed dim, so a few classes leave most of each vector unused. Measured on this project's CPU, one thread,
#: ``[1024, 32, K]`` forward + backward: K = 4 (V3 size1m latents) 2.1 ms against 4.0 ms (log-softmax 1.0 against
#: 2.8), K = 8 2.7 against 7.5; from K = 16 on the built-in kernels are faster.
SMALL_K = 8


def _built_in(logits: torch.Tensor) -> bool:
    """Whether torch's own (log-)softmax kernel is the faster one here: more than ``SMALL_K`` classes, or not a CPU."""
    return logits.shape[-1] > SMALL_K or logits.device.type != "cpu"


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """``softmax`` over the last dim, ``[..., K] -> [..., K]``; the same values and gradients as ``torch.softmax``.

    On a CPU with ``K <= SMALL_K`` it is composed as ``e / sum_k e``, ``e = exp(l - sg(max_k l))``: softmax does not
    change under a shift, so the stopped-gradient max only guards ``exp`` against overflow.
    """
    if _built_in(logits):
        return torch.softmax(logits, -1)
    e = (logits - logits.detach().amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the last dim, as :func:`softmax`: ``z - log sum_k exp(z)``, ``z = l - sg(max_k l)``."""
    if _built_in(logits):
        return torch.log_softmax(logits, -1)
    z = logits - logits.detach().amax(-1, keepdim=True)
    return z - z.exp().sum(-1, keepdim=True).log()


def symlog(x: torch.Tensor) -> torch.Tensor:
    """``symlog(x) = sign(x) log(1 + |x|)``: compresses large magnitudes, identity-like near 0 (V3 paper, eq. 1).

    >>> symlog(torch.tensor([-1.718282, 0.0, 1.718282]))   # ±(e - 1)
    tensor([-1.,  0.,  1.])
    """
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """``symexp(x) = sign(x) (exp(|x|) - 1)``, the inverse of :func:`symlog`.

    >>> symexp(torch.tensor([-1.0, 0.0, 2.0]))
    tensor([-1.7183,  0.0000,  6.3891])
    """
    return torch.sign(x) * torch.expm1(x.abs())


def twohot_bins(num: int = 255, *, limit: float = 20.0, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """The ``[num]`` bin values of DreamerV3's ``symexp_twohot`` reward and value heads, in raw (not symlog) space.

    From ``embodied/jax/heads.py`` ``Head.symexp_twohot`` (current code): half the bins are ``symexp`` of an even
    grid on ``[-limit, 0]`` (the author: ``limit = 20``), mirrored to the positive side,

        odd num:   half = symexp(linspace(-limit, 0, (num - 1) / 2 + 1)),  bins = [half, -reverse(half[:-1])]
        even num:  half = symexp(linspace(-limit, 0, num / 2)),            bins = [half, -reverse(half)]

    so the bins are exactly symmetric, an odd ``num`` holds one exact 0 in the middle, and an even ``num`` holds 0
    twice (the two middle bins; :func:`twohot_encode` then puts 0 and small positive values on the upper one).
    Because the bins are symexp-spaced and the two-hot interpolation is linear in raw space, the head needs no
    symlog/symexp squashing (the current ``TwoHot`` is built without ``squash``; the 2023 paper instead two-hot
    encoded ``symlog(y)`` on ``linspace(-20, 20)``). 255 bins span ``±symexp(20) ≈ ±4.85e8``.

    Computed in ``dtype`` as the author does in float32, so the values match the author's bit for bit.

    >>> b = twohot_bins(255)
    >>> b.shape, b[127].item(), b[0].item()
    (torch.Size([255]), 0.0, -485165184.0)
    >>> twohot_bins(5, limit=2.0)   # symexp of [-2, -1, 0], mirrored
    tensor([-6.3891, -1.7183,  0.0000,  1.7183,  6.3891])
    """
    if num < 2:
        raise ValueError(f"twohot_bins needs num >= 2, got {num}")
    if num % 2 == 1:
        half = symexp(torch.linspace(-limit, 0.0, (num - 1) // 2 + 1, dtype=dtype, device=device))
        return torch.cat([half, -half[:-1].flip(0)])
    half = symexp(torch.linspace(-limit, 0.0, num // 2, dtype=dtype, device=device))
    return torch.cat([half, -half.flip(0)])


def twohot_encode(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot encoding ``[...] -> [..., K]`` of ``x`` on the sorted ``bins [K]`` (``outs.TwoHot.loss``).

    With ``below`` the last bin ``<= x`` and ``above`` the first bin ``> x`` (both clipped to ``[0, K-1]``), the
    weights interpolate linearly between the two neighbours,

        w_below = |b_above - x| / (|b_below - x| + |b_above - x|),   w_above = |b_below - x| / (...),

    and a value outside the bins puts all its weight on the end bin (``below == above``: both distances count as 1,
    so the bin receives 1/2 + 1/2). A value exactly on a bin puts weight 1 on it. Rows sum to 1.

    >>> twohot_encode(torch.tensor([0.25, 5.0]), torch.tensor([-1.0, 0.0, 1.0, 3.0]))
    tensor([[0.0000, 0.7500, 0.2500, 0.0000],
            [0.0000, 0.0000, 0.0000, 1.0000]])
    """
    num = bins.shape[-1]
    # searchsorted(right=True) = number of bins <= x: the author's count, without the [..., K] comparison tensor.
    count = torch.searchsorted(bins, x.contiguous(), right=True)
    below = (count - 1).clamp(0, num - 1)
    above = count.clamp(0, num - 1)
    equal = below == above
    one = torch.ones((), dtype=x.dtype, device=x.device)
    dist_below = torch.where(equal, one, (bins[below] - x).abs())
    dist_above = torch.where(equal, one, (bins[above] - x).abs())
    total = dist_below + dist_above
    weights = torch.stack([dist_above / total, dist_below / total], -1)  # [..., 2]: on below, on above
    index = torch.stack([below, above], -1)  # [..., 2]
    out = torch.zeros(*x.shape, num, dtype=x.dtype, device=x.device)
    return out.scatter_add(-1, index, weights)  # add, not set: below == above gets both halves


def twohot_mean(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Expected value ``sum_k softmax(logits)_k b_k``: ``[..., K] -> [...]`` (``outs.TwoHot.pred``).

    Summed in mirrored pairs ``(p_i b_i) + (p_{K-1-i} b_{K-1-i})`` (plus the middle bin for odd ``K``), as the author
    does: with symmetric bins and uniform probabilities (an untrained head) each pair cancels exactly, so predicted
    rewards and values start at exactly 0 instead of a rounding residue of ~``1e8 * 1e-7``. For any bins the sum is
    the same, only its order changes.

    >>> twohot_mean(torch.zeros(255), twohot_bins(255))
    tensor(0.)
    """
    num = logits.shape[-1]
    weighted = torch.softmax(logits, -1) * bins  # [..., K]
    half = num // 2
    pairs = weighted[..., :half].flip(-1) + weighted[..., num - half:]  # [..., K // 2]
    total = pairs.sum(-1)
    if num % 2 == 1:
        total = weighted[..., half] + total
    return total


def twohot_nll(logits: torch.Tensor, target: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """``-sum_k twohot(sg(target))_k log_softmax(logits)_k``: ``logits [..., K]``, ``target [...]`` -> ``[...]``.

    The ``TwoHot.loss`` of DreamerV3's reward and value heads; the target carries no gradient.

    >>> twohot_nll(torch.tensor([0.0, 0.693147, 0.0]), torch.tensor(0.5), torch.tensor([-1.0, 0.0, 1.0]))
    tensor(1.0397)
    """
    weights = twohot_encode(target.detach().to(logits.dtype), bins)
    return -(weights * torch.log_softmax(logits, -1)).sum(-1)


def unimix_logits(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Mix a categorical with the uniform: ``log((1 - u) softmax(logits) + u / K)``, ``[..., K] -> [..., K]``.

    DreamerV3 (``outs.Categorical``, ``unimix = 0.01`` for latents and the discrete actor): every class keeps at
    least ``u / K`` probability, which bounds the KL and the log-probabilities. Returns ``logits`` unchanged when
    ``u == 0`` (a Python float: no tensor branch).

    >>> unimix_logits(torch.tensor([0.0, 1.098612]), 0.1).exp()   # probs [1/4, 3/4] -> [0.275, 0.725]
    tensor([0.2750, 0.7250])
    """
    if unimix == 0.0:
        return logits
    return torch.log((1.0 - unimix) * softmax(logits) + unimix / logits.shape[-1])


def onehot_sample(logits: torch.Tensor) -> torch.Tensor:
    """A one-hot sample ``[..., K]`` of ``Categorical(logits)`` with no gradient, by Gumbel-max.

    ``argmax_k (logits_k + g_k)``, ``g = -log(-log U)``, ``U ~ U[0, 1)``: one elementwise pass and an argmax over any
    leading shape, where ``torch.multinomial`` would need a 2-D reshape (and ``F.one_hot`` a host-side index check).
    ``U = 0`` gives ``g = -inf``, a class that is never picked, not a NaN.
    """
    with torch.no_grad():
        gumbel = -torch.log(-torch.log(torch.rand_like(logits)))
        index = (logits + gumbel).argmax(-1, keepdim=True)
        return torch.zeros_like(logits).scatter_(-1, index, 1.0)


def onehot_st_sample(logits: torch.Tensor) -> torch.Tensor:
    """One-hot sample with straight-through gradient: ``sample + (p - sg(p))``, ``p = softmax(logits)``.

    Forward value: exactly the one-hot sample (the bracket is exactly 0). Backward: the gradient of ``p``, the
    biased straight-through estimator of DreamerV2 (Bengio et al. 2013; ``outs.OneHot._onehot_with_grad``). Works on
    the latent's ``[B, T, 32, 16]`` logits as on an actor's ``[N, A]``, with no host sync.

    >>> s = onehot_st_sample(torch.randn(2, 3, 32, 16))
    >>> s.shape, bool((s.sum(-1) == 1).all())
    (torch.Size([2, 3, 32, 16]), True)
    """
    probs = softmax(logits)
    return onehot_sample(logits) + (probs - probs.detach())


def categorical_kl(logits_q: torch.Tensor, logits_p: torch.Tensor) -> torch.Tensor:
    """``KL(q || p)`` of factorised categoricals, summed over the last two dims: ``[..., V, K] -> [...]``.

        KL = sum_v sum_k q_vk (log q_vk - log p_vk)

    ``V`` independent variables of ``K`` classes each (DreamerV2/V3 latents: 32 x 32, 32 x 16, ...); as
    ``outs.Categorical.kl`` aggregated over the variables (``outs.Agg``).

    >>> categorical_kl(torch.zeros(4, 32, 16), torch.zeros(4, 32, 16))
    tensor([0., 0., 0., 0.])
    """
    log_q = log_softmax(logits_q)
    log_p = log_softmax(logits_p)
    return (log_q.exp() * (log_q - log_p)).sum((-2, -1))


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-[y log σ(l) + (1 - y) log σ(-l)]`` elementwise (``outs.Binary.logp``, the continuation head).

    ``target`` may be bool or float (soft targets allowed); the target carries no gradient.

    >>> bernoulli_nll(torch.tensor([0.0, 1.098612]), torch.tensor([1.0, 1.0]))   # [log 2, log 4/3]
    tensor([0.6931, 0.2877])
    """
    return F.binary_cross_entropy_with_logits(logits, target.detach().to(logits.dtype), reduction="none")


__all__ = ["bernoulli_nll", "categorical_kl", "onehot_sample", "onehot_st_sample", "symexp", "symlog",
           "twohot_bins", "twohot_encode", "twohot_mean", "twohot_nll", "unimix_logits"]
