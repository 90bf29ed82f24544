"""TorchRL's own DreamerV3 update (torchrl 0.14), assembled from TorchRL's DreamerV3 modules, losses and optimiser.

The *reference* half of ``python -m benchmarks.update_speed --algo dreamer_v3``: one full DreamerV3 gradient update
built only from TorchRL / tensordict classes, timed against ours on identical sizes.

Parts (all TorchRL 0.14.1 public classes; the wiring follows the DreamerV3 examples in the docstrings of
``torchrl.objectives.DreamerV3Loss`` / ``DreamerV3OptimizationStepper`` and the keys of the DreamerV3 sota script)
---------------------------------------------------------------------------------------------------------------
* encoder ``DreamerV3ImageEncoder(depth, mults=(2, 3, 4, 4), kernel 5)`` on uint8 ``("next", "pixels")``: four
  stride-2 convs with channel RMSNorm + SiLU, 64x64 -> 4x4, embedding ``depth * 4 * 16`` features;
* RSSM ``RSSMPriorV3(recurrent_model="block_gru")`` (block GRU of ``blocks`` groups over a ``deter`` belief, the
  state / belief / action each projected to ``hidden``, one dynamics layer, a 2-layer prior head) and
  ``RSSMPosteriorV3(use_rms_norm=True)`` (1 layer), ``stoch`` categoricals x ``classes`` classes, unimix 1%,
  unrolled over T by ``RSSMRolloutV3`` (its tensor fast path, reset on ``is_init``);
* decoder ``DreamerV3ImageDecoder`` (block-linear projection of ``blocks`` blocks, transposed convs back to 64x64),
  reconstruction L2 on pixels / 255 summed over C, H, W;
* reward head ``DreamerV3MLP`` (1 x ``units``) over 255 two-hot bins (``SymExpTwoHot``), continuation head
  ``DreamerV3MLP`` (1 x ``units``) with targets scaled by ``1 - 1/333``;
* actor ``DreamerV3MLP`` (3 x ``units``) -> TanhNormal with std in [0.1, 1] (the sota script's continuous policy),
  value ``DreamerV3MLP`` (3 x ``units``) over 255 two-hot bins with a slow target critic (``SoftUpdate`` tau 0.02,
  regulariser weight 1);
* imagination: ``DreamerEnv`` over the same prior and reward networks, ``horizon`` steps from every one of the
  ``B*T`` posterior states, REINFORCE actor loss with percentile return normalisation and entropy bonus 3e-4,
  λ-returns (λ 0.95) weighted by the predicted continuation;
* ``DreamerV3Loss`` sums world model (dyn 1 / rep 0.1 KL with 1 free nat, reconstruction, reward, continuation),
  actor, value and replay value (0.3) losses; ``DreamerV3OptimizationStepper`` does one backward of the sum and one
  ``DreamerV3Optimizer`` step (LaProp-style RMS-normalised momentum with adaptive gradient clipping 0.3, lr 4e-5,
  eps 1e-20, lr warm-up 1000 updates) over every parameter, then the slow-critic update.

Eager on every device by default (``compile_train_step=False, cudagraph=False``): on CUDA the stepper's defaults
would compile the step and capture it in a CUDA graph; here both sides run uncompiled at the same precision, fp32
unless ``precision="bf16"`` turns on the stepper's ``mixed_precision`` (bfloat16 autocast, which TorchRL applies on
CUDA only). ``compile`` other than ``none`` turns on the stepper's ``compile_train_step`` (and ``cudagraph`` for
``reduce-overhead`` on CUDA), as ``train.compile`` does for ours.

What one ``update(batch)`` does: ``stepper.step(None, batch)``: the four losses forward, one ``backward`` through
all of them, the optimiser step on world model + actor + value, the target-critic update.

Batch layout (``make_batch``): TorchRL's transition rows ``[B, T]``: ``action`` a_t, ``is_init``, ``state`` /
``belief`` (zeros, as the sota script sets before each update), ``("next", "pixels")`` uint8 o_{t+1},
``("next", "reward" | "done" | "terminated")``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictSequential,
)
from torch import nn
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs.model_based.dreamer import DreamerEnv
from torchrl.modules import (
    DreamerV3ImageDecoder,
    DreamerV3ImageEncoder,
    DreamerV3MLP,
    RSSMPosteriorV3,
    RSSMPriorV3,
    RSSMRolloutV3,
    SymExpTwoHot,
    TanhNormal,
    WorldModelWrapper,
)
from torchrl.objectives import (
    DreamerV3ActorLoss,
    DreamerV3Loss,
    DreamerV3ModelLoss,
    DreamerV3ValueLoss,
    SoftUpdate,
)
from torchrl.objectives.utils import ValueEstimators
from torchrl.trainers.algorithms import DreamerV3OptimizationStepper, DreamerV3Optimizer

__all__ = ["build_torchrl_v3_update", "TorchRLDreamerV3Update"]

IMAGE_SHAPE = (3, 64, 64)
MULTS = (2, 3, 4, 4)  # DreamerV3's CNN stages: 64 -> 32 -> 16 -> 8 -> 4
BINS = 255
UNIMIX = 0.01
CONTINUATION_HORIZON = 333.0  # discount 1 - 1/333 carried by the continuation targets
LMBDA = 0.95
LR, AGC, EPS, LR_WARMUP = 4e-5, 0.3, 1e-20, 1000
SLOW_CRITIC_TAU = 0.02
MIN_STD, MAX_STD = 0.1, 1.0


class _BoundedStdActor(nn.Module):
    """DreamerV3 continuous policy head: ``loc, std`` with ``std = (max - min) * sigmoid(x + 2) + min``.

    TorchRL ships no continuous DreamerV3 actor module (``DreamerV3DiscreteActor`` is for one-hot actions); its
    sota script defines this head around ``DreamerV3MLP`` (output scale 0.01), and so does this file.
    """

    def __init__(self, feat: int, action_dim: int, units: int, layers: int = 3) -> None:
        super().__init__()
        self.mlp = DreamerV3MLP(feat, 2 * action_dim, depth=layers, num_cells=units, outscale=0.01)
        self.action_dim = action_dim

    def forward(self, state: torch.Tensor, belief: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, std = self.mlp(state, belief).split(self.action_dim, -1)
        return loc, (MAX_STD - MIN_STD) * torch.sigmoid(std + 2) + MIN_STD


def _two_hot_head(net: nn.Module, in_keys: list, logits_key, value_key) -> TensorDictSequential:
    """``net`` -> 255 logits -> decoded scalar (symexp of the two-hot expectation)."""
    return TensorDictSequential(
        TensorDictModule(net, in_keys=in_keys, out_keys=[logits_key]),
        TensorDictModule(SymExpTwoHot(BINS), in_keys=[logits_key], out_keys=[value_key]),
    )


class TorchRLDreamerV3Update:
    """Callable doing one full TorchRL DreamerV3 update (see the module docstring).

    Attributes useful to tests: ``world_model``, ``actor_model``, ``value_model``, ``loss``, ``optimizer``,
    ``stepper`` and ``last_losses`` (detached scalar losses of the last call).
    """

    def __init__(self, *, world_model, actor_model, value_model, continuation_model, model_based_env,
                 horizon: int, lr_warmup: int, mixed_precision: bool = False, compile_train_step: bool = False,
                 compile_mode: str = "default", cudagraph: bool = False) -> None:
        self.world_model, self.actor_model, self.value_model = world_model, actor_model, value_model
        model_loss = DreamerV3ModelLoss(
            world_model, kl_mode="separate", lambda_dynamic=1.0, lambda_representation=0.1, free_bits=1.0,
            unimix=UNIMIX, reco_symlog=False, num_reward_bins=BINS, lambda_continue=1.0,
            continue_target_scale=1 - 1 / CONTINUATION_HORIZON, detach_output=False,  # replay value needs it
        )
        actor_loss = DreamerV3ActorLoss(actor_model, value_model, model_based_env,
                                        continuation_model=continuation_model, imagination_horizon=horizon,
                                        use_reinforce=True)
        # the continuation model carries the discount, as in the sota script
        actor_loss.make_value_estimator(ValueEstimators.TDLambda, gamma=1.0, lmbda=LMBDA)
        value_loss = DreamerV3ValueLoss(value_model, value_loss="two_hot", num_value_bins=BINS,
                                        actor_loss=actor_loss, slow_critic_regularization=1.0)
        self.target_updater = SoftUpdate(value_loss, tau=SLOW_CRITIC_TAU)
        self.loss = DreamerV3Loss(model_loss, actor_loss, value_loss, replay_value_loss_weight=0.3,
                                  continuation_horizon=CONTINUATION_HORIZON, lmbda=LMBDA)
        self.optimizer = DreamerV3Optimizer(self.loss.parameters(), lr=LR, agc=AGC, eps=EPS,
                                            warmup_steps=lr_warmup)
        self.stepper = DreamerV3OptimizationStepper(self.loss, self.optimizer, self.target_updater,
                                                    compile_train_step=compile_train_step,
                                                    compile_mode=compile_mode, cudagraph=cudagraph,
                                                    mixed_precision=mixed_precision)
        self.last_losses: dict[str, torch.Tensor] = {}
        #: a compiled or captured step needs the stepper's ``warmup(sample)`` (which trains nothing) first
        self.needs_warmup = compile_train_step or cudagraph

    def __call__(self, batch: TensorDictBase) -> None:
        if self.needs_warmup:
            self.stepper.warmup(batch)
            self.needs_warmup = False
        metrics = self.stepper.step(None, batch)
        self.last_losses = {k: v for k, v in metrics.items() if k.startswith("loss_")}


def build_torchrl_v3_update(
    batch_size: int = 16,
    seq_len: int = 64,
    deter: int = 2048,
    hidden: int = 256,
    stoch: int = 32,
    classes: int = 16,
    depth: int = 16,
    units: int = 256,
    blocks: int = 8,
    action_dim: int = 6,
    horizon: int = 15,
    device: str | torch.device = "cpu",
    lr_warmup: int = LR_WARMUP,
    precision: str = "fp32",
    compile: str = "none",
) -> tuple[Callable[[TensorDictBase], None], Callable[[], TensorDictBase]]:
    """Build TorchRL's DreamerV3 update at the given size and a matching random-batch factory.

    :param deter: belief (block GRU) width; :param hidden: width of the RSSM's input projections and prior /
        posterior heads; :param stoch: categoricals, :param classes: classes each (state ``stoch * classes``);
        :param depth: CNN base channels; :param units: width of reward, continuation, actor and value MLPs;
        :param blocks: GRU and decoder-projection blocks; :param lr_warmup: optimiser lr warm-up updates (the
        first update has lr 0 when > 0); :param precision: ``bf16`` sets the stepper's ``mixed_precision`` (TorchRL
        enables that bfloat16 autocast on CUDA only: on a CPU its update stays float32); :param compile: ``none``
        (eager), or the stepper's ``compile_train_step`` with that ``compile_mode`` (``reduce-overhead``: the
        ``default`` mode plus the stepper's own ``cudagraph`` capture on CUDA), TorchRL's counterparts of our
        ``train.compile``; the first call then runs the stepper's ``warmup(batch)``.
    :returns: ``(update, make_batch)``; ``update(batch)`` performs one full update and keeps the detached losses
        in ``update.last_losses``; ``make_batch()`` returns a fresh random ``[batch_size, seq_len]`` TensorDict.
    """
    device = torch.device(device)
    state_dim, feat = stoch * classes, stoch * classes + deter
    encoder = DreamerV3ImageEncoder(IMAGE_SHAPE[0], depth=depth, mults=MULTS)
    prior_net = RSSMPriorV3(action_shape=(action_dim,), action_dim=action_dim, hidden_dim=hidden,
                            rnn_hidden_dim=deter, num_categoricals=stoch, num_classes=classes, unimix=UNIMIX,
                            recurrent_model="block_gru", num_blocks=blocks, num_layers=1, prior_num_layers=2)
    posterior_net = RSSMPosteriorV3(hidden_dim=hidden, num_categoricals=stoch, num_classes=classes,
                                    rnn_hidden_dim=deter, obs_embed_dim=encoder.output_features(IMAGE_SHAPE),
                                    use_rms_norm=True, num_layers=1, unimix=UNIMIX)
    decoder = DreamerV3ImageDecoder(feat, image_shape=IMAGE_SHAPE, depth=depth, mults=MULTS, num_blocks=blocks)
    reward_net = DreamerV3MLP(feat, BINS, depth=1, num_cells=units, outscale=0.0)
    continuation_net = DreamerV3MLP(feat, 1, depth=1, num_cells=units)
    nxt = lambda key: ("next", key)  # noqa: E731
    latent = [nxt("state"), nxt("belief")]
    world_model = TensorDictSequential(
        TensorDictModule(encoder, in_keys=[nxt("pixels")], out_keys=[nxt("encoded_latents")]),
        RSSMRolloutV3(
            TensorDictModule(prior_net, in_keys=["state", "belief", "action"],
                             out_keys=[nxt("prior_logits"), nxt("state"), nxt("belief")]),
            TensorDictModule(posterior_net, in_keys=[nxt("belief"), nxt("encoded_latents")],
                             out_keys=[nxt("posterior_logits"), nxt("state")]),
            reset_key="is_init",
        ),
        TensorDictModule(decoder, in_keys=latent, out_keys=[nxt("reco_pixels")]),
        _two_hot_head(reward_net, latent, nxt("reward_logits"), nxt("reward")),
        TensorDictModule(continuation_net, in_keys=latent, out_keys=[nxt("continue_pred")]),
    ).to(device)

    # imagination: the same prior and reward networks, stepped by TorchRL's model-based env
    imagination = WorldModelWrapper(
        TensorDictModule(prior_net, in_keys=["state", "belief", "action"], out_keys=["_", "state", "belief"]),
        _two_hot_head(reward_net, ["state", "belief"], "reward_logits", "reward"),
    )
    mb_env = DreamerEnv(imagination, prior_shape=torch.Size([state_dim]), belief_shape=torch.Size([deter]),
                        device=device)
    mb_env.observation_spec = Composite(state=Unbounded(state_dim, device=device),
                                        belief=Unbounded(deter, device=device), device=device)
    mb_env.state_spec = mb_env.observation_spec.clone()
    mb_env.action_spec = Bounded(-1.0, 1.0, (action_dim,), device=device)
    mb_env.reward_spec = Unbounded((1,), device=device)
    continuation_model = TensorDictSequential(
        TensorDictModule(continuation_net, in_keys=["state", "belief"], out_keys=["continue_logits"]),
        TensorDictModule(nn.Sigmoid(), in_keys=["continue_logits"], out_keys=["continuation"]),
    )
    actor_model = ProbabilisticTensorDictSequential(
        TensorDictModule(_BoundedStdActor(feat, action_dim, units), in_keys=["state", "belief"],
                         out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      default_interaction_type=InteractionType.RANDOM,
                                      distribution_class=TanhNormal, return_log_prob=True,
                                      log_prob_key="action_log_prob"),
    ).to(device)
    value_model = _two_hot_head(DreamerV3MLP(feat, BINS, depth=3, num_cells=units, outscale=0.0),
                                ["state", "belief"], "state_value_logits", "state_value").to(device)

    def make_batch(b: int = batch_size, t: int = seq_len) -> TensorDictBase:
        is_init = torch.zeros(b, t, 1, dtype=torch.bool)
        is_init[:, 0] = True
        no = torch.zeros(b, t, 1, dtype=torch.bool)
        return TensorDict({
            "action": torch.rand(b, t, action_dim) * 2 - 1,
            "is_init": is_init,
            "state": torch.zeros(b, t, state_dim),
            "belief": torch.zeros(b, t, deter),
            "next": {
                "pixels": torch.randint(0, 256, (b, t, *IMAGE_SHAPE), dtype=torch.uint8),
                "reward": torch.randn(b, t, 1),
                "done": no.clone(),
                "terminated": no.clone(),
            },
        }, [b, t]).to(device)

    update = TorchRLDreamerV3Update(world_model=world_model, actor_model=actor_model, value_model=value_model,
                                    continuation_model=continuation_model.to(device), model_based_env=mb_env,
                                    horizon=horizon, lr_warmup=lr_warmup, mixed_precision=precision == "bf16",
                                    compile_train_step=compile != "none",
                                    compile_mode="default" if compile == "reduce-overhead" else compile,
                                    cudagraph=compile == "reduce-overhead" and device.type == "cuda")
    update.loss.to(device)
    return update, make_batch
