"""Observers of a training run: what the loop tells, and the two observers every run has.

A hook is any object with some of these methods; the loop calls each that exists, in the order the
hooks were given, with a `RunContext` (the engine, the run folder, where the run stands):

    on_run_start(ctx)                 before the first epoch trained now (also when resuming)
    on_round_start(ctx, reset)        a round begins; `reset`: what its reset changed (None in round 0)
    on_step(ctx, steps, loss_sum, correct)   every 10 steps; the sums are still on the device, so
                                      reading them waits for it (a GPU): read them sparingly
    on_epoch_end(ctx, row)            an epoch was trained and evaluated; `row` is its metrics.jsonl line
    on_round_end(ctx, record)         a round finished; `record` is its result.json per_round entry
    on_run_end(ctx, result)           the run ended (finished or diverged); `result` is result.json

A hook may add entries to the row or record it is handed (that is how the diagnostics below reach
metrics.jsonl and result.json), before they are written. It must not change the model, the
optimizer, the data or any random stream: a run's numbers never depend on who watches it. The
time hooks take counts into the run's `seconds`.

    class Printer:
        def on_round_end(self, ctx, record):
            print(record["round"], record["test_acc"])

    run(cfg, out, hooks=[Printer()])
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..measure.norms import group_norms
from ..measure.plasticity import plasticity
from ..measure.round_log import round_log
from ..util.progress import Progress
from ..util.registry import Registry
from .engine import Engine
from .rundir import RunState

# Experiment trackers by name (the `tracker` setting): each is a Writer class in reinitlab/trackers/,
# one file each, which registers itself here; `Writer.hook(name)` makes the hook that mirrors a run.
TRACKERS: Registry[Any] = Registry("tracker", packages=("reinitlab.trackers",), first=("tensorboard", "mlflow", "wandb"))


def tracker_hooks(tracker: str) -> list:
    """The hooks a run's `tracker` setting asks for: none for 'none'."""
    return [] if tracker == "none" else [TRACKERS[tracker].hook(tracker)]


EVENTS = ("on_run_start", "on_round_start", "on_step", "on_epoch_end", "on_round_end", "on_run_end")


@dataclass
class RunContext:
    engine: Engine
    state: RunState
    out: Path | None  # the run folder; None when nothing is written
    label: str = ""


class Hooks:
    """The hooks of one run, called in order; returns the seconds they took."""

    def __init__(self, hooks: list[Any]):
        unknown = [h for h in hooks if not any(callable(getattr(h, e, None)) for e in EVENTS)]
        if unknown:
            raise TypeError(f"{unknown[0]!r} is not a hook: it has none of {', '.join(EVENTS)}")
        self.hooks = list(hooks)

    def __call__(self, event: str, ctx: RunContext, *args: Any) -> float:
        t0 = time.time()
        for h in self.hooks:
            fn = getattr(h, event, None)
            if fn is not None:
                fn(ctx, *args)
        return time.time() - t0


class Diagnostics:
    """Per-group weight norms in every epoch's row (`norm_log`), and after every round the cheap
    diagnostics of measure/round_log.py in its record (`round_log`): their course over rounds. Under
    a staged protocol each stage's record also gets measure/plasticity.py's numbers (`plasticity`)."""

    def on_epoch_end(self, ctx: RunContext, row: dict) -> None:
        eng = ctx.engine
        if eng.config.norm_log:
            row["group_norms"] = group_norms(eng.model, eng.groups, on_device=True)

    def on_round_end(self, ctx: RunContext, record: dict) -> None:
        eng = ctx.engine
        t0 = time.time()
        if eng.config.round_log:
            record["diagnostics"] = round_log(eng.model, eng.groups, eng.x_stage, eng.y_stage)
        if eng.prepared.protocol.staged:  # what plasticity work measures, at every stage's end
            record["plasticity"] = plasticity(eng.model, eng.stat_batches(ctx.state.round), eng.loss_fn)
        if "diagnostics" in record or "plasticity" in record:
            record["diagnostics_seconds"] = time.time() - t0


class ProgressBar:
    """The terminal bar (or one line per epoch where stderr is no terminal)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: Progress | None = None

    def on_run_start(self, ctx: RunContext) -> None:
        self.bar = Progress(ctx.engine.schedule.total_epochs, label=ctx.label, enabled=self.enabled)

    def on_step(self, ctx: RunContext, steps: int, loss_sum, correct) -> None:
        s, st = ctx.engine.schedule, ctx.state
        # a function: on a GPU, .item() waits for the device, so the bar reads it once a second
        self.bar.step(st.epochs_total + steps / s.steps, st.round, s.rounds, st.epoch + 1, s.epochs[st.round],
                      lambda: (loss_sum / (steps * s.batch)).item())

    def on_epoch_end(self, ctx: RunContext, row: dict) -> None:
        self.bar.epoch(row, ctx.engine.schedule.rounds)
