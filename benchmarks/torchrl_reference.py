"""TorchRL's own DreamerV1 update, assembled the way TorchRL's sota script does it.

This is the *reference* half of the update-speed benchmark: one full DreamerV1
gradient update built only from TorchRL / tensordict classes, so that our own
implementation can be timed against it on identical sizes.

Where the assembly comes from
-----------------------------
Everything below mirrors ``sota-implementations/dreamer/dreamer_utils.py``
(``make_dreamer``, ``_dreamer_make_world_model``, ``_dreamer_make_mbenv``,
``_dreamer_make_actor_sim``, ``_dreamer_make_value_model``) and the training
loop of ``sota-implementations/dreamer/dreamer.py`` as shipped with torchrl
0.14.1, with these deliberate differences:

* no real environment: the specs the sota script copies from a DMControl
  ``cheetah-run`` env (pixels 3x64x64 in [0, 1], 6-dim action in [-1, 1],
  1-dim reward, plus the ``state``/``belief`` ``TensorDictPrimer``) come from a
  tiny spec-only stand-in env (``_SpecOnlyPixelEnv``);
* fp32, eager (no ``torch.compile``, no autocast, no fused Adam) - the sota
  config defaults to bf16 autocast + inductor on CUDA;
* Adam ``eps=1e-4`` as in the Dreamer paper (the sota script leaves the
  default ``1e-8``); lrs 6e-4 (model) / 8e-5 (actor, value), grad-clip 100,
  gamma 0.99, lambda 0.95, free nats 3, horizon 15 - as the sota config.

What one ``update(batch)`` does (exactly the sota loop body, minus logging)
---------------------------------------------------------------------------
1. ``DreamerModelLoss(world_model)(batch)``: ``ObsEncoder`` on
   ``("next", "pixels")`` [B*T conv forward], ``RSSMRollout`` (python loop over
   T of ``RSSMPrior`` (``nn.GRUCell``) + ``RSSMPosterior``), ``ObsDecoder``
   (wrapped in an ``IndependentNormal`` ``ProbabilisticTensorDictSequential``)
   and the reward ``MLP``; loss = KL(free nats) + reco(l2, summed over CHW) +
   reward(l2). ``zero_grad`` / ``backward`` / ``clip_grad_norm_(100)`` / Adam
   step on ``world_model.parameters()``.
2. ``DreamerActorLoss(actor, value, DreamerEnv)(sampled.reshape(-1))``: starts
   from every (B*T) posterior ``state``/``belief`` (detached), rolls the
   ``DreamerEnv`` (``RSSMPrior`` + reward ``MLP``) for ``horizon`` steps with
   the ``TanhNormal`` ``DreamerActor`` under ``ExplorationType.RANDOM``
   while the env's params are held out (``hold_out_net``, i.e.
   ``requires_grad_(False)`` on the RSSM prior + reward model), evaluates the
   value model (also held out), TD(lambda) targets (vectorised), discounted
   negative return. ``backward`` / clip / Adam step on the actor params.
3. ``DreamerValueLoss(value)(fake_data)``: value MLP on the detached
   imagined states vs. the detached lambda targets, discounted l2.
   ``backward`` / clip / Adam step on the value params.

Batch layout
------------
``make_batch()`` returns what the sota ``TensorDictReplayBuffer`` (SliceSampler
over ``LazyMemmapStorage``, ``reshape(-1, batch_length)``) yields for a pixel
DMControl env, restricted to the keys the losses read plus root ``pixels``
(which the sota buffer stores too and which ``RSSMRollout`` unbinds / restacks
along with everything else): batch shape ``[B, T]``, keys ``pixels``,
``action``, ``state`` (zeros, TensorDictPrimer default), ``belief`` (zeros),
``done``, ``terminated`` and ``("next", "pixels" | "reward" | "done" |
"terminated")``. Pixels are float32 in [0, 1] (``ToTensorImage``), actions in
[-1, 1].
"""

from __future__ import annotations

