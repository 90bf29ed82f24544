"""Named presets: nested dicts of recipe overrides that stack in the order given (``--preset dreamer_v3 dmc_proprio``).

Defaults of :class:`dreamer_rl.config.Recipe` are Dreamer V1 on DMC from pixels, so ``dreamer_v1`` only names it.
An algorithm preset (``dreamer_v1``, ``kl_balance``, ``dreamer_v2``, ``dreamer_v3``) sets ``run.algo``; a domain
preset (``dmc_vision``, ``dmc_proprio``) then applies that algorithm's authors' settings for the domain (a preset
given as ``{algo: overrides}`` picks the entry of the ``run.algo`` set so far). Sizes: ``size1m`` ... ``size400m``
(DreamerV3's table) and ``v2_dmc`` / ``v2_atari`` (DreamerV2's sizes for DMC and Atari). Discrete actions and
Atari: ``discrete`` (the TF1 seed's), ``atari`` (each algorithm's authors' Atari setup), ``atari100k`` (DreamerV3's
Atari 100k benchmark setup); ``gym`` for Gymnasium tasks from their state vector.

Train ratios: ours is gradient updates per env frame. The JAX DreamerV3's ``train_ratio`` is replayed steps per
policy step, so ``updates / frame = train_ratio / (batch · length) / action_repeat``. Its current code runs DMC at
action repeat 1 (``configs.yaml`` ``env.dmc.repeat: 1``): dmc_proprio 1024 / (16·64) / 1 = 1.0, dmc_vision
256 / 1024 / 1 = 0.25.
"""

from __future__ import annotations

from typing import Any

from dreamer_rl.config import deep_merge

ALGO_PRESETS = ("dreamer_v1", "kl_balance", "dreamer_v2", "dreamer_v3", "planet", "planet_paper", "actor")

# DreamerV2 (danijar/dreamerv2 configs.yaml `defaults`): 32x32 categorical latents, LayerNorm GRU 1024, KL balance
# 0.8, truncated-normal actor, actor gradient `auto` (dynamics for continuous, reinforce for discrete), entropy 2e-3,
# slow critic copied every 100 updates and used for the targets, Adam eps 1e-5, batch 16x50, train every 5 steps.
_V2 = {
    "model": {"latent": "categorical", "stoch": 32, "classes": 32, "cell": "gru_ln", "deter": 1024, "hidden": 1024,
              "units": 400, "cnn_depth": 48, "kl": "balanced", "kl_balance": 0.8, "free_nats": 0.0,
              "free_avg": True, "kl_scale": 1.0, "reward_layers": 4, "mlp_layers": 4, "pcont_layers": 4,
              "pcont_scale": 1.0},
    "behavior": {"actor_dist": "trunc_normal", "actor_grad": "auto", "actor_grad_mix": 0.1,
                 "actor_entropy": 2e-3, "actor_min_std": 0.1, "actor_layers": 4, "value_layers": 4,
                 "slow_critic": "hard", "slow_critic_every": 100, "slow_critic_target": True, "expl": "none"},
    "train": {"batch_size": 16, "seq_len": 50, "model_lr": 1e-4, "actor_lr": 8e-5, "value_lr": 2e-4,
              "adam_eps": 1e-5, "grad_clip": 100.0, "train_ratio": 0.1, "train_every": 10, "prefill": 10_000,
              "pretrain": 1},
    "run": {"algo": "dreamer_v2"},
}

