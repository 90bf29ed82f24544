"""Several seeds from one command: ``--run.seed 0 1 2`` trains one run per seed, one after another, or up to
``--seeds-parallel N`` at once in worker processes.

Each seed is its own MLflow run in the same experiment, named ``<algo>-<task>-s<seed>`` (or ``<run.name>-s<seed>``
when ``--run.name`` is given) and tagged ``seed`` and ``group`` (the name without its seed), so
``python -m recipes.plot`` averages them into one line. Re-running the command resumes every seed's run.

In parallel mode each worker writes its output (progress, eval summaries) to ``<runs_dir>/<run name>/train.log``
instead of the terminal, and with ``run.threads 0`` gets ``cpu_count // N`` torch threads so the workers do not
oversubscribe the cores. A seed that fails does not stop the others; the command exits non-zero if any failed.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from dreamer_rl.config import Recipe

__all__ = ["seed_recipes", "train_seeds", "aggregate"]

log = logging.getLogger(__name__)


def seed_recipes(recipe: Recipe, seeds: list[int]) -> list[Recipe]:
    """One recipe per seed; a given ``run.name`` gets the suffix ``-s<seed>`` so that every run has its own name."""
    if len(set(seeds)) != len(seeds):
        from dreamer_rl.errors import UserError

        raise UserError(f"--run.seed lists a seed twice ({' '.join(map(str, seeds))}); give each seed once")
    out = []
    for seed in seeds:
        run = {"seed": seed}
        if recipe.run.name is not None and len(seeds) > 1:
            run["name"] = f"{recipe.run.name}-s{seed}"
        out.append(recipe.model_copy(update={"run": recipe.run.model_copy(update=run)}))
    return out


def _train_in_worker(recipe_json: str, log_path: str, command: str) -> dict[str, Any]:
    """A worker process: output to ``log_path``, the parent's ``command`` as its provenance, then
    :func:`dreamer_rl.training.train`."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        sys.stdout, sys.stderr = out, out
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=out, force=True)
        for name in ("dreamer_rl", "recipes"):
            logging.getLogger(name).setLevel(logging.INFO)
        from dreamer_rl.provenance import set_command_line
        from dreamer_rl.training import train

        set_command_line(command)
        try:
            return train(Recipe.model_validate_json(recipe_json))
        except BaseException:
            traceback.print_exc()
            raise


def train_seeds(recipes: list[Recipe], parallel: int = 1) -> list[tuple[Recipe, dict[str, Any] | None]]:
    """Train every recipe (one per seed): in this process one after another (``parallel`` 1), else up to
    ``parallel`` at once in spawned worker processes. Returns ``(recipe, summary or None if it failed)`` in order."""
    from dreamer_rl.provenance import command_line
    from dreamer_rl.training import train

    if parallel <= 1 or len(recipes) == 1:
        done = []
        for i, recipe in enumerate(recipes):
            log.info("seed %d (%d of %d): run %s", recipe.run.seed, i + 1, len(recipes), recipe.run_name)
            done.append((recipe, train(recipe)))
        return done
    if recipes[0].tracking.enabled:  # the store's tables and the experiment, before the workers race to make them
        from dreamer_rl.tracking import Tracker

        Tracker(experiment=recipes[0].tracking.experiment, run_name=recipes[0].run_name, tags={}).open_experiment()
    workers = min(parallel, len(recipes))
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: dict[int, dict[str, Any] | None] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {}
        for i, recipe in enumerate(recipes):
            if recipe.run.threads == 0:
                recipe = recipe.model_copy(update={"run": recipe.run.model_copy(update={"threads": threads})})
            path = Path(recipe.run.runs_dir) / recipe.run_name / "train.log"
            log.info("seed %d: run %s in a worker process, output in %s", recipe.run.seed, recipe.run_name, path)
            futures[pool.submit(_train_in_worker, recipe.model_dump_json(), str(path), command_line())] = i
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
                log.info("seed %d finished: %s", recipes[i].run.seed, results[i])
            except BaseException as exc:  # noqa: BLE001 - one seed's failure must not lose the others
                results[i] = None
                log.error("seed %d failed (%s: %s); see %s", recipes[i].run.seed, type(exc).__name__, exc,
                          Path(recipes[i].run.runs_dir) / recipes[i].run_name / "train.log")
    return [(recipe, results[i]) for i, recipe in enumerate(recipes)]


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of every numeric figure (NaNs ignored), plus ``<name>_std`` for the returns."""
    out: dict[str, Any] = {}
    for key in summaries[0]:
        if not isinstance(summaries[0][key], (int, float)):
            continue  # e.g. registered_model: one per seed, printed in each seed's summary
        values = [float(s[key]) for s in summaries if isinstance(s.get(key), (int, float))]
        values = [v for v in values if not math.isnan(v)]
        out[key] = sum(values) / len(values) if values else float("nan")
        if values and all(isinstance(s.get(key), int) for s in summaries) and out[key].is_integer():
            out[key] = int(out[key])  # frames, updates: equal over seeds, printed as counts
        if key.endswith("return") or key.endswith("normalized"):
            mean = out[key]
            out[f"{key}_std"] = (math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) if values
                                 else float("nan"))
    return out