import contextlib

from collections.abc import Callable

import torch
import torch.nn as nn
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictSequential,
)
from torch.nn.utils import clip_grad_norm_
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase, TensorDictPrimer, TransformedEnv
from torchrl.envs.model_based.dreamer import DreamerEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import (
    DreamerActor,
    IndependentNormal,
    MLP,
    ObsDecoder,
    ObsEncoder,
    RSSMPosterior,
    RSSMPrior,
    RSSMRollout,
    SafeModule,
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
    SafeSequential,
    TanhNormal,
    WorldModelWrapper,
)
from torchrl.objectives.dreamer import (
    DreamerActorLoss,
    DreamerModelLoss,
    DreamerValueLoss,
)

__all__ = ["build_torchrl_update", "TorchRLDreamerUpdate"]

IMAGE_SIZE = 64  # ObsDecoder's default kernels [5, 5, 6, 6] always emit 64x64
IN_CHANNELS = 3

# sota config (sota-implementations/dreamer/config.yaml)
GRAD_CLIP = 100.0
WORLD_MODEL_LR = 6e-4
ACTOR_LR = 8e-5
VALUE_LR = 8e-5
ADAM_EPS = 1e-4  # Dreamer paper; the sota script uses torch's default 1e-8
GAMMA = 0.99
LMBDA = 0.95


class _SpecOnlyPixelEnv(EnvBase):
    """Spec-only stand-in for the DMControl pixel env the sota script probes.

    Only its specs are used (``DreamerEnv.set_specs_from_env`` copies them);
    ``_step``/``_reset`` exist so the class is instantiable and produce random
    data with the right layout.
    """

    def __init__(self, action_dim: int, device="cpu"):
        super().__init__(device=device, batch_size=torch.Size([]))
        self.observation_spec = Composite(
            pixels=Bounded(
                0.0, 1.0, (IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE), device=device
            ),
            shape=(),
        )
        self.action_spec = Bounded(-1.0, 1.0, (action_dim,), device=device)
        self.reward_spec = Unbounded((1,), device=device)

    def _reset(self, tensordict=None, **kwargs):
        td = self.observation_spec.rand()
        td.update(self.full_done_spec.zero())
        return td

    def _step(self, tensordict):
        td = self.observation_spec.rand()
        td.update(self.full_done_spec.zero())
        td.set("reward", self.reward_spec.rand())
        return td

    def _set_seed(self, seed):
        return seed


def _proof_env(stoch: int, deter: int, action_dim: int, device) -> TransformedEnv:
    """The env whose specs the sota script hands to ``DreamerEnv`` (``_make_env``)."""
    env = TransformedEnv(_SpecOnlyPixelEnv(action_dim, device=device))
    env.append_transform(
        TensorDictPrimer(
            random=False,
            default_value=0,
            expand_specs=True,
            state=Unbounded(shape=(stoch,)),
            belief=Unbounded(shape=(deter,)),
        )
    )
    return env


