"""The trained agent as a registered MLflow model: ``--tracking.register true`` at the end of training, and
``--eval --checkpoint models:/<name>/<version>`` to load it back.

What is stored (``model/`` in the run's artifacts, an MLflow pyfunc model):

- ``artifacts/agent.pt``: a slim checkpoint, everything :func:`recipes.evaluate.evaluate_checkpoint` needs and
  nothing it does not (no optimiser, replay or RNG state): ``recipe``, ``agent`` (the state dict, on the CPU),
  ``obs_key``, ``obs_shape``, ``vector_dim``, ``action_space``, ``action_repeat`` and ``counters`` (frames, updates);
- ``MLmodel`` and ``python_model.pkl``: :class:`DreamerPyfuncModel`, so ``mlflow.pyfunc.load_model(uri)`` works
  too. Its ``predict({"pixels" or "observation": array [T, ...]})`` filters one observation sequence from the
  initial state and returns the greedy action of every step ``[T, A]`` (one-hot rows for discrete actions);
  ``unwrap_python_model().agent`` is the :class:`~dreamer_rl.agent.Dreamer` itself.

The model is registered as ``tracking.registered_name`` (default ``<algo>-<task>``), one new version per finished
run, and the run gets the tag ``registered_model`` = ``models:/<name>/<version>``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dreamer_rl.checkpoint import load_agent_weights, save_checkpoint
from dreamer_rl.errors import UserError

if TYPE_CHECKING:
    from dreamer_rl.tracking import Tracker

with warnings.catch_warnings():  # importing mlflow.pyfunc warns about type hints of MLflow's own classes
    warnings.simplefilter("ignore", UserWarning)
    from mlflow.pyfunc import PythonModel

__all__ = ["DreamerPyfuncModel", "register_agent", "registered_checkpoint", "is_model_uri"]

#: artifact path of the model inside its run
MODEL_ARTIFACT = "model"


def is_model_uri(text: str) -> bool:
    """``models:/...`` or ``runs:/...``: an MLflow model, not a file path."""
    return text.startswith(("models:/", "runs:/"))


def rebuild_agent(state: dict[str, Any], device: str | torch.device = "cpu") -> Any:
    """The :class:`~dreamer_rl.agent.Dreamer` of a slim checkpoint, weights loaded, in eval mode."""
    from dreamer_rl.action_space import ActionSpace
    from dreamer_rl.agent import build_dreamer
    from dreamer_rl.config import Recipe

    recipe = Recipe.model_validate(state["recipe"])
    space = ActionSpace(**{**state["action_space"], "sizes": tuple(state["action_space"]["sizes"])})
    agent = build_dreamer(recipe, tuple(state["obs_shape"]), space, int(state["vector_dim"]))
    load_agent_weights(agent, state["agent"], "the checkpoint")
    return agent.to(device).eval()


# MLflow asks for list[...] type hints, which do not fit one sequence per call; its own "once" filter inside class
# creation overrides an "ignore" filter, so the warning is recorded (and dropped) instead of shown
with warnings.catch_warnings(record=True):

    class DreamerPyfuncModel(PythonModel):  # type: ignore[misc]
        """MLflow pyfunc wrapper of a trained agent (see the module docstring)."""

        def load_context(self, context: Any) -> None:  # noqa: D102
            from dreamer_rl.checkpoint import load_checkpoint

            self.state = load_checkpoint(context.artifacts["agent"])
            self.agent = rebuild_agent(self.state)

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # MLflow reads hints
            """Greedy actions ``[T, A]`` for one observation sequence ``{obs_key: [T, ...]}`` (plus ``observation``
            beside pixels when the agent encodes both), starting from the initial recurrent state."""
            from tensordict import TensorDict

            from dreamer_rl.policy import DreamerPolicy

            obs_key = self.state["obs_key"]
            policy = DreamerPolicy(self.agent, obs_key=obs_key, mode="eval")
            keys = [obs_key] + (["observation"] if int(self.state["vector_dim"]) and obs_key != "observation" else [])
            missing = [k for k in keys if k not in model_input]
            if missing:
                raise ValueError(f"predict needs the observation keys {keys}; missing {missing}")
            seq = {k: torch.as_tensor(np.asarray(model_input[k])) for k in keys}
            steps = int(seq[obs_key].shape[0])
            td, actions = TensorDict({}, []), []
            for t in range(steps):
                step = TensorDict({k: v[t] for k, v in seq.items()}, [])
                step.set("is_init", torch.tensor([t == 0]))
                if t:
                    step.update(td.get("next").select("recurrent"))
                td = policy(step)
                actions.append(td.get("action"))
            return torch.stack(actions).cpu().numpy()


def register_agent(tracker: Tracker, state: dict[str, Any], name: str) -> str:
    """Log ``state`` (a slim checkpoint) as the run's ``model/`` pyfunc model and register a new version of
    ``name``; returns ``models:/<name>/<version>`` (also set as the run tag ``registered_model``)."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    client, run_id = tracker.client, tracker.run_id
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    with tempfile.TemporaryDirectory(prefix="dreamer_rl_model_") as tmp, _environ(quiet):
        agent_path = Path(tmp) / "agent.pt"
        save_checkpoint(agent_path, state)
        model_dir = Path(tmp) / MODEL_ARTIFACT
        mlflow.pyfunc.save_model(str(model_dir), python_model=DreamerPyfuncModel(),
                                 artifacts={"agent": str(agent_path)},
                                 pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "dreamer_rl"])
        client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT)
    try:
        client.create_registered_model(name, description="Dreamer agents trained by dreamer_rl "
                                       "(python -m recipes.<suite> --eval --checkpoint models:/<name>/<version>)")
    except MlflowException:
        pass  # already registered: add a version
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT}"
    version = client.create_model_version(name, source=source, run_id=run_id,
                                          tags={k: tracker.tags[k] for k in ("algo", "task", "seed")
                                                if k in tracker.tags})
    uri = f"models:/{name}/{version.version}"
    client.set_tag(run_id, "registered_model", uri)
    return uri


