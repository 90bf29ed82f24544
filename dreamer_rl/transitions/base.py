"""What the research transition models share: Gaussian stats, sampling, the KL and the filter / imagine loops.

Every model keeps the interface of :class:`dreamer_rl.rssm.RSSM`: the state is a pair of plain tensors
``(deter [N, D], stoch [N, Z])`` whose meaning each model states in its docstring, and one step is

    deter_t = transition(deter_{t-1}, stoch_{t-1}, transition.action_input(a_{t-1}))
    stats   = prior(deter_t)  or  posterior(deter_t, post_in_embed(e_t))        [..., 2S] = [mean(S), std(S)]
    stoch_t = sample(stats)   or  mode(stats)                                   [..., Z]
    feat_t  = feat(stoch_t, deter_t)                                            [..., feat_dim]

Stats are Gaussian, ``std = softplus(.) + min_std``, laid out as one tensor ``[mean, std]`` so ``stats.chunk(2, -1)``
and :func:`dreamer_rl.nets.distributions.gaussian_kl` work on any of them. With ``mean_only`` a sample is the mean.

:meth:`TransitionModel.observe` is the RSSM's scan (action and embedding projections for all ``T`` before the loop,
noise drawn once, the prior over ``[B, T]`` after it; ``is_init`` zeroes the previous state and action) with one hook,
:meth:`TransitionModel._hold`, through which a model may keep parts of the new sample and posterior from the previous
step (the clockwork RSSM's idle cells). Every step is a pure tensor function (no ``.item()``, no value branching).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dreamer_rl.nets.distributions import gaussian_kl
from dreamer_rl.rssm import RSSMStates


class TransitionModel(nn.Module):
    """Base of the Gaussian transition models (see the module docstring).

    Subclasses set ``transition`` (a module with ``action_input`` and ``forward(deter, stoch, action_in)``) and
    implement :meth:`prior`, :meth:`posterior`, :meth:`post_in_embed` and :meth:`feat`.

    :param variables: ``S``, Gaussian units of the latent. :param stoch: ``Z``, width of the ``stoch`` tensor.
    :param deter: ``D``, width of the ``deter`` tensor. :param feat_dim: width of :meth:`feat`.
    """

    latent = "gaussian"
    classes = 1
    unimix = 0.0
    #: names of the extra world-model loss terms :meth:`extra_losses` returns
    extra_loss_keys: tuple[str, ...] = ()

    def __init__(self, action_dim: int, *, variables: int, stoch: int, deter: int, feat_dim: int,
                 min_std: float = 0.1, mean_only: bool = False) -> None:
        super().__init__()
        self.action_dim, self.variables, self.stoch, self.deter = action_dim, variables, stoch, deter
        self.stats_dim, self._feat_dim = 2 * variables, feat_dim
        self.min_std, self.mean_only = min_std, mean_only

    @property
    def feat_dim(self) -> int:
        """Width of :meth:`feat`."""
        return self._feat_dim

    def initial(self, batch_shape: tuple[int, ...], device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``(deter, stoch)`` of shapes ``[*batch_shape, D]`` and ``[*batch_shape, Z]``."""
        return (torch.zeros(*batch_shape, self.deter, device=device, dtype=dtype),
                torch.zeros(*batch_shape, self.stoch, device=device, dtype=dtype))

    def extra_losses(self, states: RSSMStates) -> dict[str, torch.Tensor]:
        """Extra world-model loss terms (already weighted) from :meth:`observe`'s states; none by default."""
        return {}

    # ---------------------------------------------------------------- Gaussian distributions
    def _stats(self, out: torch.Tensor) -> torch.Tensor:
        """Raw layer output ``[..., 2S]`` -> ``[mean, softplus(std) + min_std]``, float32 (under bf16 autocast too)."""
        mean, std = out.float().chunk(2, -1)
        return torch.cat([mean, F.softplus(std) + self.min_std], -1)

    def _draw(self, stats: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``mean + std ε`` (``ε ~ N(0, I)`` unless given), or the mean with ``mean_only``: ``[..., S]``."""
        mean, std = stats.chunk(2, -1)
        if self.mean_only:
            return mean
        return mean + std * (torch.randn_like(std) if noise is None else noise)

    def _pack(self, z: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """The ``stoch`` tensor of a latent value ``z [..., S]`` drawn from ``stats``: ``z`` itself by default."""
        return z

    def sample(self, stats: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """A reparameterised sample as a ``stoch`` tensor ``[..., Z]`` (the mean with ``mean_only``)."""
        return self._pack(self._draw(stats, noise), stats)

    def mode(self, stats: torch.Tensor) -> torch.Tensor:
        """The most likely ``stoch``: the mean."""
        return self._pack(stats.chunk(2, -1)[0], stats)

    def _noise(self, *shape: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.randn(*shape, self.variables, device=device, dtype=dtype)

    def kl(self, stats_q: torch.Tensor, stats_p: torch.Tensor) -> torch.Tensor:
        """``KL(q || p)`` summed over the latent: ``[..., 2S] -> [...]``."""
        return gaussian_kl(*stats_q.chunk(2, -1), *stats_p.chunk(2, -1))

    # ---------------------------------------------------------------- steps
    def _hold(self, deter: torch.Tensor, stoch: torch.Tensor, stats: torch.Tensor,
              held: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's ``(stoch, stats)`` given the new ones and the previous step's stats ``held``: the new ones."""
        return stoch, stats

    def img_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor,
                 sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step ``(deter, stoch, a) -> (deter', stoch' ~ prior)``, shapes ``[N, .]``."""
        deter = self.transition(deter, stoch, self.transition.action_input(action))
        stats = self.prior(deter)
        return deter, self._hold(deter, self.sample(stats) if sample else self.mode(stats), stats, stats)[0]

    def obs_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor, embed: torch.Tensor,
                 is_init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One filtering step ``(deter, stoch, a, e) -> (deter', stoch' ~ posterior)``; ``is_init [N, 1]`` resets."""
        if is_init is not None:
            keep = (~is_init).to(deter.dtype)
            deter, stoch, action = deter * keep, stoch * keep, action * keep
        deter = self.transition(deter, stoch, self.transition.action_input(action))
        stats = self.posterior(deter, self.post_in_embed(embed))
        return deter, self._hold(deter, self.sample(stats), stats, stats)[0]

    def filter_step(self, deter: torch.Tensor, stoch: torch.Tensor, keep: torch.Tensor, act_in: torch.Tensor,
                    emb_in: torch.Tensor, noise: torch.Tensor, held: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The body of :meth:`observe`'s loop (see :meth:`dreamer_rl.rssm.RSSM.filter_step`); ``held`` is the
        previous step's posterior stats for :meth:`_hold` (``None`` at the first step)."""
        deter = self.transition(deter * keep, stoch * keep, act_in)
        new = self.posterior(deter, emb_in)
        stoch, post = self._hold(deter, self.sample(new, noise), new, new if held is None else held)
        return deter, stoch, post

    def prior_step(self, deter: torch.Tensor, stoch: torch.Tensor, act_in: torch.Tensor, sample: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A planner's rollout step (see :meth:`dreamer_rl.rssm.RSSM.prior_step`)."""
        deter = self.transition(deter, stoch, act_in)
        stats = self.prior(deter)
        stoch = self._hold(deter, self.sample(stats) if sample else self.mode(stats), stats, stats)[0]
        return deter, stoch, self.feat(stoch, deter)

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_init: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None) -> RSSMStates:
        """Filter ``embed [B, T, E]``, ``action [B, T, A]``, ``is_init [B, T, 1]`` from ``state`` (zeros if ``None``);
        all outputs ``[B, T, .]`` (see :meth:`dreamer_rl.rssm.RSSM.observe`)."""
        B, T = embed.shape[:2]
        assert action.shape[:2] == (B, T) and is_init.shape[:2] == (B, T), (
            f"observe: embed {tuple(embed.shape)}, action {tuple(action.shape)}, is_init {tuple(is_init.shape)}")
        deter, stoch = state if state is not None else self.initial((B,), embed.device, embed.dtype)
        keep = (~is_init.bool()).to(embed.dtype)  # [B, T, 1]
        act_in = self.transition.action_input(action * keep).unbind(1)
        emb_in = self.post_in_embed(embed).unbind(1)
        keeps = keep.unbind(1)
        noise = self._noise(B, T, device=embed.device, dtype=embed.dtype).unbind(1)
        post: torch.Tensor | None = None  # the previous step's posterior, for _hold (none before the first step)
        deters, stochs, posts = [], [], []
        for t in range(T):
            deter, stoch, post = self.filter_step(deter, stoch, keeps[t], act_in[t], emb_in[t], noise[t], post)
            deters.append(deter), stochs.append(stoch), posts.append(post)
        deter_bt = torch.stack(deters, 1)
        return RSSMStates(deter_bt, torch.stack(stochs, 1), torch.stack(posts, 1), self.prior(deter_bt))
