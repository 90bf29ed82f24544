"""Videos the runs log: eval episodes and open-loop predictions (truth / model / error, as the original Dreamer).

Open loop: the world model filters the first ``context`` frames of each sequence with the posterior, then predicts
the remaining ``T - context`` frames from the prior, fed the true actions, without seeing the frames. Rows of the
video are truth, model and error ``(model - truth + 1) / 2``; columns are sequences.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from dreamer_rl.world_model import WorldModel


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
    states = wm.observe(obs[:, :context], action[:, :context], is_init[:, :context])
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
