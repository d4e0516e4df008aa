"""TensorBoard: an event file per run in a log directory (torch.utils.tensorboard's writer, which
needs the `tensorboard` package).

    STORE/<run name>/events.out.tfevents.*     tensorboard --logdir STORE

Scalars at global step = epoch_total; the resolved config as hyperparameters (the HPARAMS tab) and
as text; resets and the final status as text. A run's earlier event files are removed when it is
written anew (a restart, a resume, an export), so every viewer shows one curve; a marker file names
the run folder a directory belongs to, and a run folder of the same name elsewhere gets a directory
of its own (<name>-<key>) instead of replacing it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..train.hooks import TRACKERS
from .base import TrackedRun, Writer

MARKER = ".reinitlab-run"


def run_logdir(run: TrackedRun) -> Path:
    d = run.store / run.name
    marker = d / MARKER
    if marker.is_file() and marker.read_text().strip() != run.key:
        d = run.store / f"{run.name}-{run.key[:8]}"
    return d


@TRACKERS.register("tensorboard")
class TensorBoardWriter(Writer):
    name = "tensorboard"
    package = "tensorboard"

    @staticmethod
    def open_command(store: Path) -> str:
        return f"tensorboard --logdir {store}"

    def open(self, run: TrackedRun) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        logdir = run_logdir(run)
        logdir.mkdir(parents=True, exist_ok=True)
        for f in logdir.glob("events.out.tfevents.*"):
            f.unlink()
        (logdir / MARKER).write_text(run.key + "\n")
        self.writer = SummaryWriter(log_dir=str(logdir))
        # only the session's values: TensorBoard infers the table's columns from all runs, where
        # one experiment summary per run would make one run's hyperparameters the whole table's
        _, start, self._end = hparams(run.params, {})
        self.writer.file_writer.add_summary(start)
        self.writer.add_text("config", "    " + json.dumps(run.config, indent=1).replace("\n", "\n    "), 0)
        self.writer.add_text("run_dir", run.run_dir or "(no folder)", 0)
        self.writer.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, v in values.items():
            self.writer.add_scalar(tag, v, step)
        self.writer.flush()  # a viewer sees each epoch now, not at the writer's next timed flush

    def text(self, step: int, tag: str, text: str) -> None:
        self.writer.add_text(tag, text, step)
        self.writer.flush()

    def close(self, result: dict) -> None:
        self.writer.add_text("status", str(result.get("status")), max(result.get("epochs_total") or 0, 1))
        if result.get("status") == "finished":
            self.writer.file_writer.add_summary(self._end)
        self.writer.close()

    def abort(self) -> None:
        w = getattr(self, "writer", None)
        if w is not None:
            w.close()