# DreamerV3 (danijar/dreamerv3 configs.yaml, 2024+): block GRU with RMSNorm and SiLU, unimix categoricals, dyn/rep
# KL with free nats 1, symlog inputs and decoder, symexp two-hot reward and critic, continuation head towards
# γ(1 - terminated) with γ = 1 - 1/333, REINFORCE actor (bounded normal) with entropy 3e-4 and percentile return
# normalisation (the policy is sampled in evaluation too, as its agent.py acts in every mode), EMA slow critic (0.02)
# as a regulariser, replay-value loss 0.3 whose gradient also trains the world model (repval_grad), one LaProp (lr
# 4e-5, AGC 0.3, warm-up 1000), batch 16x64; truncated-normal fan-in init with the policy's output scaled by 0.01,
# the vector encoder's last hidden layer as the embedding; the untrained agent collects from the first step and
# training starts once 16 x 64 steps are stored (random_agent False); DMC at action repeat 1 with the train ratio of
# dmc_vision (256 -> 0.25 updates per frame).
# Sizes default to size12m (V3's own default is 200m, far beyond one GPU-day of DMC).
_V3 = {
    "model": {"latent": "categorical", "stoch": 32, "classes": 16, "unimix": 0.01, "cell": "block_gru",
              "blocks": 8, "deter": 2048, "hidden": 256, "units": 256, "cnn_depth": 16, "act": "silu",
              "norm": "rms", "prior_layers": 2, "kl": "dyn_rep", "free_nats": 1.0, "dyn_scale": 1.0,
              "rep_scale": 0.1, "kl_scale": 1.0, "obs_loss": "symlog_mse", "symlog_inputs": True,
              "reward_head": "symexp_twohot", "reward_layers": 1, "mlp_layers": 3, "vector_embed": "hidden",
              "init": "dreamer_v3", "pcont": True, "conv": "dreamer_v3",
              "pcont_layers": 1, "pcont_scale": 1.0},
    "behavior": {"actor_dist": "bounded_normal", "actor_grad": "reinforce", "actor_entropy": 3e-4,
                 "actor_min_std": 0.1, "actor_max_std": 1.0, "actor_layers": 3, "value_layers": 3,
                 "critic_head": "symexp_twohot", "slow_critic": "ema", "slow_critic_rate": 0.02,
                 "slow_critic_every": 1, "slow_critic_reg": 1.0, "slow_critic_target": False,
                 "return_norm": "percentile", "repval_scale": 0.3, "repval_grad": True, "horizon": 15, "gamma": 1 - 1 / 333, "lambda_": 0.95, "expl": "none",
                 "eval_sample": True},
    "train": {"optimizer": "laprop", "lr": 4e-5, "agc": 0.3, "warmup": 1000, "laprop_eps": 1e-20,
              "batch_size": 16, "seq_len": 64, "train_ratio": 0.25, "train_every": 10, "prefill": 1024,
              "prefill_policy": "agent", "pretrain": 1, "replay_slices": "stream",
              "replay_context": 1, "replay_online": True},
    "env": {"action_repeat": 1},
    "run": {"algo": "dreamer_v3"},
}

_V3_SIZES = {  # deter, hidden, classes, cnn depth, MLP units (dreamerv3 configs.yaml size* blocks)
    "size1m": (512, 64, 4, 4, 64), "size12m": (2048, 256, 16, 16, 256), "size25m": (3072, 384, 24, 24, 384),
    "size50m": (4096, 512, 32, 32, 512), "size100m": (6144, 768, 48, 48, 768),
    "size200m": (8192, 1024, 64, 64, 1024), "size400m": (12288, 1536, 96, 96, 1536),
}

