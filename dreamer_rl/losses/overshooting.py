"""PlaNet's paper-era KL regularisers: latent overshooting and the global divergence (Hafner et al. 2019, §4).

Notation. A chunk has rows ``t = 0 .. T-1`` (row ``t`` holds ``o_t`` and the action ``a_{t-1}`` that led to it, see
:mod:`dreamer_rl.replay`). ``s_t = (h_t, z_t)`` is the posterior state at row ``t`` and ``q_t`` its stats
(:class:`~dreamer_rl.rssm.RSSMStates`, ``[B, T, ·]``); ``s_{-1}`` is the state before the chunk (zeros, what
:meth:`RSSM.observe` starts from). From a start ``u ∈ {-1, .., T-2}`` the open-loop prior at distance ``d`` rolls
``s_u`` forward ``d`` steps with the stored actions of rows ``u+1 .. u+d`` and prior samples, through the generic
transition interface only (so every transition model works)::

    h ← transition(h, z, action_input(a_row)),   p ← prior(h),   z ~ sample(p)            d times → p_d(· | s_u)

Latent overshooting, ``O = amount`` (PlaNet's ``overshooting``), distances ``d = 2 .. O + 1``, free nats ``F``::

    valid(u, d) = u + d ≤ T - 1  and  no is_init among rows u+1 .. u+d     (no episode start crossed, no chunk end)
    KL_d(u)     = max(KL(sg(q_{u+d}) || p_d(· | s_u)), F)                    per pair, [B, T] (one row per start)
    L_d         = Σ_{b,u} valid · KL_d / Σ_{b,u} valid                      mean over the valid pairs of distance d
    L_os        = mean of L_d over the distances that have a valid pair

Distance 1 is the ordinary KL term (``loss_kl``, PlaNet's "zero-step" divergence) and is not repeated here. All
``B·T`` starts are rolled forward at once (``[B·T, ·]``), the loop runs over the distance only, with plain tensors
and no host synchronisation; step ``d`` carries only the starts whose target row ``u + d`` lies in the chunk (a
prefix of ``T - d + 1`` rows), so ``O`` above ``T - 1`` reaches no further than the chunk.

Matching google-research/planet at the paper-era commit 1896bdb (``planet/tools/overshooting.py``,
``planet/training/define_model.py``, ``planet/training/utility.py`` ``compute_losses``,
``planet/scripts/configs.py``): ``tools.overshooting(.., amount=overshooting + 1)`` rolls every previous posterior
(zeros before the chunk) forward with the true previous actions, sampling the priors; ``define_model`` keeps
distance 1 as the zero-step divergence and uses distances ``2 .. overshooting + 1`` (``[:, :, 1:-1]``) for the
overshooting divergence, with the target posteriors under ``stop_gradient`` (``stop_os_posterior_gradient``) while
the start posteriors keep their gradient, weighted by ``divergence_scale`` (1); ``compute_losses`` applies free
nats per pair (``tf.maximum(free_nats, kl)``), averages over the starts and then over batch and distances;
``overshooting = chunk length - 1`` (49). Differences: PlaNet averages per sequence before the batch (equal here,
its chunks have no episode starts inside), and its masked pairs add the constant ``F`` to the numerator (no
gradient; left out here).

Overshooting reward term (PlaNet's ``overshooting_losses.reward``, ``overshooting_reward_scale`` 100 at 1896bdb, 0 at
HEAD). ``compute_losses`` applies the heads to ``features_from_state(posterior)``, and the overshooting posteriors
are the stop-gradient *target* posteriors, so the term is the reward head's NLL on the stopped posterior features
of each target row, counted once per valid (start, distance) pair and averaged over all ``B · T · O`` slots (masked
ones count as zero, PlaNet's ``reduce_mean`` after ``tools.mask``)::

    ℓ_j         = -log p(r_j | sg(feat_j))                                  per row, [B, T]
    L_os_reward = Σ_{d=2}^{O+1} Σ_{b,u} valid(u, d) · ℓ_{u+d} / (B · T · O)

It trains only the reward head: a re-weighting of the zero-step reward loss towards rows that many open-loop
rollouts reach.

Global divergence (PlaNet ``global_divergence``, scale 0.1 at 1896bdb): ``mean_{b,t} KL(q_t || N(0, I))``, no free
nats. For categorical latents the standard prior is the uniform distribution (all-zero logits).

Shapes: ``deter [B, T, D]``, ``stoch [B, T, Z]``, ``post [B, T, stats]``, ``action [B, T, A]``,
``is_init [B, T, 1]`` (bool); both losses are scalars.
"""

