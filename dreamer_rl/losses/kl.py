"""The KL regulariser of the world model, in the three forms of the Dreamer family.

With ``KL(q || p)`` per step ``[B, T]`` (summed over the latent, :meth:`dreamer_rl.rssm.RSSM.kl`), ``sg`` the stop
gradient, ``F`` free nats:

``free_nats`` (PlaNet, Dreamer V1): averaged over batch and time first, then clipped from below,

    L_kl = max(mean_{b,t} KL(q || p), F)

so the model is not pushed below ``F`` nats per step; below the threshold the term has no gradient. Gradients flow
into both posterior and prior. With ``free_avg=False`` the clip applies to each step before the mean,
``mean_{b,t} max(KL(q || p), F)``, as PlaNet's paper-era code does (google-research/planet 1896bdb,
``planet/training/utility.py`` ``compute_losses``: ``tf.maximum(free_nats, divergence)`` per step).

``balanced`` (DreamerV2, ``agent.py`` ``kl_loss`` with ``forward=False``): the prior is trained towards the posterior
faster than the posterior is regularised towards the prior, with ``α = balance`` (0.8):

    L_kl = α max(KL(sg(q) || p), F) + (1 - α) max(KL(q || sg(p)), F)

where with ``free_avg`` (the author's default) each ``max`` applies to the batch mean, else to each step before
the mean.

``dyn_rep`` (DreamerV3, ``rssm.py`` ``loss``): two terms with their own scales, free nats per step,

    L_dyn = mean_{b,t} max(KL(sg(q) || p), F),   L_rep = mean_{b,t} max(KL(q || sg(p)), F)
    L_kl  = dyn_scale L_dyn + rep_scale L_rep      (1.0 and 0.1)

Example (one step, KL = 2.5 nats, F = 1, α = 0.8): balanced gives 0.8·2.5 + 0.2·2.5 = 2.5, with the prior's gradient
weighted 0.8 and the posterior's 0.2; dyn_rep gives 1.0·2.5 + 0.1·2.5 = 2.75.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

from dreamer_rl.nets.distributions import gaussian_kl

KLKind = Literal["free_nats", "balanced", "dyn_rep"]
KLFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _gaussian_stats_kl(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return gaussian_kl(*q.chunk(2, -1), *p.chunk(2, -1))


def _free(kl: torch.Tensor, free: float, average_first: bool) -> torch.Tensor:
    return torch.clamp(kl.mean(), min=free) if average_first else torch.clamp(kl, min=free).mean()


def kl_terms(post: torch.Tensor, prior: torch.Tensor, *, kind: KLKind = "free_nats", free_nats: float = 3.0,
             balance: float = 0.8, free_avg: bool = True, dyn_scale: float = 1.0, rep_scale: float = 0.1,
             kl: KLFn = _gaussian_stats_kl) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The KL loss terms (scalars, before ``kl_scale``) and the raw mean ``KL(q || p)`` (detached, for logging).

    ``post`` / ``prior``: the stats tensors ``[B, T, .]`` of :class:`~dreamer_rl.rssm.RSSMStates`; ``kl(q, p)``
    computes ``[B, T]`` KLs from stats (``RSSM.kl``; Gaussian ``[mean, std]`` stats by default). Returns
    ``{"kl": L_kl}`` for ``free_nats`` and ``balanced``, ``{"dyn": L_dyn, "rep": L_rep}`` (already scaled) for
    ``dyn_rep``; see the module docstring.
    """
    if kind == "free_nats":
        value = kl(post, prior)  # [B, T]
        return {"kl": _free(value, free_nats, free_avg)}, value.mean().detach()
    if kind not in ("balanced", "dyn_rep"):
        raise ValueError(f"KL kind {kind!r}; available: 'free_nats', 'balanced', 'dyn_rep'")
    dyn = kl(post.detach(), prior)  # trains the prior
    rep = kl(post, prior.detach())  # trains the posterior (same value)
    if kind == "balanced":
        loss = balance * _free(dyn, free_nats, free_avg) + (1 - balance) * _free(rep, free_nats, free_avg)
        return {"kl": loss}, dyn.mean().detach()
    return ({"dyn": dyn_scale * _free(dyn, free_nats, False), "rep": rep_scale * _free(rep, free_nats, False)},
            dyn.mean().detach())


def kl_loss(mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor, *,
            kind: KLKind = "free_nats", free_nats: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian convenience form of :func:`kl_terms` for ``free_nats``/``balanced``: ``(L_kl, mean KL)``."""
    terms, value = kl_terms(torch.cat([mean_q, std_q], -1), torch.cat([mean_p, std_p], -1), kind=kind,
                            free_nats=free_nats)
    return sum(terms.values()), value  # type: ignore[return-value]