PRESETS: dict[str, dict[str, Any]] = {
    # Dreamer V1 (Hafner et al. 2020): the defaults of the recipe.
    "dreamer_v1": {"run": {"algo": "dreamer_v1"}},
    # The PyTorch V1/V2 seed's "Dreamerv2": V1 with KL balancing (α 0.8), Gaussian latents, tanh-normal actor.
    "kl_balance": {"model": {"kl": "balanced", "kl_balance": 0.8, "free_avg": True}, "run": {"algo": "kl_balance"}},
    "dreamer_v2": _V2,
    "dreamer_v3": _V3,
    # DMC from pixels: 64x64 RGB, action repeat 2, 1000-frame episodes.
    "dmc_vision": {"per_algo": {
        "dreamer_v1": {"env": {"from_pixels": True, "action_repeat": 2}},
        "kl_balance": {"env": {"from_pixels": True, "action_repeat": 2}},
        # dreamerv2 `dmc_vision`: deter/hidden 200, free nats 1, lr 3e-4 / 8e-5 / 8e-5, entropy 1e-4, prefill 1000
        "dreamer_v2": {"env": {"from_pixels": True, "action_repeat": 2},
                       "model": {"deter": 200, "hidden": 200, "free_nats": 1.0},
                       "behavior": {"actor_entropy": 1e-4},
                       "train": {"model_lr": 3e-4, "actor_lr": 8e-5, "value_lr": 8e-5, "prefill": 1000,
                                 "pretrain": 100}},
        # dreamerv3 `dmc_vision`: action repeat 1, train ratio 256; images use a plain MSE
        "dreamer_v3": {"env": {"from_pixels": True, "action_repeat": 1}, "model": {"obs_loss": "mse"},
                       "train": {"train_ratio": 0.25}},
    }},
    # DMC from the state vector. V1: free nats 1 instead of 3 (DreamerV2's proprio setting): a few state dims carry
    # under 3 nats per step, so with 3 free nats the KL term has no gradient and the prior is never trained
    # (measured: KL 1.5-3.3 over the first 180 updates on cartpole_balance).
    "dmc_proprio": {"per_algo": {
        "dreamer_v1": {"env": {"from_pixels": False}, "model": {"free_nats": 1.0}},
        "kl_balance": {"env": {"from_pixels": False}, "model": {"free_nats": 1.0}},
        "dreamer_v2": {"env": {"from_pixels": False},
                       "model": {"deter": 200, "hidden": 200, "free_nats": 1.0},
                       "behavior": {"actor_entropy": 1e-4},
                       "train": {"model_lr": 3e-4, "actor_lr": 8e-5, "value_lr": 8e-5, "prefill": 1000,
                                 "pretrain": 100}},
        # dreamerv3 `dmc_proprio`: size1m, action repeat 1, train ratio 1024 (one update per frame)
        "dreamer_v3": {"env": {"from_pixels": False, "action_repeat": 1}, "model": {"obs_loss": "symlog_mse"},
                       "train": {"train_ratio": 1.0}},
    }},
    # PlaNet's per-domain action repeats (cartpole 8, cheetah 4, ...).
    "planet_repeat": {"env": {"action_repeat": "planet"}},
    # Learn a continuation head and weight imagined returns by it (google-research/dreamer `pcont`).
    "pcont": {"model": {"pcont": True}},
    # DreamerV2's sizes: DMC (deter/hidden 200) and Atari (600).
    "v2_dmc": {"model": {"deter": 200, "hidden": 200}},
    "v2_atari": {"model": {"deter": 600, "hidden": 600}},
    # Everything small so a whole run (collect, train, eval, log, save) ends in well under a minute on a CPU.
    "debug": {
        "env": {"max_episode_frames": 200},
        "model": {"stoch": 8, "classes": 4, "deter": 32, "hidden": 32, "units": 32, "cnn_depth": 4, "blocks": 4},
        "behavior": {"horizon": 5, "actor_layers": 2, "value_layers": 2},
        "planner": {"horizon": 5, "candidates": 64, "iterations": 3, "top_k": 8},
        "train": {"batch_size": 4, "seq_len": 10, "train_every": 100, "train_ratio": 0.05, "prefill": 200,
                  "pretrain": 2, "replay_capacity": 2000, "warmup": 10},
        "run": {"steps": 1000, "log_every": 200, "eval_every": 500, "save_every": 500},
    },
}
# The TF1 Dreamer's `discrete` preset (google-research/dreamer scripts/configs.py): one-hot actor, horizon 10, KL
# scale 0.1, tanh-clipped rewards, ε-greedy 0.4 decaying linearly over 1e7 steps to 0.4 · 0.25 = 0.1, test ε 0.001.
_DISCRETE = {
    "model": {"kl_scale": 0.1},
    "behavior": {"horizon": 10, "expl": "epsilon_greedy", "expl_amount": 0.4, "expl_decay": 1e7, "expl_min": 0.1,
                 "eval_noise": 0.001},
    "env": {"reward_clip": "tanh"},
}
PRESETS["discrete"] = _DISCRETE
# Atari frames: 27k agent steps = 108k frames per episode at action repeat 4.
_ATARI_ENV = {"from_pixels": True, "action_repeat": 4, "max_episode_frames": 108_000, "image_size": 64}
PRESETS["atari"] = {"per_algo": {
    # TF1 Dreamer `[dreamer, pcont, discrete, atari]`: a life loss ends the episode for the continuation target.
    "dreamer_v1": deep_merge(deep_merge(PRESETS["pcont"], _DISCRETE), {"env": {**_ATARI_ENV, "life_loss": True}}),
    "kl_balance": deep_merge(deep_merge(PRESETS["pcont"], _DISCRETE), {"env": {**_ATARI_ENV, "life_loss": True}}),
    # dreamerv2 configs.yaml `atari`: deter 600, grey 64x64, sticky actions, tanh reward clipping, γ 0.999, KL 0.1,
    # discount loss 5, lr 2e-4 / 4e-5 / 1e-4, entropy 1e-3, train every 16 agent steps (1 update per 64 frames),
    # prefill 50k agent steps (200k frames); the continuation head is on (its `pred_discount`).
    "dreamer_v2": {"env": {**_ATARI_ENV, "grayscale": True, "sticky_actions": 0.25, "reward_clip": "tanh"},
                   "model": {"deter": 600, "hidden": 600, "kl_scale": 0.1, "pcont": True, "pcont_scale": 5.0},
                   "behavior": {"gamma": 0.999, "actor_entropy": 1e-3, "actor_grad": "auto"},
                   "train": {"model_lr": 2e-4, "actor_lr": 4e-5, "value_lr": 1e-4, "train_ratio": 1 / 64,
                             "train_every": 64, "prefill": 200_000}},
    # dreamerv3 configs.yaml `atari` (200M frames): 96x96 grey, sticky actions, all 18 actions, train ratio 32
    # (32 / (16·64) / 4 updates per frame), size200m.
    "dreamer_v3": {"env": {**_ATARI_ENV, "image_size": 96, "grayscale": True, "sticky_actions": 0.25,
                           "full_action_space": True},
                   "train": {"train_ratio": 32 / 1024 / 4, "prefill": 4096}, "run": {"steps": 204_000_000}},
}}
# dreamerv3 configs.yaml `atari100k`: 64x64 colour, no sticky actions, the minimal action set, 30 no-ops, train
# ratio 256 (0.0625 updates per frame), 100k agent steps = 400k frames; training starts at 1024 agent steps.
PRESETS["atari100k"] = {"env": {**_ATARI_ENV, "grayscale": False, "sticky_actions": 0.0, "full_action_space": False},
                        "train": {"train_ratio": 256 / 1024 / 4, "prefill": 4096}, "run": {"steps": 400_000}}
