"""What a run, or an architecture, looks like before anything trains: the resolved config, the
split sizes, the model's groups. `reinitlab train --dry-run` and `reinitlab groups` print these;
nothing here trains or writes a run folder."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from ..core.groups import Groups, groups_of
from ..data import check_dataset
from ..models import build_model
from .config import TrainConfig
from .engine import Schedule
from .resolve import Prepared, prepare
from .rundir import open_run


def arch_groups(arch: str, dataset: str = TrainConfig.dataset, width: float = TrainConfig.width,
                resolution: int | None = None) -> tuple[nn.Module, Groups]:
    """The registry architecture as a run on `dataset` would build it (channels, classes and
    resolution from the dataset's registry entry; no data is read), and its groups."""
    info = check_dataset(dataset)
    with torch.random.fork_rng(devices=[]):
        model = build_model(arch, info.channels, info.num_classes, width, resolution or info.resolution)
    return model, groups_of(model)


def run_lines(p: Prepared, groups: Groups) -> list[str]:
    """The run in a few lines: data and split, model, method and budget, device."""
    cfg, b, s = p.cfg, p.bundle, p.split
    pool = len(b.y_train) - (0 if s.val_official else len(s.val))
    val = f"{len(s.val):,} val ({'official' if s.val_official else f'{cfg.val_fraction:g} of the training set'})"
    noisy = f", {len(s.noisy):,} noisy labels" if len(s.noisy) else ""
    sched = Schedule.of(p)
    plan = list(sched.epochs)
    rounds = (f"{len(plan)} rounds of {plan[0]} epochs" if len(set(plan)) == 1 and len(plan) > 1
              else " + ".join(str(e) for e in plan) + " epochs" if len(plan) > 1 else f"1 round of {plan[0]} epochs")
    options = type(p.method).options_text(cfg.method_options)
    batch = min(cfg.batch_size, len(s.train))
    total = sum(groups.parameter_count(g) for g in groups.names)
    return [
        f"data    {cfg.dataset}: {b.num_classes} classes, {b.channels} channel{'s' if b.channels > 1 else ''}, "
        f"{cfg.resolution} px",
        f"split   {len(s.train):,} train (of a pool of {pool:,}){noisy} / {val} / {len(b.y_test):,} test; "
        f"data_seed {cfg.data_seed}",
        f"model   {cfg.arch}, width {cfg.width:g}: {total:,} parameters in {len(groups.names)} groups",
        f"method  {p.method.name}" + (f" ({options})" if options else "")
        + f": {rounds}, {sum(plan)} in all; batch {batch}, {len(s.train) // batch} steps per epoch",
        f"device  {cfg.device}, {cfg.precision}, {cfg.threads} thread{'s' if cfg.threads != 1 else ''}",
    ] + ([stages_line(cfg.protocol, sched)] if sched.stages else [])


def stages_line(protocol: str, sched: Schedule) -> str:
    """A staged protocol's stages: their training examples and epochs (runs of equal stages merged)."""
    runs: list[list] = []
    for (examples, _, _), epochs in zip(sched.stages, sched.epochs, strict=True):
        if runs and runs[-1][1:] == [examples, epochs]:
            runs[-1][0] += 1
        else:
            runs.append([1, examples, epochs])
    if len(runs) > 3 and len({e for _, _, e in runs}) == 1:  # growing data: the sizes, elided
        sizes = [f"{m:,}" for _, m, _ in runs]
        shown = sizes if len(sizes) <= 4 else sizes[:2] + ["..."] + sizes[-1:]
        e = runs[0][2]
        return (f"stages  protocol {protocol}: {len(sched.stages)} stages of {e} epoch{'s' if e != 1 else ''}, "
                f"on {', '.join(shown)} examples")
    parts = [f"{'1 stage' if n == 1 else f'{n} stages'} of {m:,} examples x {e} epoch{'s' if e != 1 else ''}"
             for n, m, e in runs]
    return f"stages  protocol {protocol}: " + ", then ".join(parts)


def dry_run(cfg: TrainConfig, out: str | Path | None = None) -> str:
    """Everything `train` would do, resolved and checked (a bad input raises UserError here, as it
    would at a real start), without training or writing anything."""
    p = prepare(cfg)
    Schedule.of(p).check_acts(p.method)
    with torch.random.fork_rng(devices=[]):
        model = build_model(p.cfg.arch, p.bundle.channels, p.bundle.num_classes, p.cfg.width, p.cfg.resolution)
    groups = groups_of(model)
    lines = ["dry run: nothing is trained or written", *run_lines(p, groups)]
    if out is not None:
        state = open_run(Path(out), p.cfg)
        lines.append(f"out     {out}: " + {"new": "a new run", "resume": "holds this run unfinished: it would resume",
                                           "finished": "holds this run finished: nothing to train"}[state])
    lines += ["", "resolved config (config.json):"]
    values = p.cfg.to_dict()
    width = max(len(k) for k in values)
    lines += [f"  {k:{width}s}  {json.dumps(v)}" for k, v in values.items()]
    lines += ["", "groups:", *("  " + line for line in groups.table().splitlines())]
    return "\n".join(lines)



class RunHeader:
    """A hook for `reinitlab train`: before the first epoch trained now, the run in a few lines
    (run_lines) and, when the folder held an unfinished run, where it resumes. `started` stays
    False when the folder was finished already (then the loop never starts)."""

    def __init__(self, out: Path | None = None, file=None):
        self.out, self.file, self.started = out, file, False

    def on_run_start(self, ctx) -> None:
        import sys
        self.started = True
        eng, st = ctx.engine, ctx.state
        lines = [f"run     {self.out}" if self.out is not None else "run     (nothing written)",
                 *run_lines(eng.prepared, eng.groups),
                 "groups  " + ", ".join(f"{g} ({eng.groups.parameter_count(g):,})" for g in eng.groups.names)]
        if st.epochs_total or st.round or st.round_done:
            plan = eng.schedule.epochs
            r, e = (st.round + 1, 0) if st.round_done else (st.round, st.epoch)
            lines.append(f"resume  from round {r} epoch {e} of {plan[min(r, len(plan) - 1)]} ({st.epochs_total} of "
                         f"{sum(plan)} epochs done earlier, kept in metrics.jsonl and ckpt.pt)")
        print("\n".join(lines), file=self.file or sys.stdout, flush=True)


def finished_line(out: Path, result: dict) -> str:
    """What `train` says about a folder whose run had finished before this start."""
    acc = result.get("test_acc")
    what = f"test_acc {acc:.4f}" if isinstance(acc, (int, float)) else result.get("status", "finished")
    return (f"already finished: {out} holds this run ({what}, {result.get('epochs_total')} epochs); nothing "
            "trained. Use another --out (or remove the folder) to train it again")
