"""World-model loss (PlaNet, Dreamer V1, V2, V3 by options): reconstruction, reward, KL, optional continuation.

For a batch of stored rows ``[B, T]`` (time alignment in :mod:`dreamer_rl.replay`: row ``t`` holds ``o_t``, the
action ``a_{t-1}`` that led to it, the reward ``r_t`` received with it, ``is_init_t`` and ``terminated_t``):

    (h_t, z_t) ~ q(. | h_{t-1}, z_{t-1}, a_{t-1}, o_t)        posterior filter over T (:meth:`RSSM.observe`)
    L_image  = mean_{b,t} ℓ_obs(o_t, dec(feat_t))           summed over pixels / vector entries (model.obs_loss:
                                                            Gaussian NLL, MSE, or symlog MSE)
    L_reward = mean_{b,t} ℓ_rew(r_t, feat_t)                 Gaussian NLL or symexp two-hot (ScalarHead.loss)
    L_kl     = KL terms of model.kl                          (:func:`dreamer_rl.losses.kl.kl_terms`): ``loss_kl``,
                                                            or ``loss_dyn`` + ``loss_rep`` for V3
    L_pcont  = -mean_{b,t} log Bern(γ (1 - terminated_t) | cont(feat_t))      only with a continuation head

    L = image_scale L_image + reward_scale L_reward + kl_scale L_kl + pcont_scale L_pcont

PlaNet's paper-era terms, each off by default and reported only when on: ``loss_overshooting`` (latent overshooting
over distances 2 .. overshooting + 1, × overshooting_scale), ``loss_overshooting_reward`` (the reward head on the
stop-gradient posteriors, once per overshooting pair, × overshooting_reward_scale) and ``loss_global_kl`` (KL(q || N(0, I)) ×
global_kl_scale) of :mod:`dreamer_rl.losses.overshooting`, and ``loss_tap`` (time-agnostic prediction over the next
tap_horizon rows, × tap_scale) of :mod:`dreamer_rl.losses.tap`.

Only termination (not time-limit truncation) trains the continuation target towards zero.

Replay context (``replay_context=True``, DreamerV3's ``replay_context 1``): the filter starts each slice from the
state stored with its first row, ``(h, z) = (context_deter, context_stoch)[:, 0]`` (see
:func:`dreamer_rl.replay.write_context`), instead of zeros; ``is_init`` still resets it at an episode start.

The batch must be stored rows (above), not TorchRL's transition layout (``o_t, a_t, ("next", r_{t+1}),
("next", o_{t+1})``): a batch carrying ``("next", <observation>)`` or ``("next", "reward")`` is refused with an error
naming :class:`~dreamer_rl.replay.StepRowWriter`, which turns collector output into rows. Pixels may be uint8
``[0, 255]`` or float ``[0, 1]`` (TorchRL's ``ToTensorImage``): both reach the networks on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.objectives.common import LossModule

from dreamer_rl.losses.kl import KLKind, kl_terms
from dreamer_rl.losses.overshooting import global_kl, overshooting_kl, overshooting_reward
from dreamer_rl.losses.tap import tap_loss
from dreamer_rl.rssm import RSSMStates
from dreamer_rl.world_model import WorldModel

ROW_LAYOUT_ERROR = (
    "WorldModelLoss: the batch is in TorchRL's transition layout (it has {key!r}); the world model trains on stored "
    "rows, where row t holds o_t, the action a_(t-1) that led to it and the reward r_t received with it. Turn "
    "collector output into rows with dreamer_rl.replay.StepRowWriter (see examples/standalone_losses.py)")


class WorldModelLoss(LossModule):
    """Dreamer world-model loss as a TorchRL ``LossModule``.

    ``forward(td)`` takes stored rows ``[B, T]`` and returns ``(losses, states)``: a TensorDict of ``loss_image``,
    ``loss_reward``, ``loss_kl`` (and ``loss_pcont``) scalars already scaled, plus ``kl`` (the raw mean KL, not a
    loss), and a TensorDict ``[B, T]`` with the posterior states under ``("posterior", "deter")`` ``[B, T, D]`` and
    ``("posterior", "stoch")`` ``[B, T, S]``, detached: the start states for imagination.

    Example::

        >>> loss = WorldModelLoss(world_model)
        >>> loss.set_keys(observation="observation")   # train from a state vector stored under "observation"
        >>> losses, states = loss(batch)                # batch: [B, T] rows
        >>> sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
    """

    @dataclass
    class _AcceptedKeys:
        """Keys read from the batch (remap with ``set_keys``).

        observation: ``o_t``, uint8 pixels ``[B, T, 3, 64, 64]`` or a float vector ``[B, T, D]``.
        action: ``a_{t-1}`` ``[B, T, A]``. reward: ``r_t`` ``[B, T, 1]``. is_init: ``[B, T, 1]`` bool.
        terminated: ``[B, T, 1]`` bool. posterior_deter / posterior_stoch: where the posterior states are written
        (detached). posterior_feat: where ``feat = [z, h]`` ``[B, T, F]`` is written, detached unless
        :attr:`feat_graph` is set (V3's replay-value loss then trains the world model through it).
        vector_observation: the vector part ``[B, T, D]`` beside pixels (read only by a model with ``vector_dim``).
        context_deter / context_stoch: the stored start state ``[B, T, D]`` / ``[B, T, S]`` of each row (read only
        with :attr:`replay_context`, at ``t = 0``).
        """

        observation: NestedKey = "pixels"
        vector_observation: NestedKey = "observation"
        action: NestedKey = "action"
        reward: NestedKey = "reward"
        is_init: NestedKey = "is_init"
        terminated: NestedKey = "terminated"
        posterior_deter: NestedKey = ("posterior", "deter")
        posterior_stoch: NestedKey = ("posterior", "stoch")
        posterior_feat: NestedKey = ("posterior", "feat")
        context_deter: NestedKey = "context_deter"
        context_stoch: NestedKey = "context_stoch"

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys

    def __init__(self, world_model: WorldModel, *, kl_kind: KLKind = "free_nats", free_nats: float = 3.0,
                 kl_scale: float = 1.0, image_scale: float = 1.0, reward_scale: float = 1.0,
                 pcont_scale: float = 10.0, discount: float = 0.99, kl_balance: float = 0.8, free_avg: bool = True,
                 dyn_scale: float = 1.0, rep_scale: float = 0.1, overshooting: int = 0,
                 overshooting_scale: float = 1.0, global_kl_scale: float = 0.0, tap_scale: float = 0.0,
                 tap_horizon: int = 10, overshooting_reward_scale: float = 0.0, replay_context: bool = False) -> None:
        super().__init__()
        self.world_model = world_model
        self.kl_kind, self.free_nats, self.kl_scale = kl_kind, free_nats, kl_scale
        self.kl_options = dict(balance=kl_balance, free_avg=free_avg, dyn_scale=dyn_scale, rep_scale=rep_scale)
        self.image_scale, self.reward_scale, self.pcont_scale = image_scale, reward_scale, pcont_scale
        self.discount = discount
        self.overshooting, self.overshooting_scale = overshooting, overshooting_scale
        self.overshooting_reward_scale = overshooting_reward_scale
        self.global_kl_scale, self.tap_scale, self.tap_horizon = global_kl_scale, tap_scale, tap_horizon
        #: write the posterior features under ``posterior_feat`` with their graph (else detached)
        self.feat_graph = False
        #: start each slice from its first row's stored context instead of the zero state
        self.replay_context = replay_context

    @property
    def in_keys(self) -> list[NestedKey]:  # noqa: D102
        k = self.tensor_keys
        keys = [k.observation, k.action, k.reward, k.is_init]
        if self.world_model.vector_dim:
            keys.append(k.vector_observation)
        if self.replay_context:
            keys += [k.context_deter, k.context_stoch]
        return keys + [k.terminated] if self.world_model.pcont is not None else keys

    @property
    def out_keys(self) -> list[str]:  # noqa: D102
        kl = ["loss_dyn", "loss_rep"] if self.kl_kind == "dyn_rep" else ["loss_kl"]
        pcont = ["loss_pcont"] if self.world_model.pcont is not None else []
        vector = ["loss_vector"] if self.world_model.vector_dim else []
        os_reward = self.overshooting > 0 and self.overshooting_reward_scale > 0
        planet = [k for k, on in (("loss_overshooting", self.overshooting > 0), ("loss_overshooting_reward",
                  os_reward), ("loss_global_kl", self.global_kl_scale > 0), ("loss_tap", self.tap_scale > 0)) if on]
        extra = [f"loss_{k}" for k in self.world_model.rssm.extra_loss_keys]  # the transition model's own terms
        return ["loss_image", *vector, "loss_reward", *kl, *planet, *extra, *pcont, "kl"]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    def _check_layout(self, tensordict: TensorDictBase) -> None:
        keys = self.tensor_keys
        if "next" not in tensordict.keys():
            return
        for key in (keys.observation, keys.reward):
            nested = ("next", *key) if isinstance(key, tuple) else ("next", key)
            if nested in tensordict.keys(include_nested=True):
                raise ValueError(ROW_LAYOUT_ERROR.format(key=nested))

    def _planet_losses(self, states: RSSMStates, action: torch.Tensor, is_init: torch.Tensor, target: torch.Tensor,
                       pred: torch.Tensor, feat: torch.Tensor, reward: torch.Tensor) -> dict[str, torch.Tensor]:
        """The enabled ones of ``loss_overshooting``, ``loss_overshooting_reward``, ``loss_global_kl``,
        ``loss_tap`` (scaled)."""
        rssm, out = self.world_model.rssm, {}
        if self.overshooting > 0:
            value = overshooting_kl(rssm, states.deter, states.stoch, states.post, action.to(torch.float32),
                                    is_init, amount=self.overshooting, free_nats=self.free_nats)
            out["loss_overshooting"] = self.overshooting_scale * value
        if self.overshooting > 0 and self.overshooting_reward_scale > 0:
            nll = self.world_model.reward.loss(feat.detach(), reward).reshape(feat.shape[:2])
            value = overshooting_reward(nll, is_init, amount=self.overshooting)
            out["loss_overshooting_reward"] = self.overshooting_reward_scale * value
        if self.global_kl_scale > 0:
            out["loss_global_kl"] = self.global_kl_scale * global_kl(rssm, states.post)
        if self.tap_scale > 0:
            tap = tap_loss(pred, target, is_init, horizon=self.tap_horizon, kind=self.world_model.obs_loss,
                           event_dims=3 if self.world_model.pixels else 1)
            out["loss_tap"] = self.tap_scale * tap
        return out

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDict]:  # noqa: D102
        keys = self.tensor_keys
        wm = self.world_model
        self._check_layout(tensordict)
        obs = tensordict.get(keys.observation)
        action = tensordict.get(keys.action)
        reward = tensordict.get(keys.reward).to(torch.float32)
        is_init = tensordict.get(keys.is_init)
        B, T = tensordict.shape[:2]
        target = wm.target(obs)  # float, converted once: [B, T, 3, 64, 64] in [-0.5, 0.5] or [B, T, D]
        vector = tensordict.get(keys.vector_observation) if wm.vector_dim else None
        start = None
        if self.replay_context:
            deter, stoch = tensordict.get(keys.context_deter, None), tensordict.get(keys.context_stoch, None)
            if deter is None or stoch is None:
                raise KeyError(f"WorldModelLoss(replay_context=True) reads each slice's start state from "
                               f"{keys.context_deter!r} and {keys.context_stoch!r}; store rows with "
                               f"StepRowWriter(context=True), or set train.replay_context 0")
            start = (deter[:, 0].to(target.dtype), stoch[:, 0].to(target.dtype))
        states = wm.observe(target, action, is_init, start, preprocessed=True, vector=vector)
        feat = wm.rssm.feat(states.stoch, states.deter)  # [B, T, F]
        pred = wm.decoder(feat)
        image = wm.obs_nll(target, pred)
        reward_loss = wm.reward.loss(feat, reward).mean()
        kl, kl_value = kl_terms(states.post, states.prior, kind=self.kl_kind, free_nats=self.free_nats,
                                kl=wm.rssm.kl, **self.kl_options)
        losses = {"loss_image": self.image_scale * image, "loss_reward": self.reward_scale * reward_loss}
        if vector is not None:
            losses["loss_vector"] = self.image_scale * wm.vector_nll(vector, feat)
        losses.update({f"loss_{k}": self.kl_scale * v for k, v in kl.items()})
        losses.update(self._planet_losses(states, action, is_init, target, pred, feat, reward))
        losses.update({f"loss_{k}": v for k, v in wm.rssm.extra_losses(states).items()})  # model's own terms
        losses["kl"] = kl_value
        if wm.pcont is not None:
            target = self.discount * (~tensordict.get(keys.terminated).bool()).to(torch.float32)
            pcont = F.binary_cross_entropy_with_logits(wm.pcont(feat), target)
            losses["loss_pcont"] = self.pcont_scale * pcont
        out = TensorDict({keys.posterior_deter: states.deter.detach(), keys.posterior_stoch: states.stoch.detach(),
                          keys.posterior_feat: feat if self.feat_graph else feat.detach()}, batch_size=[B, T])
        return TensorDict(losses, batch_size=[]), out