def _make_world_model(encoder, decoder, rssm_prior, rssm_posterior, reward_module):
    """``_dreamer_make_world_model`` (pixels, ``use_scan=False``, no compile)."""
    rssm_rollout = RSSMRollout(
        TensorDictModule(
            rssm_prior,
            in_keys={
                "state": "state",
                "belief": "belief",
                "action": "action",
                "noise": "prior_noise",
            },
            out_keys=[
                ("next", "prior_mean"),
                ("next", "prior_std"),
                "_",
                ("next", "belief"),
            ],
            out_to_in_map=True,
        ),
        TensorDictModule(
            rssm_posterior,
            in_keys={
                "belief": ("next", "belief"),
                "obs_embedding": ("next", "encoded_latents"),
                "noise": "posterior_noise",
            },
            out_keys=[
                ("next", "posterior_mean"),
                ("next", "posterior_std"),
                ("next", "state"),
            ],
            out_to_in_map=True,
        ),
    )
    decoder = ProbabilisticTensorDictSequential(
        TensorDictModule(
            decoder,
            in_keys=[("next", "state"), ("next", "belief")],
            out_keys=["loc"],
        ),
        ProbabilisticTensorDictModule(
            in_keys=["loc"],
            out_keys=[("next", "reco_pixels")],
            distribution_class=IndependentNormal,
            distribution_kwargs={"scale": 1.0, "event_dim": 3},
        ),
    )
    transition_model = TensorDictSequential(
        TensorDictModule(
            encoder,
            in_keys=[("next", "pixels")],
            out_keys=[("next", "encoded_latents")],
        ),
        rssm_rollout,
        decoder,
    )
    reward_model = ProbabilisticTensorDictSequential(
        TensorDictModule(
            reward_module,
            in_keys=[("next", "state"), ("next", "belief")],
            out_keys=[("next", "loc")],
        ),
        ProbabilisticTensorDictModule(
            in_keys=[("next", "loc")],
            out_keys=[("next", "reward")],
            distribution_class=IndependentNormal,
            distribution_kwargs={"scale": 1.0, "event_dim": 1},
        ),
    )
    return WorldModelWrapper(transition_model, reward_model)


def _make_mbenv(reward_module, rssm_prior, proof_env, stoch, deter) -> DreamerEnv:
    """``_dreamer_make_mbenv`` with ``use_decoder_in_env=False`` (the default)."""
    transition_model = SafeSequential(
        SafeModule(
            rssm_prior,
            in_keys=["state", "belief", "action"],
            out_keys=["_", "_", "state", "belief"],
        ),
    )
    reward_model = SafeProbabilisticTensorDictSequential(
        SafeModule(reward_module, in_keys=["state", "belief"], out_keys=["loc"]),
        SafeProbabilisticModule(
            in_keys=["loc"],
            out_keys=["reward"],
            distribution_class=IndependentNormal,
            distribution_kwargs={"scale": 1.0, "event_dim": 1},
        ),
    )
    env = DreamerEnv(
        world_model=WorldModelWrapper(transition_model, reward_model),
        prior_shape=torch.Size([stoch]),
        belief_shape=torch.Size([deter]),
        obs_decoder=None,
    )
    env.set_specs_from_env(proof_env)
    return env


def _make_actor_sim(actor_module, proof_env):
    """``_dreamer_make_actor_sim``: TanhNormal policy used inside imagination."""
    action_spec = proof_env.action_spec_unbatched
    return SafeProbabilisticTensorDictSequential(
        SafeModule(
            actor_module,
            in_keys=["state", "belief"],
            out_keys=["loc", "scale"],
            spec=Composite(
                loc=Unbounded(action_spec.shape, device=action_spec.device),
                scale=Unbounded(action_spec.shape, device=action_spec.device),
            ),
        ),
        SafeProbabilisticModule(
            in_keys=["loc", "scale"],
            out_keys=["action"],
            default_interaction_type=InteractionType.RANDOM,
            distribution_class=TanhNormal,
            distribution_kwargs={"tanh_loc": True},
            spec=Composite(action=action_spec),
        ),
    )


def _make_value_model(hidden: int, device):
    """``_dreamer_make_value_model``: 3x``hidden`` ELU MLP + IndependentNormal."""
    mlp = MLP(out_features=1, depth=3, num_cells=hidden, activation_class=nn.ELU,
              device=device)
    return ProbabilisticTensorDictSequential(
        TensorDictModule(mlp, in_keys=["state", "belief"], out_keys=["loc"]),
        ProbabilisticTensorDictModule(
            in_keys=["loc"],
            out_keys=["state_value"],
            distribution_class=IndependentNormal,
            distribution_kwargs={"scale": 1.0, "event_dim": 1},
        ),
    )


