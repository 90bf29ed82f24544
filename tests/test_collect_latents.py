"""``tracking.collect_latents`` (the PlaNet discrete-action fork's option): every training batch's posterior sample,
belief and the true DMC physics state (qpos, qvel) saved as ``latents/<update>.npz``, each row's state the one of
its own observation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from dreamer_rl.replay import StepRowWriter
from envs import make_env
from tests.helpers import recipe_env, run_recipe_here

KEYS = {"sample", "belief", "position", "velocity"}


def _check_cartpole_rows(obs: np.ndarray, pos: np.ndarray, vel: np.ndarray) -> None:
    """Cartpole's observation is (cart position, cos θ, sin θ, cart velocity, angular velocity); qpos = (x, θ)."""
    np.testing.assert_allclose(obs[..., 0], pos[..., 0], atol=1e-5)
    np.testing.assert_allclose(obs[..., 1], np.cos(pos[..., 1]), atol=1e-5)
    np.testing.assert_allclose(obs[..., 2], np.sin(pos[..., 1]), atol=1e-5)
    np.testing.assert_allclose(obs[..., 3:5], vel, atol=1e-5)


def test_dmc_env_emits_the_physics_state_of_each_observation() -> None:
    assert "position" not in make_env("dmc_cartpole_balance", from_pixels=False).observation_spec.keys()
    env = make_env("dmc_cartpole_balance", from_pixels=False, physics_state=True, seed=3)
    physics = env.base_env._env.physics  # noqa: SLF001 - the dm_control env behind the TorchRL one
    td = env.reset()
    for step in range(6):
        assert td["position"].dtype == td["velocity"].dtype == torch.float32
        assert td["position"].shape == (2,) and td["velocity"].shape == (2,)
        np.testing.assert_allclose(td["position"].numpy(), physics.data.qpos, atol=1e-6)
        np.testing.assert_allclose(td["velocity"].numpy(), physics.data.qvel, atol=1e-6)
        _check_cartpole_rows(td["observation"].numpy(), td["position"].numpy(), td["velocity"].numpy())
        if step:
            assert not torch.equal(td["position"], previous), "the state must move with the steps"
        previous = td["position"].clone()
        td = env.step(td.set("action", torch.full((1,), 0.8)))["next"]
    env.close()


def test_stored_rows_keep_the_physics_state_of_their_own_observation() -> None:
    torch.manual_seed(0)
    # 5 agent steps per episode: the 12 steps cross two resets, whose rows come from the root, the others from next
    env = make_env("dmc_cartpole_swingup", from_pixels=False, physics_state=True, action_repeat=2,
                   max_episode_frames=10, seed=1)
    transitions = env.rollout(12, break_when_any_done=False)
    env.close()
    rows = StepRowWriter(obs_keys=("observation",), extra_keys=("position", "velocity"))(transitions)
    assert int(rows["is_init"].sum()) == 3 and rows.shape == (15,)
    _check_cartpole_rows(rows["observation"].numpy(), rows["position"].numpy(), rows["velocity"].numpy())
    assert "position" not in StepRowWriter(obs_keys=("observation",))(transitions).keys()


@pytest.mark.parametrize("tracking", [True, False], ids=["mlflow", "run-folder"])
def test_debug_run_saves_one_latents_file_per_update(tmp_path: Path, tracking: bool) -> None:
    args = ["--task", "cartpole_balance", "--preset", "dreamer_v1", "dmc_proprio", "debug", "--run.name", "l",
            "--tracking.collect_latents", "true", "--run.steps", "400", "--run.eval_every", "1000",
            "--run.save_every", "1000", "--tracking.video", "false", "--tracking.enabled", str(tracking).lower()]
    done = run_recipe_here(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    recipe = json.loads((tmp_path / "runs" / "l" / "recipe.json").read_text())
    t, m = recipe["train"], recipe["model"]
    updates = t["pretrain"] + int(t["train_ratio"] * (400 - t["prefill"]))
    if tracking:
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
        (run,) = client.search_runs([client.get_experiment_by_name("dreamer_rl").experiment_id])
        names = sorted(a.path for a in client.list_artifacts(run.info.run_id, "latents"))
        assert not (tmp_path / "runs" / "l" / "latents").exists()
        folder = Path(client.download_artifacts(run.info.run_id, "latents", dst_path=str(tmp_path / "dl")))
    else:
        folder = tmp_path / "runs" / "l" / "latents"
        names = sorted(f"latents/{p.name}" for p in folder.iterdir())
        assert not (tmp_path / "mlflow").exists()
    assert names == [f"latents/{u:09d}.npz" for u in range(updates)]
    rows = t["batch_size"] * t["seq_len"]
    for name in names:
        with np.load(folder / Path(name).name) as data:
            assert set(data.files) == KEYS
            shapes = {k: data[k].shape for k in KEYS}
            assert shapes == {"sample": (rows, m["stoch"]), "belief": (rows, m["deter"]), "position": (rows, 2),
                              "velocity": (rows, 2)}
            assert all(data[k].dtype == np.float32 and np.isfinite(data[k]).all() for k in KEYS)
            assert np.abs(data["position"]).max() > 0 and np.abs(data["belief"]).max() > 0
            assert np.abs(data["position"][:, 0]).max() < 5  # the cart stays on its rail: real positions


def test_non_dmc_task_with_collect_latents_is_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "recipes.gym", "--env", "Pendulum-v1", "--preset", "dreamer_v1",
                           "gym", "debug", "--tracking.collect_latents", "true"], cwd=tmp_path, env=recipe_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tracking.collect_latents needs"), done.stderr
    assert "gym_Pendulum-v1" in lines[0] and "dmc_" in lines[0]
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "runs").exists()  # nothing written
