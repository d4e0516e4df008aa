"""Weights & Biases in offline mode: local files only, never the network.

    STORE/wandb/offline-run-<time>-<key>/     wandb sync STORE/wandb/offline-run-*   (to upload, if ever)

The W&B run id is the run folder's key, so attempts of one folder are one W&B run. Writing a folder
anew (a restart, a resume, an export) writes a complete offline directory and removes the folder's
earlier offline directories that were never synced (a synced one has W&B's .synced marker and is
kept). The project is the study's name, or "reinitlab"; W&B's system-metrics sampling, console
capture, code and requirements capture are off: the tracker mirrors the run's own numbers.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..train.hooks import TRACKERS
from .base import TrackedRun, Writer


def offline_dirs(store: Path, key: str) -> list[Path]:
    return sorted((Path(store) / "wandb").glob(f"offline-run-*-{key}"))


@TRACKERS.register("wandb")
class WandbWriter(Writer):
    name = "wandb"
    package = "wandb"

    @staticmethod
    def open_command(store: Path) -> str:
        return f"wandb sync {Path(store) / 'wandb'}/offline-run-*   (uploads; the files are complete without it)"

    def open(self, run: TrackedRun) -> None:
        import wandb

        store = Path(run.store)
        store.mkdir(parents=True, exist_ok=True)
        for d in offline_dirs(store, run.key):
            if not any(d.glob("*.synced")):
                shutil.rmtree(d, ignore_errors=True)
        settings = wandb.Settings(mode="offline", console="off", silent=True, x_disable_stats=True,
                                  x_save_requirements=False, disable_git=True, disable_code=True)
        self.run = wandb.init(dir=str(store), project=run.experiment, name=run.name, id=run.key,
                              config=run.config, tags=[f"{k}={v}"[:64] for k, v in run.tags.items()  # W&B's limit
                                                       if not k.startswith("reinitlab.")],
                              notes=run.run_dir, settings=settings)
        self.run.define_metric("epoch_total")
        self.run.define_metric("*", step_metric="epoch_total")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log({**values, "epoch_total": step})

    def text(self, step: int, tag: str, text: str) -> None:
        self.run.log({tag: text, "epoch_total": step})

    def close(self, result: dict) -> None:
        self.run.summary.update({k: result.get(k) for k in ("status", "test_acc", "val_acc", "train_acc",
                                                            "epochs_total", "seconds")})
        self.run.finish(exit_code=0 if result.get("status") == "finished" else 1)

    def abort(self) -> None:
        r = getattr(self, "run", None)
        if r is not None:
            r.finish(exit_code=1)
