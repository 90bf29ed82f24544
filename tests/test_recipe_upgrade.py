"""A run saved by an older version resumes under a newer one when only fields were added (defaults) or removed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dreamer_rl.config import Recipe
from dreamer_rl.errors import UserError
from dreamer_rl.training import Run


def _check(recipe: Recipe, stored: dict) -> None:
    fake = SimpleNamespace(recipe=recipe, dir=Path("runs/x"))
    Run._check_same_recipe(fake, stored)  # type: ignore[arg-type]


def test_added_and_removed_fields_do_not_strand_a_run() -> None:
    recipe = Recipe()
    stored = recipe.model_dump(mode="json")
    del stored["behavior"]["repval_scale"]  # added since: its default keeps the old behaviour
    stored["model"]["head"] = "gaussian_mse"  # removed since
    _check(recipe, stored)


def test_a_changed_field_is_still_refused() -> None:
    recipe = Recipe()
    stored = recipe.model_dump(mode="json")
    stored["model"]["deter"] = 123
    with pytest.raises(UserError, match="model.deter"):
        _check(recipe, stored)
    stored = Recipe().model_dump(mode="json")
    del stored["behavior"]["repval_scale"]  # added since, but this run asks for a non-default value
    with pytest.raises(UserError, match="behavior.repval_scale"):
        _check(Recipe.model_validate({"behavior": {"repval_scale": 0.3}}), stored)