# Gymnasium tasks from their state vector, one frame per action. DreamerV3: size1m with train ratio 256 (0.25 updates
# per frame; its bsuite config uses 1024, its default 32), training from 1024 frames as V3 itself.
PRESETS["gym"] = {"per_algo": {
    "dreamer_v1": {"env": {"from_pixels": False, "action_repeat": 1}, "model": {"free_nats": 1.0}},
    "kl_balance": {"env": {"from_pixels": False, "action_repeat": 1}, "model": {"free_nats": 1.0}},
    "dreamer_v2": {"env": {"from_pixels": False, "action_repeat": 1}, "model": {"free_nats": 1.0}},
    "dreamer_v3": {"env": {"from_pixels": False, "action_repeat": 1}, "train": {"train_ratio": 0.25}},
}}
# PlaNet, camera-ready (google-research/planet HEAD, scripts/configs.py and the paper's appendix): CEM in latent space
# for training and evaluation (horizon 12, 1000 candidates, 10 iterations, top 100, sum of predicted rewards),
# N(0, 0.3) action noise while collecting, no actor or value; RSSM 200/30 with ReLU, heads of 2 x 100 ReLU units
# (networks/basic.py feed_forward), free nats 3, no overshooting, reward loss scale 10; Adam 1e-3 (eps 1e-4), clip
# 1000, a linear learning-rate ramp of 10000 in PlaNet's step counter, which counts sequences (50 per update): 200
# updates; batch 50x50, 100 updates per 1000-frame episode (collect_every 5000 sequences) after 5 random seed
# episodes; PlaNet's per-domain action repeats (cartpole 8, cheetah 4, ...); frames quantised to 5 bits with uniform
# dequantisation noise (tools/preprocess.py).
_PLANET = {
    "env": {"action_repeat": "planet"},
    "model": {"act": "relu", "stoch": 30, "deter": 200, "hidden": 200, "units": 100, "reward_layers": 2,
              "kl": "free_nats", "free_nats": 3.0, "reward_scale": 10.0, "image_bits": 5},
    "behavior": {"action_head": False, "value_head": False, "expl": "additive_gaussian", "expl_amount": 0.3},
    "planner": {"kind": "cem", "horizon": 12, "candidates": 1000, "iterations": 10, "top_k": 100,
                "objective": "sum"},
    "train": {"model_lr": 1e-3, "adam_eps": 1e-4, "grad_clip": 1000.0, "lr_ramp": 200, "batch_size": 50, "seq_len": 50,
              "train_every": 1000, "train_ratio": 0.1, "prefill": 5000, "pretrain": 100},
    "run": {"algo": "planet"},
}
PRESETS["planet"] = _PLANET
# V1 without a value head (the TF1 seed's `actor` preset, `value_head: False`): the actor maximises imagined
# H-step reward sums, no bootstrap.
PRESETS["actor"] = {"behavior": {"value_head": False}, "run": {"algo": "actor"}}
# PlaNet's domain settings: its own action repeats in both; from the state vector free nats 1 (see dmc_proprio).
PRESETS["dmc_vision"]["per_algo"]["planet"] = {"env": {"from_pixels": True, "action_repeat": "planet"}}
PRESETS["dmc_proprio"]["per_algo"]["planet"] = {"env": {"from_pixels": False, "action_repeat": "planet"},
                                                "model": {"free_nats": 1.0}}
