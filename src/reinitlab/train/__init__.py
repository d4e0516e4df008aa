"""One run, trained: its typed config (config.py), what the config resolves to (resolve.py), the
engine of tensors, model and steps (engine.py), the one training loop (loop.py), its observers
(hooks.py), the run folder (rundir.py), checkpoints (checkpoint.py) and provenance (provenance.py).

    from reinitlab.train import run, TrainConfig
    run(TrainConfig(method="lw", train_size=1000), "runs/lw")
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"run": "loop", "TrainConfig": "config"}


def __getattr__(name: str) -> Any:  # PEP 562: importing a submodule does not load the loop
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
