"""The RSSM as TensorDict modules, composable like TorchRL's ``RSSMPrior`` / ``RSSMPosterior`` / ``RSSMRollout``.

Thin wrappers over the plain-tensor functions of :class:`dreamer_rl.rssm.RSSM` and :func:`dreamer_rl.imagine.imagine`
(the hot loops stay plain tensors; TensorDicts only at the boundary). Each module declares ``in_keys`` / ``out_keys``
and takes overrides of them; with the same seed each gives exactly the tensors of the plain function it wraps.

Keys follow TorchRL's Dreamer modules: ``"state"`` is the stochastic latent ``z`` (our ``stoch``), ``"belief"`` the
deterministic state ``h`` (our ``deter``), ``"encoded_latents"`` the observation embedding ``e``. Shapes, with
``Z`` the width of ``z``, ``D`` of ``h``, ``A`` actions, ``E`` the embedding, ``S`` latent units / variables, ``K``
classes and ``*`` any batch dims:

================================================  ==============  ==============================================
key                                               shape           meaning
================================================  ==============  ==============================================
``"state"``, ``"belief"``                         ``[*, Z]``,     ``z_{t-1}``, ``h_{t-1}``: the state before
                                                  ``[*, D]``      the step
``"action"``                                      ``[*, A]``      the action fed to the transition with them
``("next", "belief")``                            ``[*, D]``      ``h_t = f(h_{t-1}, z_{t-1}, a)``
``("next", "state")``                             ``[*, Z]``      ``z_t``: a prior sample (prior module), a
                                                                  posterior sample (posterior, rollout)
``("next", "prior_mean" | "prior_std")``          ``[*, S]``      ``p(z_t | h_t)``, Gaussian latent
``("next", "prior_logits")``                      ``[*, S, K]``   ``p(z_t | h_t)``, categorical latent
``("next", "posterior_mean" | "posterior_std")``  ``[*, S]``      ``q(z_t | h_t, e_t)``, Gaussian latent
``("next", "posterior_logits")``                  ``[*, S, K]``   ``q(z_t | h_t, e_t)``, categorical latent
``("next", "encoded_latents")``                   ``[*, E]``      ``e_t = enc(o_t)``
``"is_init"``                                     ``[*, 1]`` bool  reset before the step (rollout only)
================================================  ==============  ==============================================

Modules (each ``nn.Module`` passed in is a submodule, so ``.to(device)`` and ``.parameters()`` work):

- :class:`RSSMPriorModule` ``["state", "belief", "action"] -> [<prior stats>, ("next", "state"),
  ("next", "belief")]``: :meth:`RSSM.img_step` (transition, prior, sample) also writing the prior's stats.
- :class:`RSSMPosteriorModule` ``[("next", "belief"), ("next", "encoded_latents")] -> [<posterior stats>,
  ("next", "state")]``: :meth:`RSSM.posterior` and :meth:`RSSM.sample`.
- :class:`EncoderModule` ``[("next", "pixels" | "observation")] -> [("next", "encoded_latents")]``:
  :meth:`WorldModel.embed`.
- :class:`RSSMRolloutModule` filters a ``[*B, T]`` TensorDict over its last dim with :meth:`RSSM.observe`.
- :class:`ImagineModule` rolls the prior forward ``H`` steps from start states with :func:`imagine`, returning a
  ``[*B, H]`` TensorDict in the layout of TorchRL's ``env.rollout``.

Time alignment of the rollout. Step ``t`` consumes the pair ``(action[t], ("next", "encoded_latents")[t])``:
``h_t = f(h_{t-1}, z_{t-1}, action[t])``, then ``z_t ~ q(. | h_t, e[t])``; where ``is_init[t]`` is set the previous
state and ``action[t]`` are zeroed first. The state before step 0 is ``("state", "belief")[..., 0, :]`` (zeros when
absent). On TorchRL's transition layout (``o_t, a_t, ("next", o_{t+1})``, encoder on ``("next", obs)``) this is what
TorchRL's ``RSSMRolloutV3`` computes. On our stored rows (row ``t`` holds ``o_t`` and the action ``a_{t-1}`` that
led to it, see :mod:`dreamer_rl.replay`) encode the row's own observation into ``("next", "encoded_latents")``
(``EncoderModule(wm, in_keys=["observation"])``) and the rollout equals :meth:`RSSM.observe` on the rows, i.e. what
:class:`~dreamer_rl.losses.WorldModelLoss` filters.

Where we differ from TorchRL:

- categorical logits are the log of the unimix-mixed probabilities (normalised; ``softmax`` of them is the
  distribution sampled), whereas TorchRL's ``prior_logits`` are raw and its V3 loss mixes in ``unimix`` itself;
- the rollout runs the plain-tensor scan of :meth:`RSSM.observe` (one projection of all embeddings, noise drawn
  once, the prior head over ``[B, T]`` after the loop) instead of calling the two modules per step, and writes its
  outputs into the input TensorDict (like any ``TensorDictModule``) rather than returning a new stacked one
  (like TorchRL's V3 rollout it writes back the state, belief and action each step consumed, zeroed at resets);
- imagination takes a plain ``feat -> action`` callable (``feat = cat([state, belief])``, stop-gradiented as
  in Dreamer) instead of a TensorDict actor, and runs without an env (no reward / done; add heads after it).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from dreamer_rl.imagine import imagine
from dreamer_rl.rssm import RSSM
from dreamer_rl.world_model import WorldModel

__all__ = [
    "EncoderModule",
    "ImagineModule",
    "RSSMPosteriorModule",
    "RSSMPriorModule",
    "RSSMRolloutModule",
    "join_stats",
    "split_stats",
    "stats_keys",
]


def stats_keys(rssm: RSSM, which: str) -> list[NestedKey]:
    """TorchRL's keys of ``which`` (``"prior"`` / ``"posterior"``) stats: mean and std, or logits."""
    if rssm.latent == "gaussian":
        return [("next", f"{which}_mean"), ("next", f"{which}_std")]
    return [("next", f"{which}_logits")]


