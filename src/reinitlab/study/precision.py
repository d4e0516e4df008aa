"""One precision for every run of a study, chosen by the process that plans it.

`precision=auto` is resolved here, once, before any run starts: on this machine, for every shape
the study trains (precision.choose: bf16 only where it is native and each shape measures at least
1.2x fp32), and each run gets the chosen value in its config. A study on a Ray cluster is decided
by its driver in the same way, so nodes with different CPUs never mix precisions. The choice and
why are kept in study.json; a restarted study reuses them rather than measure again (the runs
already made must go on in the precision they began with).
"""
from __future__ import annotations

import dataclasses

from ..data import check_dataset
from ..speed.precision import Choice, choose
from ..speed.runtime import resolve_device
from ..train.resolve import shape_of
from ..util.errors import UserError
from ..util.files import read_json_dict
from .expand import RunSpec


def study_precision(settings: dict, runs: list[RunSpec], threads: int, device: str,
                    before: dict | None = None, started: set[str] = frozenset()) -> Choice:
    """The precision of all `runs`. `settings`: the study's shared settings; `threads`: each run's;
    `device`: the device type the runs train on; `before`: study.json's record of an earlier start;
    `started`: the precisions in the config.json of runs begun before (by code without the record)."""
    asked = settings.get("precision", "auto")
    if asked != "auto":
        return Choice(asked, "set by the study")
    if isinstance(before, dict) and before.get("precision") in ("fp32", "bf16"):
        return Choice(before["precision"], f"{before.get('why', '')} (chosen at the study's first start)".strip(),
                      before.get("speedup"))
    if len(started) == 1 and next(iter(started)) in ("fp32", "bf16"):
        return Choice(next(iter(started)), "the precision of the runs this study had already begun")
    try:
        here = resolve_device(device)
    except UserError:
        return Choice("fp32", f"the planning process has no {device} to measure bf16 on")
    shapes = set()
    for r in runs:
        cfg = r.train_config(threads=threads)
        try:
            info = check_dataset(cfg.dataset)
        except UserError:
            continue  # the run fails on its own; its shape cannot be measured
        shapes.add(shape_of(cfg, info.channels, cfg.resolution or info.resolution, here.type, cfg.train_size))
    return choose(shapes, here)


def begun_precisions(run_dirs) -> set[str]:
    """The precisions in the config.json of these run folders, where there is one."""
    found = set()
    for d in run_dirs:
        cfg = read_json_dict(d / "config.json")
        if cfg is not None and isinstance(cfg.get("precision"), str):
            found.add(cfg["precision"])
    return found


def with_precision(runs: list[RunSpec], precision: str) -> list[RunSpec]:
    return [dataclasses.replace(r, config={**r.config, "precision": precision}) for r in runs]


def record(choice: Choice) -> dict:
    """study.json's "precision"."""
    return {"precision": choice.precision, "why": choice.why, "speedup": choice.speedup}


def plan_line(choice: Choice) -> str:
    return f"  precision {choice.precision} for every run: {choice.why}"
