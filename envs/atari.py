"""Atari 2600 games (``atari_<game>``: ``atari_pong``, ``atari_ms_pacman``, ...) as TorchRL environments.

The 57 games of the Atari-57 benchmark (:data:`ATARI_GAMES`), named in snake_case and mapped through the table
:data:`GAME_IDS` (never by splitting names) to ale-py's Gymnasium ids ``ALE/<CamelCase>-v5``. ale-py ships the ROMs.

The Gymnasium env is built with its own frame skip off (``frameskip=1``); this module does the rest, following the
DQN protocol (Mnih et al. 2015) as DreamerV2/V3 use it:

- *Raw frames and agent steps.* One agent step repeats the action for ``action_repeat`` raw frames (ALE
  ``act`` calls), summing their rewards, and stops early at game over or at the episode limit.
- *Observation.* ``pixels`` = resize(max(f[t-1], f[t])): the pixel-wise max over the last two raw frames seen
  (which removes Atari sprite flicker), then resized to ``image_size x image_size`` with PIL's bilinear filter
  (antialiased when shrinking; DreamerV3's default ``resize='pillow'``). uint8 ``[C, H, W]``: ``C = 1`` with
  ``grayscale`` (ALE's own luminance screen, ``obs_type="grayscale"``), ``C = 3`` otherwise. After a reset both
  frames of the max are the reset screen, or the last two no-op frames.
- *No-op starts.* Each reset plays ``n ~ U{0, ..., noop_max}`` NOOP frames (both ends included, as DreamerV3's
  ``rng.integers(noops + 1)``; DreamerV2 through Gym's ``AtariPreprocessing`` and the reference scores draw from
  ``1..noop_max``). ``n`` comes from a numpy generator seeded with the env's seed; no-op frames do not count
  towards the episode limit. A game that ends during the no-ops is reset again.
- *Sticky actions* (Machado et al. 2018): ALE repeats the previous raw action with probability ``sticky_actions``
  (0.25 by default, ``repeat_action_probability``); ALE's generator is seeded from the env's seed.
- *Actions.* The minimal action set by default (Pong: 6), all 18 with ``full_action_space``; exposed as a one-hot
  ``action`` (``OneHot`` spec, int64 ``[A]``); the argmax is played.
- *Episode ends.* Game over -> ``terminated``; ``max_episode_frames`` raw frames (108,000 = 30 minutes at 60 Hz
  = 27,000 agent steps at repeat 4) -> ``truncated``. ALE's own frame limit is switched off so this counter alone
  truncates. ``done = terminated | truncated``.
- *Life loss.* ``life_lost`` (bool ``[1]``, always in the specs) is True on a step during which ``ale.lives()``
  decreased, only when ``life_loss=True``; it never sets ``terminated`` or ``done`` (the game goes on). Training
  may OR it into the continuation target (DreamerV2's ``life_done``, DreamerV3's ``lives='discount'``).

:func:`human_normalized` maps a score to ``(score - random) / (human - random)`` with the reference scores in
``atari_scores.json`` (the file names its source).
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import Compose, EnvBase, InitTracker, TransformedEnv

from dreamer_rl.errors import MissingDependencyError, UserError

__all__ = [
    "ATARI_GAMES",
    "GAME_IDS",
    "AtariEnv",
    "gym_id",
    "human_normalized",
    "make",
    "reference_scores",
    "resolve",
    "task_names",
]

PREFIX = "atari_"

#: Atari-57 game (snake_case, as in the reference score tables) -> ale-py's CamelCase name (``ALE/<name>-v5``).
GAME_IDS: dict[str, str] = {
    "alien": "Alien", "amidar": "Amidar", "assault": "Assault", "asterix": "Asterix", "asteroids": "Asteroids",
    "atlantis": "Atlantis", "bank_heist": "BankHeist", "battle_zone": "BattleZone", "beam_rider": "BeamRider",
    "berzerk": "Berzerk", "bowling": "Bowling", "boxing": "Boxing", "breakout": "Breakout", "centipede": "Centipede",
    "chopper_command": "ChopperCommand", "crazy_climber": "CrazyClimber", "defender": "Defender",
    "demon_attack": "DemonAttack", "double_dunk": "DoubleDunk", "enduro": "Enduro", "fishing_derby": "FishingDerby",
    "freeway": "Freeway", "frostbite": "Frostbite", "gopher": "Gopher", "gravitar": "Gravitar", "hero": "Hero",
    "ice_hockey": "IceHockey", "jamesbond": "Jamesbond", "kangaroo": "Kangaroo", "krull": "Krull",
    "kung_fu_master": "KungFuMaster", "montezuma_revenge": "MontezumaRevenge", "ms_pacman": "MsPacman",
    "name_this_game": "NameThisGame", "phoenix": "Phoenix", "pitfall": "Pitfall", "pong": "Pong",
    "private_eye": "PrivateEye", "qbert": "Qbert", "riverraid": "Riverraid", "road_runner": "RoadRunner",
    "robotank": "Robotank", "seaquest": "Seaquest", "skiing": "Skiing", "solaris": "Solaris",
    "space_invaders": "SpaceInvaders", "star_gunner": "StarGunner", "surround": "Surround", "tennis": "Tennis",
    "time_pilot": "TimePilot", "tutankham": "Tutankham", "up_n_down": "UpNDown", "venture": "Venture",
    "video_pinball": "VideoPinball", "wizard_of_wor": "WizardOfWor", "yars_revenge": "YarsRevenge",
    "zaxxon": "Zaxxon",
}  # fmt: skip

#: The 57 games, sorted (names without the ``atari_`` prefix).
ATARI_GAMES: tuple[str, ...] = tuple(sorted(GAME_IDS))

_SCORES_FILE = Path(__file__).with_name("atari_scores.json")


def _gymnasium() -> Any:
    """Gymnasium with ale-py's ``ALE/`` ids registered."""
    try:
        import ale_py
        import gymnasium
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError.for_extra("ale-py", "atari") from exc
    gymnasium.register_envs(ale_py)
    return gymnasium


