"""World-model loss (Dreamer V1 / PlaNet): reconstruction, reward, KL with free nats, optional continuation.

For a batch of stored rows ``[B, T]`` (time alignment in :mod:`dreamer_rl.replay`: row ``t`` holds ``o_t``, the
action ``a_{t-1}`` that led to it, the reward ``r_t`` received with it, ``is_init_t`` and ``terminated_t``):

    (h_t, z_t) ~ q(. | h_{t-1}, z_{t-1}, a_{t-1}, o_t)        posterior filter over T (:meth:`RSSM.observe`)
    L_image  = -mean_{b,t} log N(o_t | dec(feat_t), 1)      summed over pixels / vector entries
    L_reward = -mean_{b,t} log N(r_t | rew(feat_t), 1)
    L_kl     = max(mean_{b,t} KL(q_t || p_t), free_nats)     (:func:`dreamer_rl.losses.kl.kl_loss`)
    L_pcont  = -mean_{b,t} log Bern(γ (1 - terminated_t) | cont(feat_t))      only with a continuation head

    L = image_scale L_image + reward_scale L_reward + kl_scale L_kl + pcont_scale L_pcont

Only termination (not time-limit truncation) trains the continuation target towards zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.objectives.common import LossModule

from dreamer_rl.losses.kl import KLKind, kl_loss
from dreamer_rl.nets.distributions import mean_gaussian_nll
from dreamer_rl.world_model import WorldModel


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
        terminated: ``[B, T, 1]`` bool. posterior_deter / posterior_stoch: where the posterior states are written.
        """

        observation: NestedKey = "pixels"
        action: NestedKey = "action"
        reward: NestedKey = "reward"
        is_init: NestedKey = "is_init"
        terminated: NestedKey = "terminated"
        posterior_deter: NestedKey = ("posterior", "deter")
        posterior_stoch: NestedKey = ("posterior", "stoch")

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys

    def __init__(self, world_model: WorldModel, *, kl_kind: KLKind = "free_nats", free_nats: float = 3.0,
                 kl_scale: float = 1.0, image_scale: float = 1.0, reward_scale: float = 1.0,
                 pcont_scale: float = 10.0, discount: float = 0.99) -> None:
        super().__init__()
        self.world_model = world_model
        self.kl_kind, self.free_nats, self.kl_scale = kl_kind, free_nats, kl_scale
        self.image_scale, self.reward_scale, self.pcont_scale = image_scale, reward_scale, pcont_scale
        self.discount = discount

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    def forward(self, tensordict: TensorDictBase) -> tuple[TensorDict, TensorDict]:  # noqa: D102
        keys = self.tensor_keys
        wm = self.world_model
        obs = tensordict.get(keys.observation)
        action = tensordict.get(keys.action)
        reward = tensordict.get(keys.reward).to(torch.float32)
        is_init = tensordict.get(keys.is_init)
        B, T = tensordict.shape[:2]
        target = wm.target(obs)  # float, converted once: [B, T, 3, 64, 64] in [-0.5, 0.5] or [B, T, D]
        states = wm.observe(target, action, is_init)
        feat = wm.rssm.feat(states.stoch, states.deter)  # [B, T, F]
        image = mean_gaussian_nll(target, wm.decoder(feat), 3 if wm.pixels else 1)
        reward_loss = mean_gaussian_nll(reward, wm.reward(feat), 1)
        kl, kl_value = kl_loss(states.post_mean, states.post_std, states.prior_mean, states.prior_std,
                               kind=self.kl_kind, free_nats=self.free_nats)
        losses = {"loss_image": self.image_scale * image, "loss_reward": self.reward_scale * reward_loss,
                  "loss_kl": self.kl_scale * kl, "kl": kl_value}
        if wm.pcont is not None:
            target = self.discount * (~tensordict.get(keys.terminated).bool()).to(torch.float32)
            pcont = F.binary_cross_entropy_with_logits(wm.pcont(feat), target)
            losses["loss_pcont"] = self.pcont_scale * pcont
        out = TensorDict({keys.posterior_deter: states.deter.detach(), keys.posterior_stoch: states.stoch.detach()},
                         batch_size=[B, T])
        return TensorDict(losses, batch_size=[]), out
