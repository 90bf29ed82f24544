"""Dict observations (an image part and vector parts): both encoders, both decoders, end to end through train()."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from dreamer_rl.action_space import ActionSpace
from dreamer_rl.agent import build_dreamer
from dreamer_rl.losses import WorldModelLoss
from dreamer_rl.nets.outputs import symlog
from dreamer_rl.policy import DreamerPolicy
from recipes import make_recipe
from tests.test_gym_suite import ToyEnv


def _recipe(tmp_path, **over):
    overrides = {"env.from_pixels": False, "env.action_repeat": 1, "run.steps": 400, "run.runs_dir": str(tmp_path),
                 "tracking.enabled": False, "train.prefill": 100, "run.eval_every": 400, **over}
    return make_recipe("dreamer_v3", "debug", overrides=overrides)


def test_world_model_encodes_and_decodes_both_parts(tmp_path) -> None:
    agent = build_dreamer(_recipe(tmp_path), (3, 64, 64), ActionSpace("discrete", (3, 4)), vector_dim=5)
    wm = agent.world_model
    pixels = torch.randint(0, 256, (2, 6, 3, 64, 64), dtype=torch.uint8)
    vector = torch.randn(2, 6, 5)
    embed = wm.embed(pixels, vector=vector)
    units = _recipe(tmp_path).model.units
    assert embed.shape == (2, 6, wm.encoder.out_dim + units)
    assert wm.rssm.post_in_embed.in_features == wm.encoder.out_dim + units  # the posterior reads both parts
    # the vector part changes the embedding (it is really read)
    assert not torch.allclose(embed, wm.embed(pixels, vector=vector + 1))
    batch = TensorDict({
        "pixels": pixels, "observation": vector, "action": ActionSpace("discrete", (3, 4)).random(2, 6),
        "reward": torch.randn(2, 6, 1), "is_init": torch.zeros(2, 6, 1, dtype=torch.bool),
        "terminated": torch.zeros(2, 6, 1, dtype=torch.bool)}, batch_size=[2, 6])
    loss = WorldModelLoss(wm, kl_kind="dyn_rep", free_nats=1.0)
    assert "observation" in loss.in_keys and "loss_vector" in loss.out_keys
    losses, _ = loss(batch)
    assert torch.isfinite(losses["loss_vector"]) and float(losses["loss_vector"].detach()) > 0
    losses["loss_vector"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in wm.vector_decoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in wm.vector_encoder.parameters())


def test_policy_reads_the_vector_part(tmp_path) -> None:
    agent = build_dreamer(_recipe(tmp_path), (3, 64, 64), ActionSpace("discrete", (3, 4)), vector_dim=5)
    policy = DreamerPolicy(agent, obs_key="pixels", mode="eval")
    assert "observation" in policy.in_keys
    td = TensorDict({"pixels": torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8),
                     "observation": torch.randn(5), "is_init": torch.ones(1, dtype=torch.bool)}, batch_size=[])
    seen = []
    hook = agent.world_model.vector_encoder.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        policy(td.clone())
    finally:
        hook.remove()
    # the vector encoder got this step's vector (symlog'd, as V3 feeds vectors)
    assert len(seen) == 1 and torch.allclose(seen[0], symlog(td["observation"]))


def test_train_on_a_dict_observation_env_stores_both_parts(tmp_path) -> None:
    from tensordict import TensorDict as TD

    from dreamer_rl import train

    summary = train(lambda: ToyEnv(), _recipe(tmp_path, **{"env.max_episode_frames": 50, "run.name": "toy"}))
    assert summary["frames"] == 400 and summary["updates"] > 0
    rows = TD.load_memmap(tmp_path / "toy" / "replay")
    assert rows["pixels"].shape[1:] == (3, 64, 64) and rows["observation"].shape[1:] == (5,)
    assert rows["action"].shape[1:] == (7,)  # MultiDiscrete([3, 4]): two one-hot blocks
    stored = rows["action"][: summary["frames"]]
    assert bool((stored[:, :3].sum(-1) <= 1).all()) and bool((stored[:, 3:].sum(-1) <= 1).all())
