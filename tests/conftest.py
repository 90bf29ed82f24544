"""Shared test set-up: headless rendering, small thread count, deterministic seeds."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("MLFLOW_TRACKING_URI", "")  # tests choose their own store
if not os.environ["MLFLOW_TRACKING_URI"]:
    del os.environ["MLFLOW_TRACKING_URI"]
