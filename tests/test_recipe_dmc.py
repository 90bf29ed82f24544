"""End-to-end smoke run of the DMC recipe from pixels with the debug preset: collect, train, evaluate, log to MLflow,
checkpoint, resume, and evaluate the saved agent from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from dreamer_rl.checkpoint import load_checkpoint
from tests.helpers import figures, run_recipe, run_recipe_here

ARGS = ["--task", "cartpole_balance", "--preset", "debug", "--run.name", "smoke", "--run.eval_every", "400",
        "--env.max_episode_frames", "100",
        "--run.save_every", "400"]


def test_debug_run_from_pixels_logs_checkpoints_resumes_and_evaluates(tmp_path: Path) -> None:
    first = run_recipe(tmp_path, *ARGS, "--run.steps", "600")
    assert first.returncode == 0, first.stderr[-3000:]
    printed = json.loads(first.stdout[: first.stdout.index("\n}\n") + 2])  # the resolved recipe comes first
    assert printed["env"]["task"] == "dmc_cartpole_balance" and printed["env"]["from_pixels"] is True
    out = figures(first.stdout)
    assert int(out["frames"]) == 600 and int(out["updates"]) == 2 + int(0.05 * 400)

    run_dir = tmp_path / "runs" / "smoke"
    assert json.loads((run_dir / "recipe.json").read_text())["train"]["batch_size"] == 4
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert ckpt["counters"]["frames"] == 600 and ckpt["obs_key"] == "pixels"

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dreamer_rl")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "smoke" and run.info.status == "FINISHED"
    assert run.data.tags["algo"] == "dreamer_v1" and run.data.tags["task"] == "dmc_cartpole_balance"
    assert run.data.params["train.batch_size"] == "4"
    for key in ("train/loss/image", "train/loss/kl", "train/loss/actor", "train/loss/value", "eval/return",
                "train/return", "train/fps"):
        assert key in run.data.metrics, key
    videos = [a.path for a in client.list_artifacts(run.info.run_id, "videos")]
    assert any("eval_episode" in v for v in videos) and any("eval_openloop" in v for v in videos)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/latest.pt"]
    assert "recipe.json" in [a.path for a in client.list_artifacts(run.info.run_id)]

    # same command, bigger budget: resumes the same run from its checkpoint
    second = run_recipe(tmp_path, *ARGS, "--run.steps", "800")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed smoke at 600 frames" in second.stderr
    out = figures(second.stdout)
    assert int(out["frames"]) == 800 and int(out["updates"]) == 2 + int(0.05 * 600)
    (run,) = client.search_runs([exp.experiment_id])
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval/return")]
    assert steps == [400, 600, 800]

    # evaluate the saved agent and write a video
    video = tmp_path / "eval.mp4"
    third = run_recipe(tmp_path, "--eval", "--checkpoint", str(run_dir / "checkpoints" / "latest.pt"),
                       "--video", str(video))
    assert third.returncode == 0, third.stderr[-3000:]
    assert float(figures(third.stdout)["eval_return"]) >= 0
    assert video.stat().st_size > 1000
    # the evaluation options apply on top of the stored recipe: sampling the actor changes the return
    ckpt = str(run_dir / "checkpoints" / "latest.pt")
    returns = [figures(run_recipe_here(tmp_path, "--eval", "--checkpoint", ckpt, "--video", str(tmp_path / "e.mp4"),
                                  "--run.eval_episodes", "1", "--behavior.eval_sample", flag).stdout)["eval_return"]
               for flag in ("false", "true")]
    assert returns[1] != returns[0]
