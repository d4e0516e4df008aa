"""The one training loop. Every method runs through `run`, so results differ by the method alone.

Each round starts with the method's reset (round 0 with the initial weights), gets a fresh SGD
optimizer and a fresh warm-up + cosine schedule, and ends when its epochs are done or training
accuracy has been 100% for `patience` epochs. After every epoch a checkpoint is written
atomically, so a killed run resumes at the epoch it stopped at and ends with bit-identical metrics
on the CPU. A non-finite loss or weight stops the run as diverged. Observers (the diagnostics, the
progress bar, your own) are hooks (hooks.py); the engine is engine.py, the folder rundir.py.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

from ..data import DataBundle
from ..speed import runtime
from ..util.files import append_jsonl, read_json
from .checkpoint import begin_run, write_checkpoint, write_result
from .config import TrainConfig
from .engine import Engine, Schedule
from .hooks import Diagnostics, Hooks, ProgressBar, RunContext, tracker_hooks
from .resolve import Prepared, prepare
from .rundir import RunState, open_run


def run(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True, bundle: DataBundle | None = None,
        label: str = "", hooks: Iterable[Any] = ()) -> dict:
    """Train one run and write its folder. Returns result.json's content.

    `out=None` trains without writing anything (library use, tests; a tracker writes only where
    `cfg.tracker_dir` says). An existing folder with the same config resumes from its checkpoint, or
    returns the finished result without training. `hooks`: observers besides the diagnostics, the
    progress bar and the tracker of `cfg.tracker` (see hooks.py, trackers/). The run trains on its
    own threads (and TF32 on CUDA) and the caller's process is left as it was; an entry point (the
    CLI, a study worker) also keeps freed memory in the C allocator for speed (runtime.configure)."""
    p = prepare(kept_precision(cfg, out), bundle)
    with runtime.device_settings(p.device):
        return _train(p, out, progress, label, hooks)[0]


def kept_precision(cfg: TrainConfig, out: str | Path | None) -> TrainConfig:
    """`cfg`, with precision=auto replaced by the precision of the run in `out`, if one was started
    there: a resumed run computes as it began, whatever a new measurement would choose now."""
    if cfg.precision != "auto" or out is None or not (Path(out) / "config.json").is_file():
        return cfg
    try:
        stored = read_json(Path(out) / "config.json").get("precision")
    except (OSError, ValueError, AttributeError):
        return cfg  # open_run says what is wrong with the folder
    return cfg.replace(precision=stored) if stored in ("fp32", "bf16") else cfg


def run_keeping_engine(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True,
            bundle: DataBundle | None = None, label: str = "", hooks: Iterable[Any] = ()
            ) -> tuple[dict, Engine | None]:
    """`run` for a caller that has set the process up itself (a study worker), also returning the
    engine (model, groups, tensors) for analyses; None when the folder was finished already."""
    return _train(prepare(kept_precision(cfg, out), bundle), out, progress, label, hooks)


def _train(p: Prepared, out: str | Path | None, progress: bool = True, label: str = "",
           hooks: Iterable[Any] = ()) -> tuple[dict, Engine | None]:
    out = Path(out) if out is not None else None
    folder = open_run(out, p.cfg) if out else "new"
    if folder == "finished":
        return read_json(out / "result.json"), None
    Schedule.of(p).check_acts(p.method)  # a method that could never act is refused, nothing written
    eng = Engine(p)
    opt, state = begin_run(out, eng, folder) if out else (None, RunState())
    ctx = RunContext(eng, state, out, label)
    # the tracker last: it mirrors the rows as the other hooks left them
    call = Hooks([Diagnostics(), ProgressBar(progress), *hooks, *tracker_hooks(eng.config.tracker)])
    call("on_run_start", ctx)
    with runtime.threads(p.cfg.threads):  # a resumed run trains on the threads it started with
        diverged_at = run_rounds(ctx, opt, call)
    result = result_of(ctx, diverged_at)
    if out:
        write_result(out, eng, result)
    call("on_run_end", ctx, result)
    return result, eng


def run_rounds(ctx: RunContext, opt, call: Hooks) -> dict | None:
    """Train from where the run stands to the end of its last round; returns where it diverged
    (round, epoch), or None. `opt`: the resumed optimizer of an unfinished round, or None."""
    eng, st = ctx.engine, ctx.state
    plan = eng.schedule.epochs
    resets = eng.prepared.method.resets  # baseline trains on across a staged protocol's stages
    for r in range(st.round + 1 if st.round_done else st.round, len(plan)):
        eng.begin_stage(r)  # the round's data (protocols/): the same subset every round under `rounds`
        if not (r == st.round and st.epoch > 0 and not st.round_done):  # else: resuming inside round r
            t0 = time.time()
            reset = eng.reinit.reset(r, data=lambda r=r: eng.stat_batches(r)) if r > 0 and resets else None
            st.elapsed += time.time() - t0
            st.round, st.epoch, st.streak, st.round_done, st.reset, st.online = r, 0, 0, False, reset, []
            opt = eng.optimizer()
            st.elapsed += call("on_round_start", ctx, reset)
        if eng.config.compile:
            eng.compile()
        while st.epoch < plan[r] and not st.round_done:
            if not run_epoch(ctx, opt, call):
                return {"round": r, "epoch": st.epoch}
    return None


def run_epoch(ctx: RunContext, opt, call: Hooks) -> bool:
    """One epoch of the current round, its evaluation and bookkeeping; False if it diverged."""
    eng, st, cfg = ctx.engine, ctx.state, ctx.engine.config
    r, e = st.round, st.epoch
    before = eng.reinit.in_round_count(r)
    t0 = time.time()
    train_loss, train_acc = eng.train_epoch(opt, r, e, lambda *a: call("on_step", ctx, *a))
    val_acc, val_loss = eng.evaluate(*eng.val_set)
    st.epochs_total, st.epoch = st.epochs_total + 1, e + 1
    st.streak = st.streak + 1 if train_acc >= cfg.fit_acc else 0
    st.online.append(train_acc)  # each batch's accuracy before its update: the online accuracy
    finite = eng.finite(train_loss)
    row = {"round": r, "epoch": e + 1, "epoch_total": st.epochs_total, "lr": eng.lr_after(r, e),
           "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc}
    done = finite and (st.epoch == eng.schedule.epochs[r] or bool(cfg.patience and st.streak >= cfg.patience))
    staged = eng.prepared.protocol.staged
    if done:
        test_acc, test_loss = eng.evaluate(*eng.test_sets["test"])
        tr_acc, tr_loss = eng.evaluate(eng.x_stage, eng.y_stage)
        row.update(test_acc=test_acc, test_loss=test_loss, train_eval_acc=tr_acc, train_eval_loss=tr_loss)
        if staged:
            stage = stage_numbers(eng, st, test_acc)
            row.update(stage)
    row["seconds"] = time.time() - t0
    st.elapsed += row["seconds"] + call("on_epoch_end", ctx, row)
    if done:
        record = {"round": r, "epochs": st.epoch, "train_acc": tr_acc, "train_loss": tr_loss, "val_acc": val_acc,
                  "test_acc": test_acc, "reset": st.reset, "epochs_total": st.epochs_total,
                  **in_round_counts(eng, r)}
        if staged:
            record.update(stage, examples=eng.schedule.stage(r)[0])
        st.elapsed += call("on_round_end", ctx, record)
        st.per_round.append(record)
        st.round_done = True
    if finite:  # rewind snapshots and a method's epoch events, before the checkpoint holds them
        eng.reinit.end_epoch(r, e + 1, last=done, optimizer=opt, data=lambda: eng.stat_batches(r))
    row.update(in_round_counts(eng, r, before))
    if ctx.out:
        append_jsonl(ctx.out / "metrics.jsonl", row)
    if ctx.out and finite:  # never a checkpoint of NaN weights: a kill before result.json would
        # resume from them; the last finite one makes a resumed run diverge the same way
        write_checkpoint(ctx.out, eng, opt, st)
    return finite


def stage_numbers(eng: Engine, st, test_acc: float | None) -> dict:
    """What a staged protocol measures at a stage's end besides the round's usual numbers: the online
    accuracy (mean accuracy of the stage's training batches before their updates), the whole test
    set's accuracy where the stage sees some classes only, and under `permuted` the mean of the
    stages' test accuracies so far."""
    out = {"online_acc": sum(st.online) / len(st.online)}
    if "test_all" in eng.test_sets:
        out["test_all_acc"] = eng.evaluate(*eng.test_sets["test_all"])[0]
    if eng.config.protocol == "permuted":
        seen = [rec["test_acc"] for rec in st.per_round] + [test_acc]
        out["test_acc_mean"] = sum(seen) / len(seen)
    return out


def images_trained(eng: Engine, st) -> int:
    s = eng.schedule
    if not s.stages:
        return st.epochs_total * s.steps * s.batch
    done = {rec["round"]: rec["epochs"] for rec in st.per_round}
    if not st.round_done:
        done[st.round] = st.epoch
    return sum(e * s.stage(r)[1] * s.stage(r)[2] for r, e in done.items())


def in_round_counts(eng: Engine, round_: int, since: tuple[int, ...] = (0, 0, 0)) -> dict:
    """In-round events of `round_`, the elements they replaced (re-drawn or zeroed) and changed
    (also shrunk or perturbed), since the count `since` (an epoch's share for metrics.jsonl, the
    whole round for result.json); {} for a method that never acts within a round. A run whose
    method never acted shows 0 here, not silence."""
    if not eng.reinit.method.in_round:
        return {}
    now = eng.reinit.in_round_count(round_)
    return {f"in_round_{k}": a - b for k, a, b in zip(("events", "replaced", "changed"), now, since, strict=True)}


def result_of(ctx: RunContext, diverged_at: dict | None) -> dict:
    """result.json. A diverged run claims no accuracy: its rounds before the divergence stay in
    per_round, with their own."""
    eng, st, cfg = ctx.engine, ctx.state, ctx.engine.config
    final = st.per_round[-1] if st.per_round and diverged_at is None else {}
    result = {
        "status": "finished" if diverged_at is None else "diverged", "dataset": cfg.dataset, "arch": cfg.arch,
        "method": cfg.method, "seed": cfg.seed, "train_size": cfg.train_size, "label_noise": cfg.label_noise,
        "test_acc": final.get("test_acc"), "val_acc": final.get("val_acc"), "train_acc": final.get("train_acc"),
        "rounds": eng.schedule.rounds, "epochs_total": st.epochs_total, "seconds": st.elapsed,
        "train_images_per_second": images_trained(eng, st) / max(st.elapsed, 1e-9),
        "per_round": st.per_round,
    }
    if eng.schedule.acts_only_in_round(eng.reinit.method):  # its in-round events in all: 0 says it never acted
        log = eng.reinit.in_round_log
        result.update(in_round_events=sum(r["events"] for r in log),
                      in_round_replaced=sum(r["replaced_elements"] for r in log),
                      in_round_changed=sum(r.get("changed_elements", 0) for r in log))
    if diverged_at:
        result["diverged_at"] = diverged_at
    return result
