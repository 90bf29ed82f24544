"""Recipes: frozen, strict pydantic models for every setting of a run.

``Recipe = env + model + behavior + train + tracking + run``. Every field is typed, defaulted and described; the
defaults are Dreamer V1's (Hafner et al. 2020, and google-research/dreamer's config). Presets
(:mod:`recipes.presets`) are named nested dicts that stack in order, then dotted CLI overrides apply
(``--train.batch_size 16``). Step counts are environment frames (after action repeat) unless a name says otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dreamer_rl.losses.kl import KLKind
from dreamer_rl.nets.mlp import Activation
from dreamer_rl.rssm import CellKind, LatentKind


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


class ModelConfig(_Section):
    """The world model (RSSM, encoder, decoder, heads)."""

    latent: LatentKind = Field("gaussian", description="stochastic latent family")
    cell: CellKind = Field("gru", description="deterministic recurrent cell")
    stoch: int = Field(30, description="stochastic state size", ge=1)
    deter: int = Field(200, description="deterministic (recurrent) state size", ge=1)
    hidden: int = Field(200, description="width of the RSSM's input and output layers", ge=1)
    units: int = Field(400, description="width of MLP heads, vector encoder and decoder", ge=1)
    cnn_depth: int = Field(32, description="channel multiplier of the conv encoder and decoder", ge=1)
    act: Activation = Field("elu", description="activation of every hidden layer")
    min_std: float = Field(0.1, description="minimum std of prior and posterior", gt=0)
    kl: KLKind = Field("free_nats", description="KL regulariser kind")
    free_nats: float = Field(3.0, description="KL below this many nats per step is not penalised", ge=0)
    kl_scale: float = Field(1.0, description="weight of the KL term", ge=0)
    head: Literal["gaussian_mse"] = Field("gaussian_mse", description="likelihood of decoder and reward heads")
    pcont: bool = Field(False, description="learn a continuation (discount) head and weight returns by it")
    pcont_scale: float = Field(10.0, description="weight of the continuation loss", ge=0)


class BehaviorConfig(_Section):
    """How the agent acts and learns to act."""

    kind: Literal["dynamics_backprop"] = Field(
        "dynamics_backprop", description="actor-critic learned by backprop of λ-returns through the dynamics")
    horizon: int = Field(15, description="imagination horizon H in agent steps", ge=2)
    gamma: float = Field(0.99, description="discount factor γ", gt=0, le=1)
    lambda_: float = Field(0.95, description="λ of the λ-return", ge=0, le=1)
    actor_layers: int = Field(4, description="hidden layers of the actor", ge=1)
    value_layers: int = Field(3, description="hidden layers of the value net", ge=1)
    actor_init_std: float = Field(5.0, description="initial pre-tanh std of the actor", gt=0)
    actor_min_std: float = Field(1e-4, description="minimum pre-tanh std of the actor", gt=0)
    expl: Literal["additive_gaussian", "random", "none"] = Field(
        "additive_gaussian", description="exploration while collecting")
    expl_amount: float = Field(0.3, description="std of the additive Gaussian action noise", ge=0)


class TrainConfig(_Section):
    """Optimisation and the replay buffer."""

    batch_size: int = Field(50, description="sequences per batch B", ge=1)
    seq_len: int = Field(50, description="steps per sequence T", ge=2)
    train_every: int = Field(1000, description="env frames between training bursts", ge=1)
    train_ratio: float = Field(0.1, description="gradient updates per env frame (V1: 100 per 1000)", gt=0)
    prefill: int = Field(5000, description="env frames of random actions before training", ge=0)
    pretrain: int = Field(100, description="updates right after the prefill", ge=0)
    model_lr: float = Field(6e-4, description="Adam learning rate of the world model", gt=0)
    actor_lr: float = Field(8e-5, description="Adam learning rate of the actor", gt=0)
    value_lr: float = Field(8e-5, description="Adam learning rate of the value net", gt=0)
    adam_eps: float = Field(1e-4, description="Adam epsilon", gt=0)
    grad_clip: float = Field(100.0, description="global gradient-norm clip per optimiser", gt=0)
    replay_capacity: int = Field(1_000_000, description="replay capacity in stored steps", ge=100)
    keep_freed_memory: bool = Field(
        True, description="keep freed activation memory for the next update (glibc; avoids page-fault storms)")


class TrackingConfig(_Section):
    """MLflow tracking (local SQLite store under ./mlflow unless MLFLOW_TRACKING_URI is set)."""

    enabled: bool = Field(True, description="log to MLflow")
    experiment: str = Field("dreamer_rl", description="MLflow experiment name")
    video: bool = Field(True, description="log eval-episode and open-loop prediction videos")
    openloop_context: int = Field(5, description="observed frames before open-loop prediction", ge=1)


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
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation and replay")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking")
    run: RunConfig = Field(default_factory=RunConfig, description="budget, clocks and identity")

    @property
    def run_name(self) -> str:
        """``run.name`` or ``<algo>-<task>-s<seed>``."""
        return self.run.name or f"{self.run.algo}-{self.env.task}-s{self.run.seed}"

    def flat(self) -> dict[str, Any]:
        """Dotted ``section.field -> value`` mapping (MLflow params)."""
        return {f"{s}.{k}": v for s, sec in self.model_dump().items() for k, v in sec.items()}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge, ``update`` winning."""
    out = dict(base)
    for k, v in update.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
