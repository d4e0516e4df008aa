"""A run's checkpoint and its end: begin (fresh, or from ckpt.pt), a checkpoint after every epoch,
and the final model.pt and result.json. The loop calls these; a kill loses at most the epoch in
flight.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..util.errors import UserError
from ..util.files import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    read_jsonl,
    read_torch,
    torch_file_problem,
    write_environment,
)
from .engine import Engine
from .provenance import write as write_provenance
from .rundir import RunState


def begin_run(out: Path, eng: Engine, state: str) -> tuple[torch.optim.Optimizer | None, RunState]:
    """Make the folder ready to train into: resume from its checkpoint (state 'resume' with one),
    or start afresh: a killed attempt's metrics and checkpoint go, config.json, split.json and
    env.json are written. Returns (the checkpoint's optimizer or None, where the run stands)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if state == "resume" and (out / "ckpt.pt").exists():
        return _resume(out, eng)
    for f in ("metrics.jsonl", "ckpt.pt"):
        (out / f).unlink(missing_ok=True)
    atomic_write_json(out / "config.json", eng.config.to_dict())
    atomic_write_json(out / "split.json", {**eng.split.manifest(eng.bundle),
                                           "normalization": {"mean": eng.mean.tolist(), "std": eng.std.tolist()}})
    write_environment(out, eng.device)
    write_provenance(out, eng.config.to_dict(), eng.device)
    return None, RunState()


def _resume(out: Path, eng: Engine) -> tuple[torch.optim.Optimizer, RunState]:
    ckpt_path = out / "ckpt.pt"
    problem = torch_file_problem(ckpt_path)  # torn, garbled, or code: refused before any unpickling
    if problem:
        raise UserError(f"{ckpt_path}: cannot resume from this checkpoint: {problem}; delete it to train the "
                        "run again from the start")
    try:
        ck = read_torch(ckpt_path, map_location=eng.device)
        eng.reinit.load_state_dict(ck["reinit"])
        eng.model.load_state_dict(ck["model"])
        opt = eng.optimizer()
        opt.load_state_dict(ck["optimizer"])
        state = RunState.from_checkpoint(ck)
    except OSError:
        raise
    except Exception as e:  # torn, garbled, or another model's: never train on from it
        why = " ".join(str(e).split())
        why = why if len(why) <= 160 else why[:157] + "..."
        raise UserError(f"{ckpt_path}: cannot resume from this checkpoint ({type(e).__name__}: {why}); "
                        "delete it to train the run again from the start") from None
    # metrics lines written after the checkpoint belong to the epoch being redone
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["epoch_total"] <= state.epochs_total]
    atomic_write_bytes(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    return opt, state


def write_checkpoint(out: Path, eng: Engine, opt: torch.optim.Optimizer, state: RunState) -> None:
    atomic_torch_save(Path(out) / "ckpt.pt", {"model": eng.model.state_dict(), "optimizer": opt.state_dict(),
                                              "reinit": eng.reinit.state_dict(), **state.to_checkpoint()})


def write_result(out: Path, eng: Engine, result: dict) -> None:
    """model.pt, then result.json (whose presence marks the run done), then the checkpoint goes."""
    out = Path(out)
    atomic_torch_save(out / "model.pt", {"model": eng.model.state_dict(), "reinit": eng.reinit.state_dict(),
                                         "config": eng.config.to_dict()})
    atomic_write_json(out / "result.json", result)
    (out / "ckpt.pt").unlink(missing_ok=True)
