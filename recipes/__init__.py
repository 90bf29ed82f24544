"""Runnable entry points (``python -m recipes.dmc``, ``recipes.atari``, ``recipes.gym``), named presets, and
:func:`make_recipe` (``from recipes import make_recipe``): presets in order plus dotted overrides -> a ``Recipe``."""

from __future__ import annotations

from typing import Any

__all__ = ["make_recipe"]


def __getattr__(name: str) -> Any:  # lazy, so `python -m recipes.dmc --help` stays light
    if name == "make_recipe":
        from recipes.cli import make_recipe

        return make_recipe
    raise AttributeError(f"module 'recipes' has no attribute {name!r}")
