"""Experiment trackers: a run mirrored into TensorBoard, MLflow or W&B while it trains.

    reinitlab train ... --set tracker=tensorboard [--set tracker_dir=DIR]

Each tracker is one file here (a Writer, see base.py) behind the same hook, and each is an
optional extra: `pip install 'reinitlab[tensorboard]'` (or mlflow, wandb). The stores are local and
embedded (a log directory, an SQLite file, W&B's offline files); where they go by default is
base.locate. A tracker changes no number of the run, and one that fails warns once and stops while
the run goes on. TRACKERS is a plain dict: registry.py (one Registry type) is not on main yet.
"""
from __future__ import annotations

from typing import Callable

from .base import TrackerHook, TrackerWarning, Writer
from .mlflow import MlflowWriter
from .tensorboard import TensorBoardWriter
from .wandb import WandbWriter

TRACKERS: dict[str, Callable[[], Writer]] = {
    "tensorboard": TensorBoardWriter,
    "mlflow": MlflowWriter,
    "wandb": WandbWriter,
}

__all__ = ["TRACKERS", "TrackerHook", "TrackerWarning", "Writer", "tracker_hooks"]


def tracker_hooks(tracker: str) -> list[TrackerHook]:
    """The hooks a run's `tracker` setting asks for: none for 'none'."""
    if tracker == "none":
        return []
    return [TrackerHook(tracker, TRACKERS[tracker])]