def task_names() -> list[str]:
    """``atari_<game>`` for the 57 games of :data:`ATARI_GAMES`, sorted (no dependency needed)."""
    return [f"{PREFIX}{game}" for game in ATARI_GAMES]


def resolve(name: str) -> str:
    """``atari_<game>`` (or the bare ``<game>``) -> ``<game>``; ``UnknownTaskError`` with close matches otherwise."""
    game = name.removeprefix(PREFIX)
    if game not in GAME_IDS:
        from envs.registry import unknown_task

        raise unknown_task(name if name.startswith(PREFIX) else f"{PREFIX}{name}", "atari", task_names())
    return game


def gym_id(game: str) -> str:
    """Gymnasium id of a game: ``gym_id("ms_pacman") == "ALE/MsPacman-v5"``."""
    return f"ALE/{GAME_IDS[resolve(game)]}-v5"


@cache
def reference_scores() -> dict[str, Any]:
    """The parsed ``atari_scores.json``: ``{"source": str, "notes": str, "games": {game: {"random", "human"}}}``."""
    return json.loads(_SCORES_FILE.read_text())


def human_normalized(game: str, score: float) -> float:
    """Human-normalised score ``(score - random) / (human - random)``: 0 = random agent, 1 = human tester.

    ``game`` is ``"pong"`` or ``"atari_pong"``. Example: ``human_normalized("pong", 14.6) == 1.0``,
    ``human_normalized("pong", -20.7) == 0.0``.
    """
    ref = reference_scores()["games"][resolve(game)]
    return (float(score) - ref["random"]) / (ref["human"] - ref["random"])