def split_stats(rssm: RSSM, stats: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Our one stats tensor -> TorchRL's: ``(mean [*, S], std [*, S])`` or ``(logits [*, S, K],)``."""
    if rssm.latent == "gaussian":
        return tuple(stats.chunk(2, -1))
    return (stats.unflatten(-1, (rssm.variables, rssm.classes)),)


def join_stats(rssm: RSSM, *parts: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_stats`: back to ``[*, 2S]`` / ``[*, S K]`` for :meth:`RSSM.kl`, :meth:`RSSM.sample`."""
    if rssm.latent == "gaussian":
        return torch.cat(parts, -1)
    return parts[0].flatten(-2)


def _keys(given: Sequence[NestedKey] | None, default: list[NestedKey], what: str) -> list[NestedKey]:
    if given is None:
        return default
    given = list(given)
    if len(given) != len(default):
        raise ValueError(f"{what}: expected {len(default)} keys like {default}, got {given}")
    return given


class _PriorStep(nn.Module):
    def __init__(self, rssm: RSSM, sample: bool) -> None:
        super().__init__()
        self.rssm, self.sample = rssm, sample

    def forward(self, state: torch.Tensor, belief: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rssm = self.rssm  # the calls of RSSM.img_step, keeping the prior's stats
        belief = rssm.transition(belief, state, rssm.transition.action_input(action.to(belief.dtype)))
        stats = rssm.prior(belief)
        state = rssm.sample(stats) if self.sample else rssm.mode(stats)
        return (*split_stats(rssm, stats), state, belief)


class RSSMPriorModule(TensorDictModule):
    """One imagined step, :meth:`RSSM.img_step`: ``(z_{t-1}, h_{t-1}, a) -> (p(z_t | h_t), z_t ~ p, h_t)``.

    Default keys: ``in_keys = ["state", "belief", "action"]``, ``out_keys = [("next", "prior_mean"),
    ("next", "prior_std"), ("next", "state"), ("next", "belief")]`` (Gaussian) or ``[("next", "prior_logits"),
    ("next", "state"), ("next", "belief")]`` (categorical): TorchRL's ``RSSMPrior`` / ``RSSMPriorV3`` wiring.

    :param sample: draw ``z_t`` (reparameterised / straight-through); ``False`` takes the mode.
    """

    def __init__(self, rssm: RSSM, *, in_keys: Sequence[NestedKey] | None = None,
                 out_keys: Sequence[NestedKey] | None = None, sample: bool = True) -> None:
        in_keys = _keys(in_keys, ["state", "belief", "action"], "RSSMPriorModule in_keys")
        out_keys = _keys(out_keys, [*stats_keys(rssm, "prior"), ("next", "state"), ("next", "belief")],
                         "RSSMPriorModule out_keys")
        super().__init__(_PriorStep(rssm, sample), in_keys=in_keys, out_keys=out_keys)

    @property
    def rssm(self) -> RSSM:
        return self.module.rssm


class _PosteriorStep(nn.Module):
    def __init__(self, rssm: RSSM, sample: bool) -> None:
        super().__init__()
        self.rssm, self.sample = rssm, sample

    def forward(self, belief: torch.Tensor, embed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rssm = self.rssm  # the calls of RSSM.obs_step after the transition
        stats = rssm.posterior(belief, rssm.post_in_embed(embed))
        state = rssm.sample(stats) if self.sample else rssm.mode(stats)
        return (*split_stats(rssm, stats), state)


class RSSMPosteriorModule(TensorDictModule):
    """The posterior, :meth:`RSSM.posterior` + :meth:`RSSM.sample`: ``(h_t, e_t) -> (q(z_t | h_t, e_t), z_t ~ q)``.

    Default keys: ``in_keys = [("next", "belief"), ("next", "encoded_latents")]``, ``out_keys =
    [("next", "posterior_mean"), ("next", "posterior_std"), ("next", "state")]`` (Gaussian) or
    ``[("next", "posterior_logits"), ("next", "state")]`` (categorical): TorchRL's ``RSSMPosterior`` wiring.

    Composed after :class:`RSSMPriorModule` it overwrites the prior sample ``("next", "state")`` with the
    posterior's, as in TorchRL. (For acting, :meth:`RSSM.obs_step` skips the prior sample altogether.)
    """

    def __init__(self, rssm: RSSM, *, in_keys: Sequence[NestedKey] | None = None,
                 out_keys: Sequence[NestedKey] | None = None, sample: bool = True) -> None:
        in_keys = _keys(in_keys, [("next", "belief"), ("next", "encoded_latents")], "RSSMPosteriorModule in_keys")
        out_keys = _keys(out_keys, [*stats_keys(rssm, "posterior"), ("next", "state")],
                         "RSSMPosteriorModule out_keys")
        super().__init__(_PosteriorStep(rssm, sample), in_keys=in_keys, out_keys=out_keys)

    @property
    def rssm(self) -> RSSM:
        return self.module.rssm


class _Embed(nn.Module):
    def __init__(self, world_model: WorldModel) -> None:
        super().__init__()
        self.world_model = world_model

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.world_model.embed(obs)


class EncoderModule(TensorDictModule):
    """The observation encoder, :meth:`WorldModel.embed`: ``o [*, *obs_shape] -> e [*, E]``.

    Default keys: ``in_keys = [("next", "pixels")]`` (pixel model; uint8 or float ``[0, 1]`` pixels) or
    ``[("next", "observation")]`` (state-vector model), ``out_keys = [("next", "encoded_latents")]``, TorchRL's
    wiring for its transition layout. On our stored rows pass ``in_keys=["pixels"]`` / ``["observation"]``.
    """

    def __init__(self, world_model: WorldModel, *, in_keys: Sequence[NestedKey] | None = None,
                 out_keys: Sequence[NestedKey] | None = None) -> None:
        obs_key = "pixels" if world_model.pixels else "observation"
        in_keys = _keys(in_keys, [("next", obs_key)], "EncoderModule in_keys")
        out_keys = _keys(out_keys, [("next", "encoded_latents")], "EncoderModule out_keys")
        super().__init__(_Embed(world_model), in_keys=in_keys, out_keys=out_keys)


class RSSMRolloutModule(TensorDictModuleBase):
    """Filter a ``[*B, T]`` TensorDict over its last dim with :meth:`RSSM.observe` (see the module docstring).

    Takes its keys from ``prior`` and ``posterior`` (which must wrap the same :class:`RSSM`), as TorchRL's
    ``RSSMRollout(prior, posterior)`` does. Reads ``prior``'s ``state``, ``belief`` (only ``[..., 0, :]``, the
    state before the first step; zeros when absent) and ``action`` ``[*B, T, A]``, ``posterior``'s embedding
    ``[*B, T, E]`` and ``reset_key`` (``[*B, T, 1]`` or ``[*B, T]`` bool; no resets when absent or ``None``).
    Writes, all ``[*B, T, .]``: ``state``, ``belief`` and ``action`` as each step consumed them (zeroed where
    ``reset_key`` is set, as TorchRL's ``RSSMRolloutV3``), so every row is a self-contained transition; the prior's
    and the posterior's stats, ``("next", "state")`` (posterior samples) and ``("next", "belief")``.

    :param in_keys: override of ``[state, belief, action, embedding, reset_key]`` (without ``reset_key`` when it
        is ``None``).
    :param out_keys: override of ``[state, belief, action, *prior stats, *posterior stats, next state,
        next belief]``.
    """

    def __init__(self, prior: RSSMPriorModule, posterior: RSSMPosteriorModule, *,
                 reset_key: NestedKey | None = "is_init", in_keys: Sequence[NestedKey] | None = None,
                 out_keys: Sequence[NestedKey] | None = None) -> None:
        super().__init__()
        if not isinstance(prior, RSSMPriorModule) or not isinstance(posterior, RSSMPosteriorModule):
            raise TypeError("RSSMRolloutModule(prior, posterior): pass an RSSMPriorModule and an RSSMPosteriorModule")
        if prior.rssm is not posterior.rssm:
            raise ValueError("RSSMRolloutModule: prior and posterior must wrap the same RSSM")
        self.rssm = prior.rssm
        n_stats = len(stats_keys(self.rssm, "prior"))
        state, belief, action = prior.in_keys
        prior_stats, next_belief = list(prior.out_keys[:n_stats]), prior.out_keys[-1]
        post_stats, next_state = list(posterior.out_keys[:n_stats]), posterior.out_keys[-1]
        embed = posterior.in_keys[1]
        resets = [] if reset_key is None else [reset_key]
        self.in_keys = _keys(in_keys, [state, belief, action, embed, *resets], "RSSMRolloutModule in_keys")
        self.out_keys = _keys(out_keys, [state, belief, action, *prior_stats, *post_stats, next_state, next_belief],
                              "RSSMRolloutModule out_keys")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:  # noqa: D102
        rssm = self.rssm
        state_key, belief_key, action_key, embed_key, *reset_key = self.in_keys
        embed = tensordict.get(embed_key)
        lead = embed.shape[:-1]  # [*B, T]
        embed = embed.reshape(-1, *lead[-1:], embed.shape[-1])  # [N, T, E]
        n, t = embed.shape[:2]
        action = tensordict.get(action_key).reshape(n, t, -1).to(embed.dtype)
        reset = tensordict.get(reset_key[0], None) if reset_key else None
        reset = (torch.zeros(n, t, 1, dtype=torch.bool, device=embed.device) if reset is None
                 else reset.reshape(n, t, 1).bool())
        state0, belief0 = tensordict.get(state_key, None), tensordict.get(belief_key, None)
        if state0 is None or belief0 is None:
            belief0, state0 = rssm.initial((n,), embed.device, embed.dtype)
        else:
            state0, belief0 = state0.reshape(n, t, -1)[:, 0], belief0.reshape(n, t, -1)[:, 0]
        states = rssm.observe(embed, action, reset, state=(belief0, state0))
        keep = (~reset).to(embed.dtype)  # the state each step starts from, zeroed where an episode starts
        prev_belief = torch.cat([belief0[:, None], states.deter[:, :-1]], 1) * keep
        prev_state = torch.cat([state0[:, None], states.stoch[:, :-1]], 1) * keep
        values = [prev_state, prev_belief, action * keep, *split_stats(rssm, states.prior),
                  *split_stats(rssm, states.post), states.stoch, states.deter]
        for key, value in zip(self.out_keys, values):
            tensordict.set(key, value.reshape(*lead, *value.shape[2:]))
        return tensordict


class ImagineModule(TensorDictModuleBase):
    """Imagine ``horizon`` steps from start states with :func:`dreamer_rl.imagine.imagine`.

    Reads ``in_keys = ["state", "belief"]`` (``[*B, Z]``, ``[*B, D]``; detach them if the rollout must not reach
    the model that produced them) and returns a new TensorDict ``[*B, H]`` in the layout of TorchRL's
    ``env.rollout``: ``out_keys = ["state", "belief", "action", ("next", "state"), ("next", "belief")]``, step
    ``k`` going ``s_k --a_k--> s_{k+1}`` (``s_0`` the start). Gradients flow from every state into the actions
    through the dynamics; the actor's input is stop-gradiented (Dreamer V1).

    :param actor: ``feat [N, Z + D] -> action [N, A]`` (our actors sample by default), e.g. ``agent.actor``.
    """

    def __init__(self, rssm: RSSM, actor: Callable[[torch.Tensor], torch.Tensor], horizon: int, *,
                 in_keys: Sequence[NestedKey] | None = None, out_keys: Sequence[NestedKey] | None = None) -> None:
        super().__init__()
        if horizon < 1:
            raise ValueError(f"ImagineModule: horizon must be >= 1, got {horizon}")
        self.rssm, self.actor, self.horizon = rssm, actor, horizon
        self.in_keys = _keys(in_keys, ["state", "belief"], "ImagineModule in_keys")
        self.out_keys = _keys(out_keys, ["state", "belief", "action", ("next", "state"), ("next", "belief")],
                              "ImagineModule out_keys")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:  # noqa: D102
        state, belief = (tensordict.get(k) for k in self.in_keys)
        batch = state.shape[:-1]
        deters, stochs, actions = imagine(self.rssm, self.actor, belief.reshape(-1, belief.shape[-1]),
                                          state.reshape(-1, state.shape[-1]), self.horizon)

        def out(x: torch.Tensor) -> torch.Tensor:  # [H, N, .] -> [*B, H, .]
            return x.transpose(0, 1).reshape(*batch, self.horizon, x.shape[-1])

        values = [out(stochs[:-1]), out(deters[:-1]), out(actions), out(stochs[1:]), out(deters[1:])]
        return TensorDict(dict(zip(self.out_keys, values)), batch_size=[*batch, self.horizon], device=state.device)
