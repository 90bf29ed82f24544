"""Videos the runs log: eval episodes and open-loop predictions (truth / model / error, as the original Dreamer).

Open loop: the world model filters the first ``context`` frames of each sequence with the posterior, then predicts
the remaining ``T - context`` frames from the prior, fed the true actions, without seeing the frames. Rows of the
video are truth, model and error ``(model - truth + 1) / 2``; columns are sequences.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from dreamer_rl.world_model import WorldModel

_log = logging.getLogger(__name__)


def to_hwc_uint8(frames: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` uint8 or float in ``[-0.5, 0.5]`` -> ``[..., H, W, 3]`` uint8."""
    if frames.dtype != torch.uint8:
        frames = ((frames + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return frames.movedim(-3, -1)


@torch.no_grad()
def openloop_frames(world_model: WorldModel, batch: TensorDictBase, *, obs_key: str = "pixels",
                    context: int = 5, sequences: int = 6) -> torch.Tensor:
    """Open-loop prediction video ``[T, 3 H, N W, 3]`` uint8 from stored rows ``[B, T]`` (``N = min(B, sequences)``)."""
    wm, rssm = world_model, world_model.rssm
    batch = batch[:sequences]
    obs, action, is_init = batch.get(obs_key), batch.get("action").float(), batch.get("is_init")
    N, T = obs.shape[:2]
    context = min(context, T - 1)
    vector = batch.get("observation")[:, :context] if wm.vector_dim else None
    states = wm.observe(obs[:, :context], action[:, :context], is_init[:, :context], vector=vector)
    deter, stoch = states.deter[:, -1], states.stoch[:, -1]
    recon = wm.decoder(rssm.feat(states.stoch, states.deter))  # [N, context, 3, H, W]
    preds = []
    for t in range(context, T):
        deter, stoch = rssm.img_step(deter, stoch, action[:, t], sample=False)
        preds.append(wm.decoder(rssm.feat(stoch, deter)))
    model = torch.cat([recon, torch.stack(preds, 1)], 1)  # [N, T, 3, H, W] in [-0.5, 0.5]
    truth = wm.target(obs)
    error = (model - truth + 1) / 2 - 0.5
    video = torch.stack([truth, model, error], 0)  # [3, N, T, 3, H, W]
    video = to_hwc_uint8(video.clamp(-0.5, 0.5))  # [3, N, T, H, W, 3]
    R, N, T, H, W, C = video.shape
    return video.permute(2, 0, 3, 1, 4, 5).reshape(T, R * H, N * W, C)


def _video_dims(height: int, width: int, block: int = 16) -> tuple[int, int]:
    return -(-height // block) * block, -(-width // block) * block


def _as_video(frames: Any) -> np.ndarray:
    """``frames`` as a contiguous uint8 array [T, H, W, 3] (grey [T, H, W] or [T, H, W, 1] are repeated to RGB)."""
    if hasattr(frames, "detach"):  # a torch tensor
        frames = frames.detach().cpu().numpy()
    array = np.asarray(frames)
    if array.dtype != np.uint8:
        raise TypeError(f"video frames must be uint8, got {array.dtype}")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[0] == 0:
        raise ValueError(f"video frames must have shape [T, H, W, 3] with T >= 1, got {list(array.shape)}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def _ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # not installed, or no binary for this platform
        return None


def _write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode with libx264/yuv420p (plays in browsers); frames are padded (black) to multiples of 16."""
    import imageio_ffmpeg

    t, h, w, _ = frames.shape
    ph, pw = _video_dims(h, w)
    if (ph, pw) != (h, w):
        padded = np.zeros((t, ph, pw, 3), dtype=np.uint8)
        padded[:, :h, :w] = frames
        frames = padded
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (pw, ph),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        quality=7,
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"],
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(frame)
    finally:
        writer.close()


def _write_gif(path: Path, frames: np.ndarray, fps: int) -> None:
    import imageio.v2 as imageio

    imageio.mimsave(str(path), list(frames), duration=1000.0 / max(fps, 1), loop=0)


def write_video(path: str | Path, frames: Any, fps: int = 20) -> Path:
    """Write uint8 ``[T, H, W, 3]`` frames (array or tensor) as an H.264 mp4 at ``path``; returns the written path.

    Frame sizes are padded to multiples of 16; without a working ffmpeg the video is a GIF beside it
    (same name, ``.gif``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    video = _as_video(frames)
    if _ffmpeg_exe() is not None:
        try:
            _write_mp4(path, video, fps)
            return path
        except Exception as exc:  # a broken ffmpeg must not end training: fall back to GIF
            _log.warning("mp4 encoding failed (%s); writing a GIF instead", str(exc).splitlines()[0][:200])
    gif = path.with_suffix(".gif")
    _write_gif(gif, video, fps)
    return gif