class AtariEnv(EnvBase):
    """One Atari game as an unbatched TorchRL env (``batch_size=[]``); the protocol is in the module docstring.

    Keys: ``pixels`` uint8 ``[C, image_size, image_size]``; ``life_lost`` bool ``[1]``; ``action`` int64 one-hot
    ``[A]``; ``reward`` float32 ``[1]`` (sum over the step's raw frames); ``done`` / ``terminated`` /
    ``truncated`` bool ``[1]``.

    Attributes: :attr:`action_repeat` (raw frames per agent step, read by the training loop), :attr:`gym_env` (the
    Gymnasium env), :attr:`ale` (its ``ALEInterface``), :attr:`last_noops` (no-ops played at the last reset).

    Seeding: :meth:`set_seed` seeds the no-op generator and, at the next reset, ALE (ROM reload with a fresh
    ``random_seed``, which drives sticky actions); the same seed and actions replay the same frames.
    """

    def __init__(
        self,
        game: str,
        *,
        action_repeat: int = 4,
        image_size: int = 64,
        max_episode_frames: int = 108_000,
        seed: int = 0,
        device: str | torch.device = "cpu",
        sticky_actions: float = 0.25,
        noop_max: int = 30,
        grayscale: bool = True,
        full_action_space: bool = False,
        life_loss: bool = False,
    ) -> None:
        gymnasium = _gymnasium()
        super().__init__(device=device, batch_size=torch.Size([]))
        self.game = resolve(game)
        self.action_repeat = action_repeat
        self.image_size = image_size
        self.max_episode_frames = max_episode_frames
        self.noop_max = noop_max
        self.grayscale = grayscale
        self.life_loss = life_loss
        self.gym_env: Any = gymnasium.make(
            gym_id(self.game),
            frameskip=1,
            repeat_action_probability=float(sticky_actions),
            full_action_space=full_action_space,
            obs_type="grayscale" if grayscale else "rgb",
            max_num_frames_per_episode=0,  # ALE: 0 = no limit; max_episode_frames truncates instead
        )
        self._noop = self.gym_env.unwrapped.get_action_meanings().index("NOOP")
        self._rng = np.random.default_rng(seed)
        self._reset_seed: int | None = seed
        self._frames: tuple[np.ndarray, np.ndarray] | None = None  # (f[t-1], f[t]), raw screens
        self._lives = 0
        self._episode_frames = 0
        self.last_noops = 0

        channels = 1 if grayscale else 3
        pixels = Bounded(0, 255, shape=(channels, image_size, image_size), dtype=torch.uint8, device=self.device)
        flag = Categorical(2, shape=(1,), dtype=torch.bool, device=self.device)
        self.observation_spec = Composite(pixels=pixels, life_lost=flag.clone(), shape=(), device=self.device)
        self.action_spec = OneHot(int(self.gym_env.action_space.n), dtype=torch.int64, device=self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        self.done_spec = Composite(
            done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=(), device=self.device
        )
        self.set_seed(seed)

    @property
    def ale(self) -> Any:
        """The ``ale_py.ALEInterface`` under the Gymnasium env."""
        return self.gym_env.unwrapped.ale

    # -- observations -------------------------------------------------------------------------------------------
    def _pixels(self) -> torch.Tensor:
        from PIL import Image

        assert self._frames is not None
        pooled = np.maximum(*self._frames)  # [210, 160] or [210, 160, 3]
        size = (self.image_size, self.image_size)
        image = np.array(Image.fromarray(pooled).resize(size, Image.Resampling.BILINEAR))  # [H, W(, 3)], a copy
        image = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)  # [C, H, W]
        return torch.from_numpy(np.ascontiguousarray(image)).to(self.device)

    def _out(self, *, reward: float | None, terminated: bool, truncated: bool, life_lost: bool) -> TensorDictBase:
        def flag(v: bool) -> torch.Tensor:
            return torch.tensor([v], dtype=torch.bool, device=self.device)

        out: dict[str, torch.Tensor] = {
            "pixels": self._pixels(),
            "life_lost": flag(life_lost),
            "done": flag(terminated or truncated),
            "terminated": flag(terminated),
            "truncated": flag(truncated),
        }
        if reward is not None:
            out["reward"] = torch.tensor([reward], dtype=torch.float32, device=self.device)
        return TensorDict(out, batch_size=torch.Size([]), device=self.device)

    # -- EnvBase API --------------------------------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        frame, _ = self.gym_env.reset(seed=self._reset_seed)
        self._reset_seed = None
        prev = frame
        self.last_noops = int(self._rng.integers(self.noop_max + 1))
        for _ in range(self.last_noops):
            prev = frame
            frame, _, game_over, ale_truncated, _ = self.gym_env.step(self._noop)
            if game_over or ale_truncated:
                frame, _ = self.gym_env.reset()
                prev = frame
        self._frames = (prev, frame)
        self._lives = int(self.ale.lives())
        self._episode_frames = 0
        return self._out(reward=None, terminated=False, truncated=False, life_lost=False)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        assert self._frames is not None, "reset the env before stepping it"
        index = int(tensordict.get("action").argmax(-1))
        prev, frame = self._frames
        reward, terminated, truncated, life_lost = 0.0, False, False, False
        for _ in range(self.action_repeat):
            prev = frame
            frame, r, game_over, ale_truncated, info = self.gym_env.step(index)
            reward += float(r)
            self._episode_frames += 1
            lives = int(info["lives"])
            life_lost = life_lost or lives < self._lives
            self._lives = lives
            if game_over:
                terminated = True
                break
            if ale_truncated or self._episode_frames >= self.max_episode_frames:
                truncated = True
                break
        self._frames = (prev, frame)
        return self._out(
            reward=reward, terminated=terminated, truncated=truncated, life_lost=self.life_loss and life_lost
        )

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._reset_seed = int(seed) % 2**32  # Gymnasium's seed range

    def close(self, *, raise_if_closed: bool = True) -> None:
        env = self.__dict__.get("gym_env")
        if env is not None:
            env.close()
        super().close(raise_if_closed=raise_if_closed)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{what} for atari_ tasks must be a positive integer, got {value!r}")
    return value


