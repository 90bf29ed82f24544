"""User mistakes: one line naming what was wrong and what is allowed, exit status 2, nothing written."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import recipe_env, run_recipe, run_recipe_here


def assert_user_error(result, *fragments: str, cwd: Path) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert "Traceback" not in result.stderr
    assert not (cwd / "runs").exists() and not (cwd / "mlflow").exists(), "nothing may be written"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--task", "cheetah_walk"], ["unknown task 'dmc_cheetah_walk'", "dmc_cheetah_run"]),
        (["--train.bacth_size", "16"], ["unknown option --train.bacth_size", "--train.batch_size"]),
        (["--train.batch_size", "many"], ["train.batch_size", "'many'", "integer"]),
        (["--train.batch_size", "0"], ["train.batch_size", "greater than or equal to 1"]),
        (["--run.device", "tpu"], ["run.device", "'auto', 'cpu' or 'cuda'"]),
        (["--train.precision", "fp16"], ["train.precision", "'fp32' or 'bf16'"]),
        (["--train.compile", "fast"], ["train.compile", "'none', 'default', 'reduce-overhead' or 'max-autotune'"]),
        (["--env.from_pixels", "maybe"], ["env.from_pixels", "boolean"]),
        (["--preset", "debgu"], ["unknown preset 'debgu'", "did you mean debug"]),
        (["--eval"], ["--eval needs --checkpoint"]),
        (["--preset", "dreamer_v3", "--model.cell", "lstm"], ["model.cell", "'gru', 'gru_ln' or 'block_gru'"]),
        (["--preset", "dreamer_v3", "--model.deter", "100"], ["deter 100 must be divisible by blocks 8"]),
        (["--preset", "dreamer_v3", "size13m"], ["unknown preset 'size13m'", "did you mean size1"]),
        (["--preset", "dreamer_v3", "--train.slice_start_reset", "true"],
         ["train.replay_context 1 starts each slice from its stored state", "set one of them off"]),
        (["--preset", "dreamer_v3", "--train.replay_context", "2"], ["train.replay_context", "less than or equal to 1"]),
        (["--eval", "--checkpoint", "x.pt", "--run.eval_episodes", "two"], ["run.eval_episodes", "'two'", "integer"]),
        (["--eval", "--checkpoint", "x.pt", "--run.device", "tpu"], ["run.device", "'auto', 'cpu' or 'cuda'"]),
        (["--eval", "--checkpoint", "x.pt", "--model.deter", "64"],
         ["--eval uses the recipe stored in the checkpoint, so --model.deter would change nothing", "--run.eval_episodes"]),
        (["--eval", "--checkpoint", "x.pt", "--preset", "debug", "--task", "cartpole_balance"],
         ["--preset debug, --task would change nothing", "--behavior.eval_sample"]),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    # in this process (the real interpreter's exit status 2 is checked by the tests below, one process each)
    assert_user_error(run_recipe_here(tmp_path, *args), *fragments, cwd=tmp_path)


def test_unreadable_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"not a checkpoint")
    result = run_recipe(tmp_path, "--eval", "--checkpoint", str(bad))
    assert_user_error(result, "ckpt.pt is unreadable", cwd=tmp_path)
    assert bad.read_bytes() == b"not a checkpoint"


def test_tracking_server_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    env = recipe_env()
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    result = run_recipe(tmp_path, "--task", "cartpole_balance", "--preset", "debug", env=env)
    assert_user_error(result, "does not answer", "MLFLOW_TRACKING_URI", cwd=tmp_path)


def test_help_lists_every_field_with_description_and_default(tmp_path: Path) -> None:
    result = run_recipe(tmp_path, "--help")
    assert result.returncode == 0
    from dreamer_rl.config import Recipe

    for section, model in Recipe.model_fields.items():
        for name, field in model.annotation.model_fields.items():
            assert f"--{section}.{name}" in result.stdout, name
    assert "budget in env frames" in result.stdout and "[default: 1000000]" in result.stdout


def test_changed_recipe_refuses_to_resume(tmp_path: Path) -> None:
    """Re-using a run name with another recipe is a mistake: one line, and the existing run is left as it was."""
    from dreamer_rl.checkpoint import save_checkpoint
    from dreamer_rl.config import Recipe

    stored = Recipe.model_validate({"run": {"name": "taken"}, "env": {"task": "dmc_cartpole_balance"}})
    ckpt = tmp_path / "runs" / "taken" / "checkpoints" / "latest.pt"
    save_checkpoint(ckpt, {"recipe": stored.model_dump(mode="json")})
    before = ckpt.read_bytes()
    result = run_recipe(tmp_path, "--task", "cartpole_balance", "--run.name", "taken", "--train.batch_size", "8")
    assert result.returncode == 2 and "different recipe (train.batch_size)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ckpt.read_bytes() == before and not (tmp_path / "mlflow").exists()


def test_weights_of_another_layout_are_one_clear_error() -> None:
    """A checkpoint from before V3's pre-norm biases (or any layer change) is refused by name, not by traceback."""
    import torch

    from dreamer_rl.agent import build_dreamer
    from dreamer_rl.checkpoint import load_agent_weights
    from dreamer_rl.config import Recipe
    from dreamer_rl.errors import UserError
    from recipes.presets import apply_presets

    agent = build_dreamer(Recipe.model_validate(apply_presets(["dreamer_v3", "dmc_proprio", "debug"])), (5,), 1)
    old = {k: v for k, v in agent.state_dict().items() if k != "world_model.encoder.0.bias"}
    with pytest.raises(UserError, match=r"runs/x.*another layout.*missing 1 \(world_model.encoder.0.bias\)"):
        load_agent_weights(agent, old, "runs/x")
    wrong = dict(agent.state_dict(), **{"world_model.encoder.0.bias": torch.zeros(3)})
    with pytest.raises(UserError, match=r"another layout.*size mismatch") as info:
        load_agent_weights(agent, wrong, "runs/x")
    assert "\n" not in str(info.value)
    load_agent_weights(agent, agent.state_dict(), "runs/x")  # its own weights load
