"""The recurrent state-space model (RSSM, Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels").

State ``s_t = (h_t, z_t)``: a deterministic part ``h_t`` (``deter`` units) and a stochastic part ``z_t``.

    h_t = f(h_{t-1}, z_{t-1}, a_{t-1})          transition cell (:mod:`dreamer_rl.nets.cells`)
    z_t ~ p(z_t | h_t)                          prior      (imagination)
    z_t ~ q(z_t | h_t, e_t),  e_t = enc(o_t)    posterior  (filtering)
    feat_t = [z_t, h_t]                         what every head reads, ``Z + deter`` wide

Latent kinds (``model.latent``):

- ``gaussian`` (PlaNet, V1): ``z`` is ``S`` wide (``Z = S``); stats are ``[mean, std]`` with
  ``std = softplus(.) + min_std``; samples are reparameterised.
- ``categorical`` (V2, V3): ``S`` variables of ``K`` classes, ``z`` is their one-hot samples flattened (``Z = S K``);
  stats are the logits ``[..., S K]``, mixed with ``unimix`` of the uniform distribution
  (``p = (1 - u) softmax(l) + u / K``, V3's 1%); samples use straight-through gradients
  (``z = onehot + p - sg(p)``).

``mean_only`` (PlaNet's purely deterministic ablation, Gaussian only): the "sample" of prior and posterior is their
mean, no noise; train it without the KL term (``kl_scale 0``).

Other transition models with this interface (PlaNet's SSM, the fork's moving-average and clockwork RSSMs) live in
:mod:`dreamer_rl.transitions`; :func:`dreamer_rl.transitions.make_rssm` picks one.

Every distribution is carried as one stats tensor (``[..., 2S]`` or ``[..., S K]``) so the scan stays plain tensors.

Time alignment (see :mod:`dreamer_rl.replay`): stored row ``t`` holds ``o_t`` and the action ``a_{t-1}`` that led to
it, so step ``t`` of :meth:`RSSM.observe` consumes row ``t``'s action and embedding together. Where ``is_init_t`` is
set, the previous state and action are zeroed before the step: the recurrent state resets where an episode starts.

Speed: the loop over ``T`` touches only what must be sequential. The action and embedding projections are computed
for all ``T`` in one matmul before the loop, the noise is drawn once (one uniform per categorical variable), and the prior
head (which depends only on ``h_t``) runs over ``[B, T]`` after the loop. The step is a pure function of tensors
with static shapes (no ``.item()``, no branching on values), so ``torch.compile`` / CUDA graphs can capture it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dreamer_rl.nets.distributions import gaussian_kl
from dreamer_rl.nets.cells import CellKind, make_transition
from dreamer_rl.nets.mlp import Activation, Norm, norm_act, pre_norm_bias
from dreamer_rl.nets.outputs import categorical_kl, softmax, unimix_logits

LatentKind = Literal["gaussian", "categorical"]
__all__ = ["RSSM", "RSSMStates", "LatentKind", "CellKind"]


class RSSMStates(NamedTuple):
    """Outputs of :meth:`RSSM.observe`, every tensor ``[B, T, ...]``."""

    deter: torch.Tensor  # [B, T, D]  h_t
    stoch: torch.Tensor  # [B, T, Z]  z_t ~ q (posterior sample)
    post: torch.Tensor  # [B, T, 2S] (gaussian mean|std) or [B, T, S*K] (categorical logits)
    prior: torch.Tensor  # same layout as post

    @property
    def post_mean(self) -> torch.Tensor:
        return self.post.chunk(2, -1)[0]

    @property
    def post_std(self) -> torch.Tensor:
        return self.post.chunk(2, -1)[1]

    @property
    def prior_mean(self) -> torch.Tensor:
        return self.prior.chunk(2, -1)[0]

    @property
    def prior_std(self) -> torch.Tensor:
        return self.prior.chunk(2, -1)[1]


def _hidden(in_dim: int, hidden: int, layers: int, act: Activation, norm: Norm) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(in_dim, hidden, bias=pre_norm_bias(norm)), *norm_act(norm, hidden, act)]
        in_dim = hidden
    return nn.Sequential(*mods)


class RSSM(nn.Module):
    """RSSM with a choice of latent and cell; see the module docstring for the equations.

    :param action_dim: ``A``. :param embed_dim: ``E``, width of the observation embedding.
    :param stoch: ``S`` (Gaussian units or categorical variables). :param classes: ``K`` (categorical only).
    :param deter: ``D``. :param hidden: width of the input/output layers around the cell.
    :param min_std: added to softplus(std) (Gaussian). :param unimix: uniform mix of categorical probabilities.
    :param prior_layers: hidden layers of the prior head (V1/V2 1, V3 2). :param blocks: block GRU blocks.
    :param mean_only: samples are the mean (Gaussian only; PlaNet's deterministic ablation).
    """

    #: names of the extra world-model loss terms :meth:`extra_losses` returns (none for the RSSM)
    extra_loss_keys: tuple[str, ...] = ()

    def __init__(self, action_dim: int, embed_dim: int, *, stoch: int = 30, deter: int = 200, hidden: int = 200,
                 act: Activation = "elu", min_std: float = 0.1, latent: LatentKind = "gaussian",
                 cell: CellKind = "gru", classes: int = 32, unimix: float = 0.0, norm: Norm = "none",
                 prior_layers: int = 1, blocks: int = 8, mean_only: bool = False) -> None:
        super().__init__()
        if latent not in ("gaussian", "categorical"):
            raise ValueError(f"latent kind {latent!r}; available: 'gaussian', 'categorical'")
        if mean_only and latent != "gaussian":
            raise ValueError("mean_only (samples are the mean) needs latent 'gaussian'")
        self.mean_only = mean_only
        self.latent, self.variables = latent, stoch
        self.classes = classes if latent == "categorical" else 1
        self.stoch = stoch * classes if latent == "categorical" else stoch  # Z, width of z
        self.stats_dim = self.stoch if latent == "categorical" else 2 * stoch
        self.deter, self.action_dim = deter, action_dim
        self.min_std, self.unimix = min_std, unimix
        self.transition = make_transition(cell, self.stoch, action_dim, deter, hidden, act=act, norm=norm,
                                          blocks=blocks)
        # prior p(z | h)
        self.prior_hidden = _hidden(deter, hidden, prior_layers, act, norm)
        self.prior_out = nn.Linear(hidden, self.stats_dim)
        # posterior q(z | h, e) = act(norm(W_h h + W_e e + b)), W_e e computed for all T at once.
        self.post_in_deter = nn.Linear(deter, hidden, bias=pre_norm_bias(norm))
        self.post_in_embed = nn.Linear(embed_dim, hidden, bias=False)
        self.post_norm, self.act = norm_act(norm, hidden, act)
        self.post_out = nn.Linear(hidden, self.stats_dim)

    @property
    def feat_dim(self) -> int:
        """Width of ``feat = [z, h]``."""
        return self.stoch + self.deter

    def feat(self, stoch: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """``[..., Z], [..., D] -> [..., Z + D]`` (an instance method: other transition models override it)."""
        return torch.cat([stoch, deter], -1)

    def extra_losses(self, states: RSSMStates) -> dict[str, torch.Tensor]:
        """Extra world-model loss terms (already weighted) from :meth:`observe`'s states: none for the RSSM."""
        return {}

    def initial(self, batch_shape: tuple[int, ...], device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``(deter, stoch)`` of shapes ``[*batch_shape, D]`` and ``[*batch_shape, Z]``."""
        return (torch.zeros(*batch_shape, self.deter, device=device, dtype=dtype),
                torch.zeros(*batch_shape, self.stoch, device=device, dtype=dtype))

    # ---------------------------------------------------------------- distributions over z
    def _stats(self, out: torch.Tensor) -> torch.Tensor:
        """Raw layer output -> stats: ``[mean, softplus(std) + min_std]`` or unimix logits ``[..., S K]``, float32
        (also under bf16 autocast, so every sample, KL and state stays float32)."""
        out = out.float()
        if self.latent == "gaussian":
            mean, std = out.chunk(2, -1)
            return torch.cat([mean, F.softplus(std) + self.min_std], -1)
        return unimix_logits(out.unflatten(-1, (self.variables, self.classes)), self.unimix).flatten(-2)

    def sample(self, stats: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """A reparameterised (Gaussian) or straight-through one-hot (categorical) sample ``[..., Z]``.

        ``noise``: standard normal ``[..., S]`` (Gaussian) or uniform ``[0, 1)`` ``[..., S, 1]`` (categorical), drawn
        here when ``None``. Categorical samples invert the CDF: class ``k`` is the number of cumulative probabilities
        below ``u`` (one uniform per variable instead of ``K`` Gumbel draws: 7x cheaper on a CPU at 32x16).
        """
        if self.latent == "gaussian":
            mean, std = stats.chunk(2, -1)
            if self.mean_only:
                return mean
            return mean + std * (torch.randn_like(std) if noise is None else noise)
        logits = stats.unflatten(-1, (self.variables, self.classes))  # [..., S, K]
        probs = softmax(logits)
        if noise is None:
            noise = torch.rand_like(probs[..., :1])
        index = (probs.detach().cumsum(-1) < noise).sum(-1, keepdim=True).clamp_(max=self.classes - 1)
        onehot = torch.zeros_like(logits).scatter_(-1, index, 1.0)  # F.one_hot would check indices on the host
        return (onehot + (probs - probs.detach())).flatten(-2)  # bracket exactly 0: value exactly one-hot

    def mode(self, stats: torch.Tensor) -> torch.Tensor:
        """The most likely ``z``: the mean, or the one-hot argmax per variable."""
        if self.latent == "gaussian":
            return stats.chunk(2, -1)[0]
        logits = stats.unflatten(-1, (self.variables, self.classes))
        return torch.zeros_like(logits).scatter_(-1, logits.argmax(-1, keepdim=True), 1.0).flatten(-2)

    def _noise(self, *shape: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if self.latent == "gaussian":
            return torch.randn(*shape, self.variables, device=device, dtype=dtype)
        return torch.rand(*shape, self.variables, 1, device=device, dtype=dtype)

    def kl(self, stats_q: torch.Tensor, stats_p: torch.Tensor) -> torch.Tensor:
        """``KL(q || p)`` summed over the latent: ``[..., stats] -> [...]``.

        Gaussian: ``sum_i log(s_p/s_q) + (s_q² + (m_q - m_p)²) / (2 s_p²) - 1/2``.
        Categorical: ``sum_{s,k} q_{sk} (log q_{sk} - log p_{sk})``.
        """
        if self.latent == "gaussian":
            return gaussian_kl(*stats_q.chunk(2, -1), *stats_p.chunk(2, -1))
        shape = (self.variables, self.classes)
        return categorical_kl(stats_q.unflatten(-1, shape), stats_p.unflatten(-1, shape))

    # ---------------------------------------------------------------- steps
    def prior(self, deter: torch.Tensor) -> torch.Tensor:
        """Prior stats from ``h`` ``[..., D]`` (any leading dims)."""
        return self._stats(self.prior_out(self.prior_hidden(deter)))

    def posterior(self, deter: torch.Tensor, embed_in: torch.Tensor) -> torch.Tensor:
        """Posterior stats from ``h`` and the projected embedding ``W_e e`` (any leading dims)."""
        return self._stats(self.post_out(self.act(self.post_norm(self.post_in_deter(deter) + embed_in))))

    def img_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor,
                 sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One imagined step: ``(h_{t-1}, z_{t-1}, a_{t-1}) -> (h_t, z_t ~ p(. | h_t))``, shapes ``[N, .]``.

        The prior sample is reparameterised (or straight-through), so gradients flow from ``z_t`` into the action.
        """
        deter = self.transition(deter, stoch, self.transition.action_input(action))
        stats = self.prior(deter)
        return deter, self.sample(stats) if sample else self.mode(stats)

    def obs_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor, embed: torch.Tensor,
                 is_init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One filtering step for acting: ``(h_{t-1}, z_{t-1}, a_{t-1}, e_t) -> (h_t, z_t ~ q)``, shapes ``[N, .]``.

        ``is_init`` (bool ``[N, 1]``) zeroes the previous state and action where an episode starts.
        """
        if is_init is not None:
            keep = (~is_init).to(deter.dtype)
            deter, stoch, action = deter * keep, stoch * keep, action * keep
        deter = self.transition(deter, stoch, self.transition.action_input(action))
        return deter, self.sample(self.posterior(deter, self.post_in_embed(embed)))

    def filter_step(self, deter: torch.Tensor, stoch: torch.Tensor, keep: torch.Tensor, act_in: torch.Tensor,
                    emb_in: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The body of :meth:`observe`'s loop: ``(h_{t-1}, z_{t-1}) -> (h_t, z_t ~ q, stats of q)``, shapes ``[B, .]``.

        ``keep`` ``[B, 1]`` is 0 where an episode starts; ``act_in`` / ``emb_in`` are the projected action and
        embedding of the step, ``noise`` its draw (:meth:`sample`). A pure tensor function, what ``train.compile``
        compiles (:mod:`dreamer_rl.compile`).
        """
        deter = self.transition(deter * keep, stoch * keep, act_in)
        post = self.posterior(deter, emb_in)
        return deter, self.sample(post, noise), post

    def prior_step(self, deter: torch.Tensor, stoch: torch.Tensor, act_in: torch.Tensor, sample: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A planner's rollout step from the projected action ``act_in``: ``(h_k, z_k) -> (h_{k+1}, z_{k+1} ~ p,
        feat_{k+1})``, shapes ``[N, .]`` (:func:`dreamer_rl.planners.rollout.latent_returns`); compiled with the
        other steps by ``train.compile``."""
        deter = self.transition(deter, stoch, act_in)
        stats = self.prior(deter)
        stoch = self.sample(stats) if sample else self.mode(stats)
        return deter, stoch, self.feat(stoch, deter)

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_init: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None) -> RSSMStates:
        """Filter a batch of sequences.

        :param embed: ``[B, T, E]`` observation embeddings ``e_t``.
        :param action: ``[B, T, A]`` the action ``a_{t-1}`` stored with ``o_t``.
        :param is_init: ``[B, T, 1]`` bool, episode starts (state reset before the step).
        :param state: ``(h, z)`` before the first step, ``[B, D], [B, Z]``; zeros if ``None``.
        :returns: :class:`RSSMStates`, all ``[B, T, .]``.
        """
        B, T = embed.shape[:2]
        assert action.shape[:2] == (B, T) and is_init.shape[:2] == (B, T), (
            f"observe: embed {tuple(embed.shape)}, action {tuple(action.shape)}, is_init {tuple(is_init.shape)}")
        deter, stoch = state if state is not None else self.initial((B,), embed.device, embed.dtype)
        keep = (~is_init.bool()).to(embed.dtype)  # [B, T, 1]
        act_in = self.transition.action_input(action * keep).unbind(1)  # T x [B, X]
        emb_in = self.post_in_embed(embed).unbind(1)  # T x [B, H]
        keeps = keep.unbind(1)
        noise = self._noise(B, T, device=embed.device, dtype=embed.dtype).unbind(1)
        deters, stochs, posts = [], [], []
        for t in range(T):
            deter, stoch, post = self.filter_step(deter, stoch, keeps[t], act_in[t], emb_in[t], noise[t])
            deters.append(deter), stochs.append(stoch), posts.append(post)
        deter_bt = torch.stack(deters, 1)  # [B, T, D]
        prior = self.prior(deter_bt)  # [B, T, stats], all steps at once
        return RSSMStates(deter_bt, torch.stack(stochs, 1), torch.stack(posts, 1), prior)
