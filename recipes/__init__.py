"""Runnable entry points (``python -m recipes.dmc``) and named presets."""