for _name, (_deter, _hidden, _classes, _depth, _units) in _V3_SIZES.items():
    PRESETS[_name] = {"model": {"deter": _deter, "hidden": _hidden, "classes": _classes, "cnn_depth": _depth,
                                "units": _units}}
# dreamerv3 `dmc_proprio` trains size1m
PRESETS["dmc_proprio"]["per_algo"]["dreamer_v3"] = deep_merge(PRESETS["size1m"],
                                                              PRESETS["dmc_proprio"]["per_algo"]["dreamer_v3"])
PRESETS["gym"]["per_algo"]["dreamer_v3"] = deep_merge(PRESETS["size1m"], PRESETS["gym"]["per_algo"]["dreamer_v3"])
# dreamerv3 `atari` trains the default size200m
PRESETS["atari"]["per_algo"]["dreamer_v3"] = deep_merge(PRESETS["size200m"], PRESETS["atari"]["per_algo"]["dreamer_v3"])


# Plan2Explore, DreamerV2's `expl_behavior: Plan2Explore` (dreamerv2 configs.yaml): 10 one-step predictors of the
# next posterior sample from [feat, action], the reward the log of their disagreement (intrinsic scale 1, task reward
# 0), ensemble Adam 3e-4; the exploration actor-critic collects, the task actor is evaluated. The run's algo tag says
# both (`dreamer_v2_plan2explore`).
_P2E = {"behavior": {"expl_behavior": "plan2explore", "expl_intr_scale": 1.0, "expl_extr_scale": 0.0,
                     "expl_lr": 3e-4, "disag_models": 10, "disag_target": "stoch", "disag_log": True,
                     "disag_action_cond": True}}
PRESETS["plan2explore"] = {"per_algo": {
    algo: deep_merge(_P2E, {"run": {"algo": f"{algo}_plan2explore"}})
    for algo in ("dreamer_v1", "kl_balance", "dreamer_v2", "dreamer_v3", "actor")}}
# A variant takes its family's domain settings where a domain preset has no entry of its own.
ALGO_FAMILY = {"planet_paper": "planet", "actor": "dreamer_v1", "kl_balance": "dreamer_v1",
               **{f"{algo}_plan2explore": algo for algo in ("dreamer_v1", "kl_balance", "dreamer_v2", "dreamer_v3",
                                                           "actor")}}

