"""Experiment trackers: a run mirrored into TensorBoard, MLflow or W&B while it trains.

    reinitlab train ... --set tracker=tensorboard [--set tracker_dir=DIR]

Each tracker is one file here (a Writer, see base.py) behind the same hook, and each is an
optional extra: `pip install 'reinitlab[tensorboard]'` (or mlflow, wandb). The stores are local and
embedded (a log directory, an SQLite file, W&B's offline files); where they go by default is
base.locate. A tracker changes no number of the run, and one that fails warns once and stops while
the run goes on. Each writer registers itself in TRACKERS (train/hooks.py), which finds this folder's
files.
"""
from ..train.hooks import TRACKERS, tracker_hooks
from .base import TrackerHook, TrackerWarning, Writer

__all__ = ["TRACKERS", "TrackerHook", "TrackerWarning", "Writer", "tracker_hooks"]
