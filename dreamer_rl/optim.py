"""DreamerV3's optimiser: LaProp with adaptive gradient clipping and a linear warmup, as a ``torch.optim.Optimizer``.

LaProp (Ziyin et al. 2020, "LaProp: Separating Momentum and Adaptivity in Adam") divides the gradient by its running
RMS first and takes the momentum of the result, the other way round from Adam. DreamerV3 (Hafner et al. 2023,
appendix "Optimizer") puts adaptive gradient clipping (AGC, Brock et al. 2021) in front of it. Per parameter tensor
``p`` with gradient ``g``, at update ``t = 1, 2, ...`` of that tensor:

    AGC       g <- g / max(1, ||g|| / (agc * max(pmin, ||p||)))      Frobenius norms of the whole tensor
    RMS       v <- b2 v + (1 - b2) g^2;   u = g / (sqrt(v / (1 - b2^t)) + eps)
    momentum  m <- b1 m + (1 - b1) u;     m_hat = m / (1 - b1^t)
              (nesterov: m_hat = (b1 m + (1 - b1) u) / (1 - b1^t), with the m just updated)
    decay     d = m_hat + wd p                                        (wd = 0 by default)
    step      p <- p - lr_t d,   lr_t = lr * min(1, (t - 1) / warmup)  (lr_t = lr when warmup = 0)

Where each line comes from, in the author's code (danijar/dreamerv3):

- ``embodied/jax/opt.py::clip_by_agc``: per tensor (``norm(x.flatten())``), ``update * 1 / max(1, unorm / upper)``
  with ``upper = clip * max(pmin, pnorm)``, ``pmin = 1e-3``; ``clip = 0`` skips it. A zero gradient is left as is.
- ``scale_by_rms``: the count is incremented before use (``t`` starts at 1), ``nu`` is bias-corrected by
  ``optax.bias_correction`` (``nu / (1 - b2^t)``), and ``eps`` is added after the square root.
- ``scale_by_momentum``: ``optax.update_moment(u, mu, b1, 1) = (1 - b1) u + b1 mu``, bias-corrected by
  ``1 - b1^t``; with nesterov the moment is applied a second time before the correction.
- ``dreamerv3/agent.py::_make_opt`` chains ``clip_by_agc -> scale_by_rms -> scale_by_momentum ->
  add_decayed_weights (if wd) -> scale_by_learning_rate``; the warmup is ``linear_schedule(0, lr, warmup)``
  joined to the constant ``lr`` at ``warmup``. optax's ``scale_by_schedule`` evaluates the schedule at the count
  *before* incrementing it, so the first update has ``lr_t = 0`` (it only fills ``v`` and ``m``) and ``lr_t`` reaches
  ``lr`` at update ``warmup + 1``.
- ``dreamerv3/configs.yaml`` ``agent.opt``: ``lr 4e-5, agc 0.3, eps 1e-20, beta1 0.9, beta2 0.999, wd 0.0,
  schedule const, warmup 1000`` (``nesterov`` is ``_make_opt``'s default ``False``; its ``momentum`` flag is unused).

Differences from the author, both standard in PyTorch: the count ``t`` is kept per tensor (a tensor whose ``.grad``
is ``None`` is skipped and neither its moments nor its count advance, where optax would feed it a zero gradient), and
weight decay applies to whole parameter groups (put the tensors to decay in their own group) instead of a name regex.
Any other schedule (``lr`` annealing) can be layered on with a ``torch.optim.lr_scheduler``: it changes
``group["lr"]``, which the warmup factor multiplies.

All the arithmetic runs as ``torch._foreach_*`` ops over the tensors of a group, and the counts and per-tensor
factors stay on the parameters' device, so :meth:`LaProp.step` makes no host sync. State per tensor: ``step``
(float64 count), ``exp_avg`` (``m``) and ``exp_avg_sq`` (``v``), saved by ``state_dict()``.

Example:

    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> opt = LaProp([w], lr=0.1, warmup=0)
    >>> w.grad = torch.tensor([30.0, -40.0])
    >>> opt.step()
    >>> w.detach()  # the first update moves each entry by lr against the sign of its gradient
    tensor([2.9000, 4.1000])
    >>> opt.last_grad_norm  # global norm of the gradients before clipping
    tensor(50.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["LaProp"]


class LaProp(torch.optim.Optimizer):
    """LaProp with per-tensor adaptive gradient clipping and linear warmup (DreamerV3's optimiser).

    :param params: parameters or parameter groups (dicts), as for any ``torch.optim.Optimizer``.
    :param lr: learning rate after warmup (DreamerV3: ``4e-5``).
    :param betas: ``(b1, b2)``, decay of the momentum ``m`` and of the squared-gradient average ``v``.
    :param eps: added to ``sqrt(v_hat)`` (DreamerV3: ``1e-20``, so the RMS normalisation is almost exact).
    :param agc: AGC ratio, the largest ``||g|| / max(pmin, ||p||)`` let through; ``0`` disables clipping.
    :param agc_pmin: floor on ``||p||`` in AGC, so that tensors initialised at zero can still move.
    :param warmup: number of updates over which ``lr`` ramps linearly from 0; ``0`` disables warmup.
    :param weight_decay: ``wd``, added as ``wd * p`` to the update before it is scaled by ``lr_t``.
    :param nesterov: Nesterov momentum as in the author's ``scale_by_momentum`` (DreamerV3: off).

    After each :meth:`step`, :attr:`last_grad_norm` holds the global L2 norm of all the gradients it saw, before
    clipping (a 0-dim tensor on the first parameter's device; ``None`` before the first step or when no gradient was
    present).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        agc: float = 0.3,
        agc_pmin: float = 1e-3,
        warmup: int = 1000,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"LaProp: lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"LaProp: betas must lie in [0, 1), got {betas}")
        if not eps >= 0.0:
            raise ValueError(f"LaProp: eps must be >= 0, got {eps}")
        if not agc >= 0.0:
            raise ValueError(f"LaProp: agc must be >= 0 (0 disables it), got {agc}")
        if not agc_pmin > 0.0:
            raise ValueError(f"LaProp: agc_pmin must be > 0, got {agc_pmin}")
        if not (isinstance(warmup, int) and warmup >= 0):
            raise ValueError(f"LaProp: warmup must be an int >= 0 (0 disables it), got {warmup!r}")
        if not weight_decay >= 0.0:
            raise ValueError(f"LaProp: weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            agc=agc,
            agc_pmin=agc_pmin,
            warmup=warmup,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)
        self.last_grad_norm: Tensor | None = None

    @staticmethod
    def _count_dtype(p: Tensor) -> torch.dtype:
        # float64 keeps 1 - b^t accurate (b2 = 0.999 in float32 is off by 1e-5 relative); MPS has no float64.
        return torch.float32 if p.device.type == "mps" else torch.float64

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # torch leaves "step" where it was saved; the update needs it on the parameter's device.
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and "step" in state:
                    state["step"] = state["step"].to(device=p.device, dtype=self._count_dtype(p))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Apply one update to every parameter that has a ``.grad``; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        norms: list[Tensor] = []
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LaProp does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=self._count_dtype(p), device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if params:
                norms.extend(self._update_group(group, params, grads, exp_avgs, exp_avg_sqs, steps))
        if norms:
            device = norms[0].device
            self.last_grad_norm = torch.linalg.vector_norm(torch.stack([n.to(device, torch.float32) for n in norms]))
        return loss

    def _update_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        steps: list[Tensor],
    ) -> list[Tensor]:
        """Update one group in place; returns the per-tensor gradient norms before clipping."""
        beta1, beta2 = group["betas"]
        agc, warmup = group["agc"], group["warmup"]
        grad_norms = torch._foreach_norm(grads)  # ||g|| per tensor, 0-dim each
        torch._foreach_add_(steps, 1.0)  # t: this update's 1-based count

        if agc > 0:
            # g / max(1, ||g|| / (agc * max(pmin, ||p||))); a zero gradient gives ratio 0 and stays zero.
            upper = torch._foreach_norm(params)
            torch._foreach_maximum_(upper, group["agc_pmin"])
            torch._foreach_mul_(upper, agc)
            ratio = torch._foreach_div(grad_norms, upper)
            torch._foreach_clamp_min_(ratio, 1.0)
            grads = torch._foreach_div(grads, ratio)  # new tensors: p.grad is left as the caller made it

        # RMS: v <- b2 v + (1 - b2) g^2;  u = g / (sqrt(v / (1 - b2^t)) + eps)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
        bias2 = torch._foreach_pow(beta2, steps)
        torch._foreach_neg_(bias2)
        torch._foreach_add_(bias2, 1.0)  # 1 - b2^t
        denom = torch._foreach_div(exp_avg_sqs, bias2)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, group["eps"])
        normed = torch._foreach_div(grads, denom)  # u

        # Momentum: m <- b1 m + (1 - b1) u;  m_hat = m / (1 - b1^t)
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, normed, alpha=1.0 - beta1)
        if group["nesterov"]:
            update = torch._foreach_mul(exp_avgs, beta1)
            torch._foreach_add_(update, normed, alpha=1.0 - beta1)
        else:
            update = torch._foreach_mul(exp_avgs, 1.0)  # a copy: the state must not be scaled below
        bias1 = torch._foreach_pow(beta1, steps)
        torch._foreach_neg_(bias1)
        torch._foreach_add_(bias1, 1.0)  # 1 - b1^t
        torch._foreach_div_(update, bias1)
        if group["weight_decay"] != 0:
            torch._foreach_add_(update, params, alpha=group["weight_decay"])

        # p <- p - lr_t d,  lr_t = lr * min(1, (t - 1) / warmup)
        if warmup > 0:
            lr_t = torch._foreach_sub(steps, 1.0)
            torch._foreach_div_(lr_t, float(warmup))
            torch._foreach_clamp_max_(lr_t, 1.0)
            torch._foreach_mul_(lr_t, group["lr"])
            torch._foreach_mul_(update, lr_t)
        else:
            torch._foreach_mul_(update, group["lr"])
        torch._foreach_sub_(params, update)
        return list(grad_norms)