def registered_checkpoint(uri: str, tracking_uri: str | None = None) -> Path:
    """Download the model at ``uri`` (``models:/<name>/<version>``, ``models:/<name>@<alias>`` or
    ``runs:/<run id>/model``) and return the path of its slim checkpoint ``agent.pt``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from dreamer_rl.tracking import _quiet_mlflow, default_tracking_uri

    tracking_uri = tracking_uri or default_tracking_uri()
    _quiet_mlflow()
    target = Path(tempfile.mkdtemp(prefix="dreamer_rl_registered_"))
    try:
        mlflow.set_registry_uri(tracking_uri)
        with _environ({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target),
                                                             tracking_uri=tracking_uri))
    except (MlflowException, OSError) as exc:
        message = " ".join(str(getattr(exc, "message", exc)).split())[:200]
        raise UserError(f"cannot load the MLflow model {uri} from {tracking_uri} ({message}); list the registered "
                        f"models in the MLflow UI, or give a checkpoint file path") from None
    found = sorted(local.rglob("agent.pt"))
    if not found:
        raise UserError(f"the MLflow model {uri} has no agent.pt; it was not registered by dreamer_rl "
                        f"(--tracking.register true)")
    return found[0]


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the duration of the block, restored after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def slim_state(run: Any) -> dict[str, Any]:
    """The slim checkpoint of a :class:`~dreamer_rl.training.Run` (see the module docstring)."""
    c = run.counters
    return {
        "recipe": run.recipe.model_dump(mode="json"),
        "agent": {k: v.detach().cpu() for k, v in run.agent.state_dict().items()},
        "obs_key": run.obs_key, "obs_shape": list(run.agent.world_model.obs_shape),
        "vector_dim": int(run.agent.world_model.vector_dim), "action_space": asdict(run.action_space),
        "action_repeat": int(run.repeat), "counters": {"frames": c.frames, "updates": c.updates,
                                                       "episodes": c.episodes},
    }