class TorchRLDreamerUpdate:
    """Callable doing one full TorchRL DreamerV1 update (see module docstring).

    Attributes useful to tests: ``world_model``, ``actor_model``,
    ``value_model``, ``model_based_env``, the three losses, the three
    optimizers, and ``last_losses`` (detached loss tensors of the last call).
    """

    def __init__(self, *, world_model, actor_model, value_model, model_based_env,
                 horizon: int, precision: str = "fp32"):
        self.world_model = world_model
        self.actor_model = actor_model
        self.value_model = value_model
        self.model_based_env = model_based_env

        self.world_model_loss = DreamerModelLoss(world_model)  # sota: defaults
        self.actor_loss = DreamerActorLoss(
            actor_model,
            value_model,
            model_based_env,
            imagination_horizon=horizon,
            discount_loss=True,
        )
        self.actor_loss.make_value_estimator(gamma=GAMMA, lmbda=LMBDA)
        self.value_loss = DreamerValueLoss(value_model, discount_loss=True, gamma=GAMMA)

        self.world_model_opt = torch.optim.Adam(
            world_model.parameters(), lr=WORLD_MODEL_LR, eps=ADAM_EPS
        )
        self.actor_opt = torch.optim.Adam(
            actor_model.parameters(), lr=ACTOR_LR, eps=ADAM_EPS
        )
        self.value_opt = torch.optim.Adam(
            value_model.parameters(), lr=VALUE_LR, eps=ADAM_EPS
        )
        self.last_losses: dict[str, torch.Tensor] = {}
        # the sota script's ``autocast_dtype``: each loss forward under autocast, the backward outside it
        device_type = next(world_model.parameters()).device.type
        self.autocast = (lambda: torch.autocast(device_type, dtype=torch.bfloat16)) if precision == "bf16" \
            else contextlib.nullcontext

    def __call__(self, batch: TensorDictBase) -> None:
        # -- world model (sota dreamer.py: "## world_model/forward|backward ##")
        with self.autocast():
            model_loss_td, sampled = self.world_model_loss(batch)
        loss_world_model = (
            model_loss_td["loss_model_kl"]
            + model_loss_td["loss_model_reco"]
            + model_loss_td["loss_model_reward"]
        )
        self.world_model_opt.zero_grad()
        loss_world_model.backward()
        clip_grad_norm_(self.world_model.parameters(), GRAD_CLIP)
        self.world_model_opt.step()

        # -- actor (imagination through the held-out model-based env)
        with self.autocast():
            actor_loss_td, sampled = self.actor_loss(sampled.reshape(-1))
        self.actor_opt.zero_grad()
        actor_loss_td["loss_actor"].backward()
        clip_grad_norm_(self.actor_model.parameters(), GRAD_CLIP)
        self.actor_opt.step()

        # -- value
        with self.autocast():
            value_loss_td, sampled = self.value_loss(sampled)
        self.value_opt.zero_grad()
        value_loss_td["loss_value"].backward()
        clip_grad_norm_(self.value_model.parameters(), GRAD_CLIP)
        self.value_opt.step()

        self.last_losses = {
            "loss_model_kl": model_loss_td["loss_model_kl"].detach(),
            "loss_model_reco": model_loss_td["loss_model_reco"].detach(),
            "loss_model_reward": model_loss_td["loss_model_reward"].detach(),
            "loss_actor": actor_loss_td["loss_actor"].detach(),
            "loss_value": value_loss_td["loss_value"].detach(),
        }