def make(
    name: str,
    *,
    from_pixels: bool = True,
    action_repeat: int | str = 4,
    image_size: int = 64,
    max_episode_frames: int = 108_000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    sticky_actions: float = 0.25,
    noop_max: int = 30,
    grayscale: bool = True,
    full_action_space: bool = False,
    life_loss: bool = False,
) -> TransformedEnv:
    """Build ``atari_<game>`` as ``TransformedEnv(AtariEnv(...), Compose(InitTracker()))``.

    Args:
        name: ``atari_<game>``, one of :func:`task_names`.
        from_pixels: must be True (Atari is observed from pixels only).
        action_repeat: raw frames per agent step (DQN / Dreamer: 4).
        image_size: side of the square ``pixels`` (64 for Dreamer, 84 or 96 work too).
        max_episode_frames: episode limit in raw frames (108,000 = 30 minutes of play) -> ``truncated``.
        seed: seeds the no-op starts and ALE (sticky actions).
        device: where the env's tensors live.
        sticky_actions: probability that ALE repeats the previous raw action (0 for a deterministic emulator).
        noop_max: no-op starts draw ``U{0, ..., noop_max}`` NOOP frames at each reset (0: none).
        grayscale: one luminance channel (``[1, H, W]``) instead of RGB (``[3, H, W]``).
        full_action_space: all 18 joystick actions instead of the game's minimal set.
        life_loss: report ``life_lost`` on the steps that lose a life (``done`` is unaffected).

    Raises:
        UnknownTaskError: ``name`` is not one of the 57 games (one line with close matches).
        UserError: ``from_pixels=False`` or a bad value (one line).
        MissingDependencyError: ale-py / gymnasium are not installed (names the ``atari`` extra).
    """
    game = resolve(name)
    if not from_pixels:
        raise UserError(f"{name}: atari_ tasks are observed from pixels only; pass from_pixels=True")
    repeat = _positive_int(action_repeat, "action_repeat")
    _positive_int(image_size, "image_size")
    _positive_int(max_episode_frames, "max_episode_frames")
    if max_episode_frames < repeat:
        raise UserError(f"max_episode_frames ({max_episode_frames}) must be at least action_repeat ({repeat})")
    if isinstance(sticky_actions, bool) or not isinstance(sticky_actions, (int, float)) or not (
        math.isfinite(sticky_actions) and 0.0 <= sticky_actions <= 1.0
    ):
        raise UserError(f"sticky_actions must be a probability in [0, 1], got {sticky_actions!r}")
    if isinstance(noop_max, bool) or not isinstance(noop_max, int) or noop_max < 0:
        raise UserError(f"noop_max must be a non-negative integer, got {noop_max!r}")
    base = AtariEnv(
        game,
        action_repeat=repeat,
        image_size=image_size,
        max_episode_frames=max_episode_frames,
        seed=seed,
        device=device,
        sticky_actions=float(sticky_actions),
        noop_max=noop_max,
        grayscale=bool(grayscale),
        full_action_space=bool(full_action_space),
        life_loss=bool(life_loss),
    )
    return TransformedEnv(base, Compose(InitTracker()))
