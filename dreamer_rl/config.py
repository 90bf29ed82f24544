"""Recipes: frozen, strict pydantic models for every setting of a run.

``Recipe = env + model + behavior + train + tracking + run``. Every field is typed, defaulted and described; the
defaults are Dreamer V1's (Hafner et al. 2020, and google-research/dreamer's config). Presets
(:mod:`recipes.presets`) are named nested dicts that stack in order, then dotted CLI overrides apply
(``--train.batch_size 16``). Step counts are environment frames (after action repeat) unless a name says otherwise.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dreamer_rl.losses.kl import KLKind
from dreamer_rl.losses.slow_critic import SlowKind
from dreamer_rl.nets.actors import ActorKind
from dreamer_rl.nets.heads import HeadKind, ObsLoss
from dreamer_rl.nets.mlp import Activation, Norm
from dreamer_rl.rssm import CellKind, LatentKind
from dreamer_rl.transitions import TransitionKind
from dreamer_rl.world_model import ConvKind


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class EnvConfig(_Section):
    """The environment."""

    task: str = Field("dmc_cheetah_run", description="registered task name, suite prefix first (dmc_<domain>_<task>)")
    from_pixels: bool = Field(True, description="observe 64x64 RGB pixels (True) or the state vector (False)")
    action_repeat: int | Literal["planet"] = Field(
        2, description="env frames per agent action, or 'planet' for PlaNet's per-domain repeats")
    image_size: int = Field(64, description="rendered frame height and width in pixels", ge=16)
    max_episode_frames: int = Field(1000, description="episode length in env frames (time limit)", ge=2)
    reward_clip: Literal["none", "tanh", "sign"] = Field(
        "none", description="clip the rewards the agent learns from (reported returns stay raw)")
    num_envs: int = Field(1, description="envs stepped in parallel worker processes (1: in this process)", ge=1)
    sticky_actions: float = Field(0.25, description="atari_: probability of repeating the previous action",
                                  ge=0, le=1)
    noop_max: int = Field(30, description="atari_: most no-op actions at the start of an episode", ge=0)
    grayscale: bool = Field(True, description="atari_: grayscale frames [1, H, W] (False: colour [3, H, W])")
    full_action_space: bool = Field(False, description="atari_: all 18 actions (False: the game's minimal set)")
    life_loss: bool = Field(False, description="atari_: a lost life ends the continuation target (training only)")


class ModelConfig(_Section):
    """The world model (RSSM, encoder, decoder, heads)."""

    latent: LatentKind = Field("gaussian", description="stochastic latent: 'gaussian' (V1) or 'categorical' (V2, V3)")
    cell: CellKind = Field("gru", description="deterministic cell: 'gru' (V1), 'gru_ln' (V2), 'block_gru' (V3)")
    stoch: int = Field(30, description="Gaussian latent size, or number of categorical variables", ge=1)
    classes: int = Field(32, description="classes per categorical variable", ge=2)
    unimix: float = Field(0.0, description="uniform mix of categorical latent probabilities (V3: 0.01)", ge=0, lt=1)
    blocks: int = Field(8, description="blocks of the block GRU", ge=1)
    norm: Norm = Field("none", description="norm of hidden layers: 'none' (V1, V2), 'layer', 'rms' (V3)")
    prior_layers: int = Field(1, description="hidden layers of the RSSM prior head (V3: 2)", ge=1)
    transition: TransitionKind = Field(
        "rssm", description="transition model: 'rssm', PlaNet's purely stochastic 'ssm', the PlaNet fork's "
        "moving-average 'rssm_ma' or 'clockwork' RSSM (the last three: Gaussian latents only)")
    mean_only: bool = Field(False, description="PlaNet's purely deterministic ablation: prior and posterior samples "
                            "are their means (use with kl_scale 0)")
    ma_ppn: float = Field(0.25, description="rssm_ma: share of the units in the slow (moving-average) RSSM", gt=0,
                          lt=1)
    ma_alpha: float = Field(0.25, description="rssm_ma: rate α of slow_t = (1 - α) slow_(t-1) + α new_t", gt=0,
                            le=1)
    clock_periods: list[int] = Field([1, 4], description="clockwork: update period of each cell, the first 1",
                                     min_length=1)
    clock_deter: list[int] = Field([], description="clockwork: deterministic size of each cell (empty: deter split "
                                   "evenly)")
    clock_stoch: list[int] = Field([], description="clockwork: latent size of each cell (empty: stoch split evenly)")
    cell_as_prior: float = Field(0.0, description="clockwork: weight of KL(faster cell's posterior || slower cell's) "
                                 "between neighbouring cells of equal sizes (0: off)", ge=0)
    image_bits: int = Field(8, description="bits per pixel channel the model sees: below 8, frames are quantised "
                            "with uniform dequantisation noise (PlaNet: 5)", ge=1, le=8)
    deter: int = Field(200, description="deterministic (recurrent) state size", ge=1)
    hidden: int = Field(200, description="width of the RSSM's input and output layers", ge=1)
    units: int = Field(400, description="width of MLP heads, vector encoder and decoder", ge=1)
    cnn_depth: int = Field(32, description="channel multiplier of the conv encoder and decoder", ge=1)
    conv: ConvKind = Field("dreamer", description="pixel encoder/decoder: 'dreamer' (V1, V2: stride-2 convs) or "
                           "'dreamer_v3' (kernel 5, channel RMSNorm, block-linear decoder input)")
    conv_strided: bool = Field(False, description="dreamer_v3 conv: stride-2 convs instead of stride 1 + 2x2 "
                               "max-pool / nearest upsampling (the author's default is False)")
    act: Activation = Field("elu", description="activation of every hidden layer")
    min_std: float = Field(0.1, description="minimum std of prior and posterior", gt=0)
    kl: KLKind = Field("free_nats", description="KL kind: 'free_nats' (V1), 'balanced' (V2), 'dyn_rep' (V3)")
    free_nats: float = Field(3.0, description="KL below this many nats per step is not penalised", ge=0)
    free_avg: bool = Field(True, description="free_nats / balanced KL: apply free nats to the batch mean (else per "
                           "step, as PlaNet's paper-era code)")
    kl_balance: float = Field(0.8, description="balanced KL: weight of the prior's term α", ge=0, le=1)
    dyn_scale: float = Field(1.0, description="dyn_rep KL: weight of KL(sg(q) || p)", ge=0)
    rep_scale: float = Field(0.1, description="dyn_rep KL: weight of KL(q || sg(p))", ge=0)
    kl_scale: float = Field(1.0, description="weight of the KL term(s)", ge=0)
    overshooting: int = Field(
        0, description="latent overshooting (PlaNet paper): open-loop KL at distances 2 .. overshooting + 1 with "
        "free nats (distance 1 is the KL term); 0: off; above seq_len - 1 clips to the chunk", ge=0)
    overshooting_scale: float = Field(1.0, description="weight of the overshooting KL (PlaNet: 1)", ge=0)
    overshooting_reward_scale: float = Field(
        0.0, description="weight of PlaNet's overshooting reward term: the reward head's NLL on the stop-gradient "
        "posteriors once per overshooting pair (PlaNet paper: 100; 0: off)", ge=0)
    global_kl_scale: float = Field(0.0, description="weight of KL(posterior || N(0, I)), no free nats (PlaNet "
                                   "paper: 0.1; 0: off)", ge=0)
    reward_scale: float = Field(1.0, description="weight of the reward loss (PlaNet: 10)", ge=0)
    image_scale: float = Field(1.0, description="weight of the observation reconstruction loss", ge=0)
    tap_scale: float = Field(0.0, description="weight of the time-agnostic prediction loss (0: off)", ge=0)
    tap_horizon: int = Field(10, description="time-agnostic prediction: farthest future row a feature may predict",
                             ge=1)
    obs_loss: ObsLoss = Field("gaussian", description="decoder likelihood: 'gaussian', 'mse', 'symlog_mse'")
    symlog_inputs: bool = Field(False, description="feed symlog(x) of vector observations to the encoder (V3)")
    reward_head: HeadKind = Field("gaussian", description="reward head: 'gaussian' or 'symexp_twohot' (V3)")
    reward_layers: int = Field(2, description="hidden layers of the reward head", ge=1)
    mlp_layers: int = Field(3, description="hidden layers of the vector encoder and decoder", ge=1)
    vector_embed: Literal["linear", "hidden"] = Field(
        "linear", description="the vector encoder's embedding: a linear layer after mlp_layers - 1 hidden layers "
        "(V1, V2), or its last of mlp_layers hidden layers, normalised and activated (V3)")
    init: Literal["torch", "dreamer_v3"] = Field(
        "torch", description="weight init: PyTorch's defaults, or V3's truncated normal over the fan-in with zero "
        "biases and the policy's last layer scaled by 0.01 (dreamer_rl.nets.init)")
    bins: int = Field(255, description="bins of two-hot heads", ge=3)
    pcont: bool = Field(False, description="learn a continuation head (towards γ(1 - terminated)), weight returns")
    pcont_layers: int = Field(3, description="hidden layers of the continuation head", ge=1)
    pcont_scale: float = Field(10.0, description="weight of the continuation loss", ge=0)

    @model_validator(mode="after")
    def _blocks_divide_deter(self) -> "ModelConfig":
        if self.cell == "block_gru" and self.deter % self.blocks:
            raise ValueError(f"deter {self.deter} must be divisible by blocks {self.blocks} with cell block_gru")
        if self.conv == "dreamer_v3" and (self.deter % self.blocks or 4 * self.cnn_depth % self.blocks):
            raise ValueError(f"conv dreamer_v3: deter {self.deter} and 4 x cnn_depth {4 * self.cnn_depth} must be "
                             f"divisible by blocks {self.blocks}")
        if self.latent != "gaussian" and (self.transition != "rssm" or self.mean_only):
            raise ValueError(f"transition {self.transition!r}{' with mean_only' * self.mean_only} takes Gaussian "
                             f"latents only; set model.latent gaussian")
        sizes = (self.stoch, self.deter, self.hidden)
        if self.transition == "rssm_ma" and min(int(n * self.ma_ppn) for n in sizes) < 1:
            raise ValueError(f"rssm_ma: ma_ppn {self.ma_ppn} leaves no slow unit of stoch {self.stoch}, deter "
                             f"{self.deter} or hidden {self.hidden}")
        n, periods = len(self.clock_periods), self.clock_periods
        if periods[0] != 1 or min(periods) < 1:
            raise ValueError(f"clock_periods must be >= 1 and start with 1 (the first cell steps every step), got "
                             f"{periods}")
        for name, total in (("clock_deter", self.deter), ("clock_stoch", self.stoch)):
            sizes = getattr(self, name)
            if sizes and len(sizes) != n:
                raise ValueError(f"{name} has {len(sizes)} sizes for {n} clock_periods; give one per cell or none")
            if sizes and (sum(sizes) != total or min(sizes) < 1):
                raise ValueError(f"{name} {sizes} must be sizes >= 1 summing to model.{name[6:]} {total}")
            if self.transition == "clockwork" and not sizes and total < n:
                raise ValueError(f"clockwork: model.{name[6:]} {total} is too small to split over {n} cells")
        stochs = self.clock_stoch or [self.stoch // n + (i < self.stoch % n) for i in range(n)]
        if self.cell_as_prior and (self.transition != "clockwork" or n < 2 or len(set(stochs)) > 1):
            raise ValueError(f"cell_as_prior needs transition clockwork with two or more cells of equal latent sizes, "
                             f"got transition {self.transition!r}, latent sizes {stochs}")
        return self


class BehaviorConfig(_Section):
    """How the agent acts and learns to act."""

    actor_dist: ActorKind = Field(
        "tanh_normal", description="actor distribution of continuous actions: 'tanh_normal' (V1), 'trunc_normal' "
        "(V2), 'bounded_normal' (V3); discrete action spaces always use 'onehot' (a categorical per sub-space)")
    actor_grad: Literal["dynamics", "reinforce", "both", "auto"] = Field(
        "dynamics", description="actor gradient: 'dynamics' (backprop through the model; straight-through for "
        "discrete actions), 'reinforce', 'both', or 'auto' (V2: reinforce for discrete actions, dynamics for continuous)")
    actor_grad_mix: float = Field(0.1, description="weight of the dynamics gradient with actor_grad 'both'", ge=0,
                                  le=1)
    actor_entropy: float = Field(0.0, description="entropy bonus η of the actor", ge=0)
    actor_unimix: float = Field(0.01, description="uniform mix of the one-hot actor's probabilities", ge=0, lt=1)
    actor_max_std: float = Field(1.0, description="maximum std of the bounded-normal actor", gt=0)
    critic_head: HeadKind = Field("gaussian", description="critic: 'gaussian' or 'symexp_twohot' (V3)")
    slow_critic: SlowKind = Field("none", description="slow critic copy: 'none', 'hard' (V2), 'ema' (V3)")
    slow_critic_every: int = Field(1, description="updates between slow-critic updates (V2: 100)", ge=1)
    slow_critic_rate: float = Field(0.02, description="EMA rate of the slow critic", gt=0, le=1)
    slow_critic_target: bool = Field(False, description="λ-return targets from the slow critic (V2)")
    slow_critic_reg: float = Field(0.0, description="regulariser towards the slow critic's predictions (V3: 1)",
                                   ge=0)
    repval_scale: float = Field(0.0, description="weight of V3's replay-value loss (V3: 0.3; 0: off)", ge=0)
    repval_grad: bool = Field(False, description="the replay-value loss also trains the world model through the "
                              "posterior features (V3's repval_grad; needs the joint optimiser, train.optimizer laprop)")
    return_norm: Literal["none", "percentile"] = Field("none", description="return normalisation (V3: percentile)")
    return_norm_decay: float = Field(0.01, description="EMA rate of the return percentiles", gt=0, le=1)
    return_norm_limit: float = Field(1.0, description="smallest return scale S", gt=0)
    horizon: int = Field(15, description="imagination horizon H in agent steps", ge=2)
    gamma: float = Field(0.99, description="discount factor γ", gt=0, le=1)
    lambda_: float = Field(0.95, description="λ of the λ-return", ge=0, le=1)
    actor_layers: int = Field(4, description="hidden layers of the actor", ge=1)
    value_layers: int = Field(3, description="hidden layers of the value net", ge=1)
    actor_units: int = Field(0, description="width of actor and critic (0: model.units)", ge=0)
    actor_init_std: float = Field(5.0, description="initial pre-tanh std of the actor", gt=0)
    actor_min_std: float = Field(1e-4, description="minimum pre-tanh std of the actor", gt=0)
    expl: Literal["additive_gaussian", "epsilon_greedy", "random", "none"] = Field(
        "additive_gaussian", description="exploration while collecting: Gaussian action noise (continuous actions; "
        "discrete actions get ε-greedy with the same amount), ε-greedy, uniformly random actions, or none")
    expl_amount: float = Field(0.3, description="std of the Gaussian action noise, or ε of ε-greedy", ge=0)
    expl_decay: float = Field(0.0, description="env frames over which expl_amount decays linearly (0: constant)",
                              ge=0)
    expl_min: float = Field(0.0, description="floor of the decaying exploration amount", ge=0)
    expl_behavior: Literal["greedy", "plan2explore"] = Field(
        "greedy", description="who collects: the task actor ('greedy'), or an exploration actor-critic maximising "
        "ensemble disagreement ('plan2explore', DreamerV2's option); evaluation always uses the task actor")
    expl_intr_scale: float = Field(1.0, description="plan2explore: weight of the disagreement reward", ge=0)
    expl_extr_scale: float = Field(0.0, description="plan2explore: weight of the task reward", ge=0)
    expl_lr: float = Field(3e-4, description="plan2explore: Adam learning rate of the ensemble", gt=0)
    disag_models: int = Field(10, description="plan2explore: ensemble members", ge=2)
    disag_target: Literal["stoch", "deter", "feat"] = Field(
        "stoch", description="plan2explore: what the ensemble predicts one step ahead (z, h, or [z, h])")
    disag_log: bool = Field(True, description="plan2explore: the reward is the log of the disagreement")
    disag_action_cond: bool = Field(True, description="plan2explore: the ensemble also sees the action")
    action_head: bool = Field(True, description="learn an actor (False: act only by planning, PlaNet)")
    value_head: bool = Field(True, description="learn a critic (False: the actor maximises imagined returns without "
                             "a bootstrap, as the TF1 seed's value_head False)")
    eval_noise: float = Field(0.0, description="ε of ε-greedy at evaluation (discrete actions; TF1 discrete: 0.001)",
                              ge=0, le=1)
    eval_sample: bool = Field(False, description="evaluate with a sample of the actor instead of its mode (DreamerV3's "
                              "authors sample in every mode; V1 and V2 take the mode)")


class PlannerConfig(_Section):
    """Online planning in latent space (PlaNet's CEM, MPPI); ``kind none`` acts with the actor."""

    kind: Literal["none", "cem", "mppi"] = Field(
        "none", description="act by planning: 'cem' (PlaNet; one-hot CEM for discrete actions), 'mppi' (TD-MPC), "
        "or 'none' (the actor)")
    horizon: int = Field(12, description="planning horizon in agent steps", ge=1)
    candidates: int = Field(1000, description="action sequences scored per iteration", ge=2)
    iterations: int = Field(10, description="refits of the search distribution per plan", ge=1)
    top_k: int = Field(100, description="elite candidates the distribution is refit to", ge=1)
    objective: Literal["sum", "discounted", "value"] = Field(
        "sum", description="score of a sequence: 'sum' of predicted rewards (PlaNet), 'discounted' by "
        "behavior.gamma (PlaNet paper), or 'value' (discounted + γ^H V, needs behavior.value_head)")
    init_std: float = Field(1.0, description="std of the first iteration's Gaussian (continuous actions)", gt=0)
    warm_start: bool = Field(False, description="start from the previous plan shifted by one step (reset at "
                             "episode starts; the discrete-action fork's option)")
    temperature: float = Field(0.5, description="mppi: temperature of the return weights", gt=0)
    momentum: float = Field(0.1, description="mppi: momentum of the mean", ge=0, lt=1)
    min_std: float = Field(0.05, description="mppi: smallest std", gt=0)
    max_std: float = Field(2.0, description="mppi: largest std", gt=0)
    summarise_plan_returns: bool = Field(
        False, description="log the candidates' predicted returns of the first and last iteration (metrics and a "
        "histogram)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="compute precision of the candidates' rollouts: 'bf16' runs their matmuls in bfloat16 "
        "under autocast (states, returns and the refits stay float32)")

    @model_validator(mode="after")
    def _elites_fit(self) -> "PlannerConfig":
        if self.top_k > self.candidates:
            raise ValueError(f"top_k {self.top_k} exceeds candidates {self.candidates}")
        return self


class TrainConfig(_Section):
    """Optimisation and the replay buffer."""

    batch_size: int = Field(50, description="sequences per batch B", ge=1)
    seq_len: int = Field(50, description="steps per sequence T", ge=2)
    train_every: int = Field(1000, description="env frames between training bursts", ge=1)
    train_ratio: float = Field(0.1, description="gradient updates per env frame (V1: 100 per 1000)", gt=0)
    prefill: int = Field(5000, description="env frames collected before training starts", ge=0)
    prefill_policy: Literal["random", "agent"] = Field(
        "random", description="who acts during the prefill: uniform random actions (V1, V2), or the untrained agent "
        "as it will collect later (V3's random_agent False)")
    pretrain: int = Field(100, description="updates right after the prefill", ge=0)
    model_lr: float = Field(6e-4, description="Adam learning rate of the world model", gt=0)
    actor_lr: float = Field(8e-5, description="Adam learning rate of the actor", gt=0)
    value_lr: float = Field(8e-5, description="Adam learning rate of the value net", gt=0)
    adam_eps: float = Field(1e-4, description="Adam epsilon", gt=0)
    grad_clip: float = Field(100.0, description="global gradient-norm clip per Adam optimiser", gt=0)
    lr_ramp: int = Field(0, description="Adam learning rates ramp linearly from 0 over this many updates, "
                         "lr * min(k / lr_ramp, 1) at update k = 0, 1, .. (PlaNet; 0: off)", ge=0)
    optimizer: Literal["adam", "laprop"] = Field(
        "adam", description="'adam': one Adam per module (V1, V2); 'laprop': one LaProp + AGC over all (V3)")
    lr: float = Field(4e-5, description="LaProp learning rate (after warm-up)", gt=0)
    warmup: int = Field(1000, description="LaProp linear learning-rate warm-up in updates", ge=0)
    agc: float = Field(0.3, description="LaProp adaptive gradient clipping ratio (0: off)", ge=0)
    laprop_eps: float = Field(1e-20, description="LaProp epsilon", gt=0)
    replay_capacity: int = Field(1_000_000, description="replay capacity in stored steps", ge=100)
    replay_slices: Literal["episode", "stream"] = Field(
        "episode", description="training sequences inside one episode (V1, V2) or across episode boundaries of "
        "an env's stream, the model reset at each episode start (V3; trains on episodes shorter than seq_len)")
    slice_start_reset: bool = Field(
        False, description="mark each training slice's first row an episode start: the model starts it from the "
        "zero state and zero previous action (DreamerV3 without replay context; V1, V2 keep the stored action)")
    replay_context: int = Field(
        0, description="1: each training slice starts from the model state stored with its first row (the acting "
        "policy's posterior, refreshed by every update that trains on the row before; DreamerV3's replay_context); "
        "0: from the zero state", ge=0, le=1)
    replay_online: bool = Field(
        False, description="DreamerV3's online queue: each env stream is cut into consecutive windows of seq_len "
        "rows, and a batch's first slices are the windows completed since the last batch, so every row is "
        "trained on at least once (needs replay_slices stream)")
    keep_freed_memory: bool = Field(
        True, description="keep freed activation memory for the next update (glibc; avoids page-fault storms)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="compute precision of the update's forward passes: 'bf16' runs matmuls and "
        "convolutions in bfloat16 under autocast (DreamerV3's compute_dtype) with float32 weights, optimiser "
        "states, recurrent states and every loss and distribution; 'fp32' everywhere otherwise")
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = Field(
        "none", description="torch.compile the world model's filter and imagination steps (dreamer_rl.compile): "
        "'default' fuses each step's elementwise work into a few kernels, 'reduce-overhead' adds CUDA graphs on a "
        "GPU, 'max-autotune' also tunes matmul kernels; compiles at the first update; 'none': eager")


# The field ``tracking.register`` (the command line's --tracking.register) shadows ``ABCMeta.register`` of pydantic
# models; nothing calls that on a recipe section, so pydantic's warning at class creation is silenced here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class TrackingConfig(_Section):
        """MLflow tracking (local SQLite store under ./mlflow unless MLFLOW_TRACKING_URI is set)."""

        enabled: bool = Field(True, description="log to MLflow")
        experiment: str = Field("dreamer_rl", description="MLflow experiment name")
        video: bool = Field(True, description="log eval-episode and open-loop prediction videos")
        openloop_context: int = Field(5, description="observed frames before open-loop prediction", ge=1)
        collect_latents: bool = Field(
            False, description="dmc_ tasks: save each training batch's zero-step posterior sample [B·T, S], belief "
            "[B·T, D] and the true physics position (qpos) [B·T, P] and velocity (qvel) [B·T, V] as float32 "
            "latents/<updates:09d>.npz artifacts (the PlaNet fork's collect_latents; B·T·(S+D+P+V)·4 bytes per saved "
            "batch before compression, e.g. 50·50·(30+200+2+2)·4 = 2.3 MB; without tracking: <runs_dir>/<run>/latents/)")
        collect_latents_every: int = Field(1, description="collect_latents: save every n-th update's batch (1: all)",
                                           ge=1)
        register: bool = Field(False, description="at the end of training, log the agent as an MLflow model and register "
                               "a new version of tracking.registered_name (load it with --eval --checkpoint "
                               "models:/<name>/<version>)")
        registered_name: str | None = Field(None, description="registered model name for tracking.register "
                                            "(default '<algo>-<task>')", min_length=1)


class RunConfig(_Section):
    """Budget, clocks, seed, device and run identity."""

    algo: str = Field("dreamer_v1", description="algorithm name (tag and default run-name prefix)")
    steps: int = Field(1_000_000, description="budget in env frames (after action repeat)", ge=1)
    seed: int = Field(0, description="seed of torch, numpy and the envs")
    name: str | None = Field(None, description="run name; default '<algo>-<task>-s<seed>'; reusing it resumes")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' picks CUDA when present")
    log_every: int = Field(1000, description="env frames between metric logs", ge=1)
    eval_every: int = Field(10_000, description="env frames between evaluations", ge=1)
    eval_episodes: int = Field(1, description="episodes per evaluation", ge=1)
    save_every: int = Field(10_000, description="env frames between checkpoints", ge=1)
    runs_dir: str = Field("runs", description="directory holding run folders (checkpoints, replay)")
    threads: int = Field(0, description="torch CPU threads (0: torch's default)", ge=0)


class Recipe(_Section):
    """Everything a run needs; see each section."""

    env: EnvConfig = Field(default_factory=EnvConfig, description="environment")
    model: ModelConfig = Field(default_factory=ModelConfig, description="world model")
    behavior: BehaviorConfig = Field(default_factory=BehaviorConfig, description="actor and critic")
    planner: PlannerConfig = Field(default_factory=PlannerConfig, description="latent planning")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation and replay")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking")
    run: RunConfig = Field(default_factory=RunConfig, description="budget, clocks and identity")

    @model_validator(mode="after")
    def _frames_fit_the_conv(self) -> "Recipe":
        size = self.env.image_size
        if self.env.from_pixels and self.model.conv == "dreamer" and size != 64:
            raise ValueError(f"model.conv 'dreamer' (V1/V2 stack) takes 64x64 frames, env.image_size is {size}; use "
                             f"64 or model.conv dreamer_v3")
        if self.env.from_pixels and self.model.conv == "dreamer_v3" and size % 16:
            raise ValueError(f"model.conv 'dreamer_v3' needs env.image_size divisible by 16 (64, 96, ...), got {size}")
        return self

    @model_validator(mode="after")
    def _one_slice_start(self) -> "Recipe":
        if self.train.replay_context and self.train.slice_start_reset:
            raise ValueError("train.replay_context 1 starts each slice from its stored state, train.slice_start_reset "
                             "true from the zero state: set one of them off")
        if self.train.replay_online and self.train.replay_slices != "stream":
            raise ValueError("train.replay_online cuts each env's stream of rows into windows: it needs "
                             "train.replay_slices stream (got episode)")
        return self

    @model_validator(mode="after")
    def _someone_acts(self) -> "Recipe":
        b, p = self.behavior, self.planner
        if not b.action_head and p.kind == "none":
            raise ValueError("behavior.action_head is false, so the agent acts by planning: set planner.kind cem or "
                             "mppi (or keep the actor with behavior.action_head true)")
        if b.expl_behavior == "plan2explore" and not b.action_head:
            raise ValueError("behavior.expl_behavior plan2explore trains an exploration actor beside the task actor: "
                             "it needs behavior.action_head true (not a planner-only recipe)")
        if not b.action_head and b.value_head:
            raise ValueError("behavior.value_head true needs the actor's imagined trajectories to train on: set "
                             "behavior.value_head false with behavior.action_head false")
        if p.kind != "none" and p.objective == "value" and not b.value_head:
            raise ValueError("planner.objective 'value' needs a critic: behavior.action_head and value_head true "
                             "(or objective sum/discounted)")
        return self

    @property
    def run_name(self) -> str:
        """``run.name`` or ``<algo>-<task>-s<seed>``."""
        return self.run.name or f"{self.run.algo}-{self.env.task}-s{self.run.seed}"

    def flat(self) -> dict[str, Any]:
        """Dotted ``section.field -> value`` mapping (MLflow params)."""
        return {f"{s}.{k}": v for s, sec in self.model_dump().items() for k, v in sec.items()}


def known_fields(stored: dict[str, Any]) -> dict[str, Any]:
    """A recipe stored by an earlier version, as this version reads it: sections and fields removed since are
    dropped (fields added since then take their defaults when validated, which keep the old behaviour)."""
    return {s: {k: v for k, v in sec.items() if k in Recipe.model_fields[s].annotation.model_fields}
            for s, sec in stored.items() if s in Recipe.model_fields and isinstance(sec, dict)}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge, ``update`` winning."""
    out = dict(base)
    for k, v in update.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