def build_torchrl_update(
    batch_size: int = 50,
    seq_len: int = 50,
    deter: int = 200,
    stoch: int = 30,
    hidden: int = 400,
    depth: int = 32,
    action_dim: int = 6,
    horizon: int = 15,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    compile: str = "none",
) -> tuple[Callable[[TensorDictBase], None], Callable[[], TensorDictBase]]:
    """Build TorchRL's DreamerV1 update and a matching random-batch factory.

    ``precision="bf16"``: each loss forward under bfloat16 autocast, as the sota script's ``autocast_dtype`` does.
    ``compile`` is accepted for the harness's common signature and not used: TorchRL's DreamerV1 losses have no
    compiled path, so this side is always eager.

    Sizes follow the sota script's roles: ``deter`` is ``rssm_hidden_dim``
    (GRU size *and* the RSSM prior/posterior MLP width, as in the sota
    ``make_dreamer``), ``stoch`` is ``state_dim``, ``hidden`` is the width of
    the reward (2 layers), value (3 layers) and actor (3 layers) MLPs,
    ``depth`` the ``ObsEncoder``/``ObsDecoder`` channel multiplier. Pixels are
    always 3x64x64.

    Returns:
        ``(update, make_batch)``: ``update(batch)`` performs one full update
        (world model, actor, value; three backward passes and three Adam
        steps, see the module docstring) and returns ``None`` (the detached
        losses are kept in ``update.last_losses``); ``make_batch()`` returns
        a fresh random ``[batch_size, seq_len]`` TensorDict in the replay
        buffer layout the losses expect.
    """
    device = torch.device(device)
    proof_env = _proof_env(stoch, deter, action_dim, device)
    obs_embed_dim = depth * 8 * 2 * 2  # ObsEncoder, 4 layers, 64x64 input

    encoder = ObsEncoder(channels=depth, in_channels=IN_CHANNELS, device=device)
    decoder = ObsDecoder(
        channels=depth, latent_dim=stoch + deter, out_channels=IN_CHANNELS,
        device=device,
    )
    rssm_prior = RSSMPrior(
        hidden_dim=deter,
        rnn_hidden_dim=deter,
        state_dim=stoch,
        action_spec=proof_env.action_spec,
        action_dim=action_dim,
        device=device,
    )
    rssm_posterior = RSSMPosterior(
        hidden_dim=deter,
        state_dim=stoch,
        rnn_hidden_dim=deter,
        obs_embed_dim=obs_embed_dim,
        device=device,
    )
    reward_module = MLP(out_features=1, depth=2, num_cells=hidden,
                        activation_class=nn.ELU, device=device)
    world_model = _make_world_model(
        encoder, decoder, rssm_prior, rssm_posterior, reward_module
    )
    model_based_env = _make_mbenv(reward_module, rssm_prior, proof_env, stoch, deter)
    actor_module = DreamerActor(
        out_features=action_dim, depth=3, num_cells=hidden,
        activation_class=nn.ELU, device=device,
    )
    actor_model = _make_actor_sim(actor_module, proof_env)
    value_model = _make_value_model(hidden, device)

    def make_batch(b: int = batch_size, t: int = seq_len) -> TensorDictBase:
        pix = (b, t, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
        return TensorDict(
            {
                "pixels": torch.rand(pix, device=device),
                "action": torch.rand(b, t, action_dim, device=device) * 2 - 1,
                "state": torch.zeros(b, t, stoch, device=device),
                "belief": torch.zeros(b, t, deter, device=device),
                "done": torch.zeros(b, t, 1, dtype=torch.bool, device=device),
                "terminated": torch.zeros(b, t, 1, dtype=torch.bool, device=device),
                "next": {
                    "pixels": torch.rand(pix, device=device),
                    "reward": torch.randn(b, t, 1, device=device),
                    "done": torch.zeros(b, t, 1, dtype=torch.bool, device=device),
                    "terminated": torch.zeros(
                        b, t, 1, dtype=torch.bool, device=device
                    ),
                },
            },
            batch_size=[b, t],
            device=device,
        )

    # Materialise the lazy MLPs (reward / actor / value use LazyLinear first
    # layers) exactly as make_dreamer does: one no-grad pass of each.
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        world_model(make_batch(1, 2))
        td = model_based_env.fake_tensordict().unsqueeze(-1).to(device)
        td = actor_model(td)
        value_model(td)

    update = TorchRLDreamerUpdate(
        world_model=world_model,
        actor_model=actor_model,
        value_model=value_model,
        model_based_env=model_based_env,
        horizon=horizon,
        precision=precision,
    )
    return update, make_batch