from __future__ import annotations

import torch

from dreamer_rl.rssm import RSSM

__all__ = ["global_kl", "overshooting_kl", "overshooting_reward", "standard_prior"]


def standard_prior(rssm: RSSM, like: torch.Tensor) -> torch.Tensor:
    """Stats of the fixed prior shaped like ``like``: ``[0, 1]`` mean|std (Gaussian) or zero logits (categorical)."""
    if rssm.latent == "gaussian":
        mean, _ = like.chunk(2, -1)
        return torch.cat([torch.zeros_like(mean), torch.ones_like(mean)], -1)
    return torch.zeros_like(like)


def global_kl(rssm: RSSM, post: torch.Tensor) -> torch.Tensor:
    """``mean KL(q || N(0, I))`` over all leading dims of the posterior stats ``post [..., stats]`` (a scalar)."""
    return rssm.kl(post, standard_prior(rssm, post)).mean()


def overshooting_kl(rssm: RSSM, deter: torch.Tensor, stoch: torch.Tensor, post: torch.Tensor,
                    action: torch.Tensor, is_init: torch.Tensor, *, amount: int, free_nats: float = 0.0,
                    initial: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Latent overshooting ``L_os`` (module docstring) over distances ``2 .. amount + 1``; 0 when none fits.

    :param deter, stoch, post: the posterior states and stats of :meth:`RSSM.observe`, ``[B, T, ·]``.
    :param action: ``[B, T, A]`` stored actions (row ``t``: ``a_{t-1}``). :param is_init: ``[B, T, 1]`` bool.
    :param initial: ``(h, z)`` before the chunk, ``[B, D], [B, Z]`` (zeros if ``None``, as ``observe``).
    """
    B, T = deter.shape[:2]
    last = min(amount + 1, T)  # largest distance that can fit in the chunk
    zero = deter.new_zeros(())
    if last < 2:
        return zero
    h0, z0 = initial if initial is not None else rssm.initial((B,), deter.device, deter.dtype)
    # start for row t is the state at row t - 1: [B, T, ·]
    h = torch.cat([h0[:, None], deter[:, :-1]], 1)
    z = torch.cat([z0[:, None], stoch[:, :-1]], 1)
    act_in = rssm.transition.action_input(action)  # [B, T, X], once for all steps
    target = post.detach()  # the target posteriors are stop-gradient
    init = is_init.reshape(B, T).bool()
    crossed = torch.zeros_like(init)
    total, distances = zero, zero
    for d in range(1, last + 1):
        n = T - d + 1  # starts t = 0 .. T - d still have a target row t + d - 1 inside the chunk: a prefix
        rows = slice(d - 1, T)  # for start row t - 1, step d consumes row t + d - 1
        h, z, crossed = h[:, :n], z[:, :n], crossed[:, :n] | init[:, rows]
        h = rssm.transition(h.flatten(0, 1), z.flatten(0, 1), act_in[:, rows].flatten(0, 1))
        prior = rssm.prior(h)
        h, z = h.unflatten(0, (B, n)), rssm.sample(prior).unflatten(0, (B, n))
        if d < 2:
            continue
        valid = (~crossed).flatten().to(prior.dtype)  # [B·n]
        kl = torch.clamp(rssm.kl(target[:, rows].flatten(0, 1), prior), min=free_nats)
        count = valid.sum()
        total = total + (kl * valid).sum() / count.clamp(min=1.0)
        distances = distances + (count > 0).to(prior.dtype)
    return total / distances.clamp(min=1.0)


def overshooting_reward(nll: torch.Tensor, is_init: torch.Tensor, *, amount: int) -> torch.Tensor:
    """PlaNet's overshooting reward term ``L_os_reward`` (module docstring): ``nll [B, T]`` (the reward head's NLL on
    the stop-gradient posterior features, row by row), ``is_init [B, T, 1]`` bool; a scalar, 0 when no distance
    fits."""
    B, T = nll.shape
    last = min(amount + 1, T)
    init = is_init.reshape(B, T).bool()
    crossed = torch.zeros_like(init)
    total = nll.new_zeros(())
    for d in range(1, last + 1):  # the same valid pairs as overshooting_kl, without rolling the model
        n = T - d + 1
        rows = slice(d - 1, T)
        crossed = crossed[:, :n] | init[:, rows]
        if d >= 2:
            total = total + (nll[:, rows] * (~crossed).to(nll.dtype)).sum()
    return total / (B * T * max(amount, 1))