# Time-agnostic prediction (Jayaraman et al. 2018; dreamer_rl/losses/tap.py) beside the usual losses.
PRESETS["tap"] = {"model": {"tap_scale": 1.0}}
# PlaNet's paper-era world-model losses and schedule (google-research/planet at 1896bdb); not a preset itself: the
# `planet_paper` preset is built from it.
_PLANET_PAPER = {
    "model": {
        # scripts/configs.py _loss_functions: overshooting = chunk length - 1, the overshooting divergence weighted
        # like the zero-step one (divergence_scale 1), global divergence 0.1, free nats 2, reward scale 10
        "overshooting": 49, "overshooting_scale": 1.0, "global_kl_scale": 0.1, "kl": "free_nats", "kl_scale": 1.0,
        "free_nats": 2.0, "reward_scale": 10.0, "image_scale": 1.0,
        # overshooting_losses.reward = overshooting_reward_scale 100 (0 at HEAD): the reward head on the stopped
        # posteriors once per overshooting pair (training/utility.py compute_losses)
        "overshooting_reward_scale": 100.0,
        # training/utility.py compute_losses: free nats per step, tf.maximum(free_nats, divergence), then the mean
        "free_avg": False,
        # scripts/configs.py _model_components + models/rssm.py: state 30, belief and hidden 200, min std 0.1,
        # ReLU layers (also networks/conv_ha.py); networks/basic.py feed_forward: reward head 2 x 100 ReLU units
        "stoch": 30, "deter": 200, "hidden": 200, "min_std": 0.1, "act": "relu", "reward_layers": 2, "units": 100,
    },
    "train": {
        # scripts/configs.py _define_optimizers: Adam 1e-3, eps 1e-4, clip 1000, tools.schedule.linear(step,
        # ramp=10000); its `step` counts sequences (training/trainer.py adds the batch size 50 per update), so
        # the ramp ends after 10000 / 50 = 200 updates
        "model_lr": 1e-3, "adam_eps": 1e-4, "grad_clip": 1000.0, "lr_ramp": 200,
        # scripts/configs.py _data_processing: batch_shape (50, 50)
        "batch_size": 50, "seq_len": 50,
    },
    # scripts/tasks.py: per-domain action repeats (there cup_catch 6; ours 4, the camera-ready value)
    "env": {"action_repeat": "planet"},
    # control/planning.py cross_entropy_method: returns discounted by 0.99 (camera-ready: plain sums)
    "planner": {"objective": "discounted"},
}

# Transition-model variants, combined with an algorithm preset (``--preset planet ssm``): PlaNet's ablations, a
# purely stochastic SSM and a purely deterministic mean-only model without the KL term, and the PlaNet fork's
# (rosea-tf/planet) moving-average RSSM (ma_ppn, ma_alpha 0.25) and clockwork RSSM (its grid: two equal cells of
# periods 1 and 4; `cell_as_prior` is off by default there and its experiment grid runs it at 0.1).
PRESETS.update({
    "ssm": {"model": {"transition": "ssm"}},
    "deterministic": {"model": {"mean_only": True, "kl_scale": 0.0}},
    "rssm_ma": {"model": {"transition": "rssm_ma", "ma_ppn": 0.25, "ma_alpha": 0.25}},
    "clockwork": {"model": {"transition": "clockwork", "clock_periods": [1, 4]}},
    "cell_as_prior": {"model": {"transition": "clockwork", "clock_periods": [1, 4], "cell_as_prior": 0.1}},
})


# PlaNet at the paper's commit (1896bdb, the discrete-action fork's base): camera-ready planet + the paper-era losses.
PRESETS["planet_paper"] = deep_merge(deep_merge(_PLANET, _PLANET_PAPER), {"run": {"algo": "planet_paper"}})


def apply_presets(names: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the presets ``names`` in order onto ``base``; ``KeyError(name)`` for an unknown one."""
    merged: dict[str, Any] = dict(base or {})
    for name in names:
        preset = PRESETS[name]
        if "per_algo" in preset:
            algo = merged.get("run", {}).get("algo", "dreamer_v1")
            entries = preset["per_algo"]
            preset = entries.get(algo) or entries.get(ALGO_FAMILY.get(algo, "dreamer_v1")) or entries["dreamer_v1"]
        merged = deep_merge(merged, preset)
    return merged
