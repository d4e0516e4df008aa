"""Finished run folders mirrored into a tracker after the fact: `reinitlab export`.

Reads the run folders only (config.json, metrics.jsonl, result.json), so it works on any study
folder, a folder of `train` outputs or one run folder, on a machine without the training data.
Each run folder becomes one tracker run, written through the same writer and under the same
name and key as a live `tracker=` run of that folder would be: an export replaces what a live run
or an earlier export left for the same folder. Parameters: the resolved config; tags: the study's
axes (dataset, arch, method, seed, train_size, label_noise) and every other setting whose value
differs between the runs exported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..train.rundir import RESUMABLE_DIFFERENCES, folder_problem
from ..util.errors import UserError
from ..util.files import read_json_dict, read_jsonl, writable_problem
from .base import AXES, flat_params, replay, result_scalars, study_of, tracked_run

ENDED = ("finished", "diverged")


@dataclass
class Exported:
    tracker: str
    store: Path
    runs: list[str] = field(default_factory=list)  # names written
    skipped: list[str] = field(default_factory=list)  # run folders without a result (unfinished)
    open_with: str = ""


def is_run_folder(d: Path) -> bool:
    # split.json is written with config.json when a run begins; a tracker's artifact copies of
    # config.json and result.json (MLflow's artifacts/) come without it
    return (d / "config.json").is_file() and (d / "split.json").is_file()


def run_folders(root: Path) -> list[Path]:
    """`root` itself if it is a run folder, else the run folders below it (of a study: below its
    runs/), in path order; never inside a run folder."""
    if is_run_folder(root):
        return [root]
    if (root / "study.json").is_file():
        root = root / "runs"
    found = []
    for d, subdirs, _ in os.walk(root):
        if is_run_folder(Path(d)):
            found.append(Path(d))
            subdirs.clear()
        else:
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
    return sorted(found)


def varying(configs: list[dict]) -> list[str]:
    """The settings whose values differ between runs (besides speed and tracker settings)."""
    flat = [flat_params(c) for c in configs]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if k not in RESUMABLE_DIFFERENCES and len({repr(f.get(k)) for f in flat}) > 1]


def export(tracker: str, study_dir: str | Path, to: str | Path | None = None) -> Exported:
    """Write every ended run (finished or diverged) under `study_dir` into `tracker`'s store: `to`,
    else the same default a live run uses (tensorboard/, mlflow/ or wandb/ in the study folder, or
    beside the run folders). Raises UserError on a bad name or folder, or a tracker not installed."""
    from . import TRACKERS
    if tracker not in TRACKERS:
        raise UserError(f"unknown tracker {tracker!r}; valid: {', '.join(TRACKERS)}")
    root = Path(study_dir)
    if not root.is_dir():
        raise UserError(f"{study_dir}: not a folder (a study folder, a run folder or a folder of run folders)")
    folders = run_folders(root)
    if not folders:
        raise UserError(f"{study_dir}: holds no run folder (no config.json below it)")
    for d in folders:  # a torn or altered file is named, never exported as an unfinished run
        problem = folder_problem(d)
        if problem:
            raise UserError(f"{problem}; nothing exported")
    if to is not None:
        problem = writable_problem(Path(to))
        if problem:
            raise UserError(f"--to {to}: cannot write the tracker's store there: {problem}")
    ended, skipped = [], []
    for d in folders:
        config, result = read_json_dict(d / "config.json"), read_json_dict(d / "result.json")
        if config is None or result is None or result.get("status") not in ENDED:
            skipped.append(str(d))
        else:
            ended.append((d, config, result))
    tags_of = varying([c for _, c, _ in ended])
    make = TRACKERS[tracker]
    out: Exported | None = None
    for d, config, result in ended:
        flat = flat_params(config)
        run = tracked_run(tracker, config, d, str(to) if to is not None else None,
                          extra_tags={k: flat[k] for k in tags_of if k not in AXES and k in flat})
        if study_of(d) is None and d != root:  # a plain folder of runs: named by their path below it
            run.name = d.relative_to(root).as_posix()
        writer = make()
        try:
            writer.open(run)
        except ImportError:
            raise UserError(f"export {tracker}: the {writer.package} package is not installed; "
                            f"pip install 'reinitlab[{tracker}]'") from None
        try:
            last = replay(writer, read_jsonl(d / "metrics.jsonl"), result.get("per_round") or [])
            values = result_scalars(result)
            if values:
                writer.scalars(max(result.get("epochs_total") or 0, last, 1), values)
            writer.close(result)
        except BaseException:
            writer.abort()
            raise
        if out is None:
            out = Exported(tracker, run.store, open_with=writer.open_command(run.store))
        out.runs.append(run.name)
    if out is None:
        raise UserError(f"{study_dir}: none of its {len(folders)} run folder(s) has ended (no result.json "
                        "with status finished or diverged); nothing to export")
    out.skipped = skipped
    return out
