"""Named presets: nested dicts of recipe overrides that stack in the order given (``--preset dmc_proprio debug``).

Defaults of :class:`dreamer_rl.config.Recipe` are Dreamer V1 on DMC from pixels, so ``dreamer_v1`` is empty.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # Dreamer V1 (Hafner et al. 2020): the defaults of the recipe.
    "dreamer_v1": {"run": {"algo": "dreamer_v1"}},
    # DMC from pixels: 64x64 RGB, action repeat 2, 1000-frame episodes (the defaults, named for clarity).
    "dmc_vision": {"env": {"from_pixels": True, "action_repeat": 2}},
    # DMC from the state vector. Free nats 1 instead of 3 (DreamerV2's proprio setting): a few state dims carry
    # under 3 nats per step, so with 3 free nats the mean KL sits below the threshold, the KL term has no gradient
    # and the prior, which imagination rolls out, is never trained (measured: KL 1.5-3.3 over the first 180
    # updates on cartpole_balance).
    "dmc_proprio": {"env": {"from_pixels": False}, "model": {"free_nats": 1.0}},
    # PlaNet's per-domain action repeats (cartpole 8, cheetah 4, ...).
    "planet_repeat": {"env": {"action_repeat": "planet"}},
    # Learn a continuation head and weight imagined returns by it (google-research/dreamer `pcont`).
    "pcont": {"model": {"pcont": True}},
    # Everything small so a whole run (collect, train, eval, log, save) ends in well under a minute on a CPU.
    "debug": {
        "env": {"max_episode_frames": 200},
        "model": {"stoch": 8, "deter": 32, "hidden": 32, "units": 32, "cnn_depth": 4},
        "behavior": {"horizon": 5, "actor_layers": 2, "value_layers": 2},
        "train": {"batch_size": 4, "seq_len": 10, "train_every": 100, "train_ratio": 0.05, "prefill": 200,
                  "pretrain": 2, "replay_capacity": 2000},
        "run": {"steps": 1000, "log_every": 200, "eval_every": 500, "save_every": 500},
    },
}
