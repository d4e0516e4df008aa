"""One run, executed by whichever backend: claim it, train it (new or resumed), record how it ended.

`run_task` is the only code that writes into a run folder, and it does so only while holding the
run's lock. It never raises for a run's own failure: the exception is written to error.json and
returned as an Outcome, so one bad run cannot stop a study. The study's analyses run right after
training under the same lock (analysis_step.py); a finished run that lacks them is analysed
without training (status "analysed").
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..util.errors import ReinitlabWarning, UserError
from .bundles import bundle_for
from .expand import RunSpec
from .store import Store


@dataclass
class Task:
    study_dir: str
    spec: dict  # RunSpec.to_dict()
    speed: dict = field(default_factory=dict)  # settings that change speed only: threads
    analyses: list = field(default_factory=list)  # names, run on the run once it finished
    expect: dict | None = None  # the machine fields the study's runs are made with (mixing.Target.expect)
    allow_mixed: bool = False  # --allow-mixed: train anyway; a partial run made differently starts over

    @property
    def run_id(self) -> str:
        return self.spec["id"]


@dataclass
class Outcome:
    run_id: str
    status: str  # finished | diverged | failed | busy (claimed elsewhere) | done_before | analysed | lost
    seconds: float = 0.0
    test_acc: float | None = None
    reason: str = ""
    how: str = ""  # new | resume | restart
    worker: str = ""
    analysis: str = ""  # what the analyses did: "analysed a,b" and/or "ANALYSIS FAILED c: reason"
    analysis_failed: bool = False


def run_task(task: Task) -> Outcome:
    from ..speed.runtime import configure
    from ..train.loop import run_keeping_engine
    from .analysis_step import analyse

    store = Store(task.study_dir)
    spec = RunSpec.from_dict(task.spec)
    me = f"{socket.gethostname()}:{os.getpid()}"
    if not store.study_file.exists():
        # On a cluster every node must see DIR; a private /tmp on a remote node would silently
        # create a second, invisible store.
        return Outcome(spec.id, "failed", reason=f"{task.study_dir} is not visible from {me}; put the study "
                       "folder on a filesystem every node shares", worker=me)
    try:
        lock = store.claim(spec.id)
    except OSError as e:  # the claim file cannot be written (a full disk): this worker lives on
        return Outcome(spec.id, "failed", reason=f"{type(e).__name__}: {e}", worker=me)
    if lock is None:
        return Outcome(spec.id, "busy", worker=me)
    try:
        state = store.state(spec.id)
        if state.done:
            acc = (state.result or {}).get("test_acc")
            if state.status == "finished" and store.analyses_missing(spec.id, task.analyses):
                t0 = time.time()  # finished earlier, its analyses not (yet) written: add them now
                a = analyse(store, spec.id, task.analyses)
                return Outcome(spec.id, "analysed", seconds=time.time() - t0, test_acc=acc, how="analyse",
                               worker=me, analysis=a.text, analysis_failed=bool(a.failed))
            return Outcome(spec.id, "done_before", test_acc=acc, worker=me)  # another process finished it
        attempt = store.attempts(spec.id) + 1
        t0, how = time.time(), ""
        try:
            how = store.clean_for_attempt(spec.id)  # raises where the run folder cannot be written
            cfg = spec.train_config(**task.speed)
            configure(device=cfg.device)  # the allocator on a CPU, TF32 on CUDA; threads: the worker's
            with warnings.catch_warnings():  # the study warned once at its start; a run repeats it
                warnings.simplefilter("ignore", ReinitlabWarning)
                bundle = bundle_for(cfg)
                how, discarded = _check_provenance(store, spec.id, cfg, bundle, how, task, me)
                store.log("start", spec.id, how=how, attempt=attempt,
                          recovered_from=lock.recovered.get("pid") if lock.recovered else None,
                          **({"discarded": discarded} if discarded else {}))
                result, eng = run_keeping_engine(cfg, store.run_dir(spec.id), progress=False, bundle=bundle,
                                            label=spec.id)
        except Exception as e:  # a run's own failure: recorded, the study goes on
            return _failed(store, spec.id, e, attempt, t0, how, me)
        store.log("end", spec.id, status=result["status"], seconds=time.time() - t0, test_acc=result.get("test_acc"))
        a = analyse(store, spec.id, task.analyses, eng) if result["status"] == "finished" else None
        seconds = time.time() - t0
        reason = f"diverged at {result.get('diverged_at')}" if result["status"] == "diverged" else ""
        return Outcome(spec.id, result["status"], seconds=seconds, test_acc=result.get("test_acc"), reason=reason,
                       how=how, worker=me, analysis=a.text if a else "", analysis_failed=bool(a and a.failed))
    finally:
        lock.release()


def _check_provenance(store: Store, run_id: str, cfg, bundle, how: str, task: Task, me: str) -> tuple[str, str]:
    """Before training: this worker's machine must be of the kind the study's runs are made on, and a
    partial run must have been begun by the same code on the same kind of machine (else it would
    be finished by another). Raises UserError (recorded as the run's failure) on a difference; with
    --allow-mixed a differing partial run is discarded and trained from the start. Returns (how,
    what was discarded)."""
    from ..speed.runtime import resolve_device
    from ..train import provenance
    from ..train.resolve import prepare
    from .mixing import node_problem
    device = resolve_device(cfg.device)
    problem = node_problem({"device": device.type, **provenance.machine(device)}, task.expect, f"worker {me}")
    if problem and not task.allow_mixed:
        raise UserError(problem)
    if how == "new":
        return how, ""
    recorded = provenance.read(store.run_dir(run_id))
    if recorded is None:  # begun before reinitlab recorded provenance: resumed as before
        return how, ""
    mine = provenance.fingerprint(prepare(cfg, bundle).cfg.to_dict(), device)
    diffs = provenance.differences(recorded["result"], mine["result"])
    if not diffs:
        return how, ""
    was, now = provenance.describe(diffs[0], recorded.get("info"), mine["info"])
    if not task.allow_mixed:
        raise UserError(f"{run_id} was begun with {was}, {provenance.verb(diffs[0].field)} {now}; "
                        "delete its folder to train it again, or --allow-mixed")
    store.discard_partial(run_id)
    return "new", f"{was} (now {now})"


def _failed(store: Store, run_id: str, exc: Exception, attempt: int, t0: float, how: str, me: str) -> Outcome:
    """error.json and the journal's end line for a failed run. Where even they cannot be written (a
    full disk, a read-only run folder) the worker lives on: the outcome carries the reason."""
    reason = f"{type(exc).__name__}: {exc}"
    try:
        reason = store.record_failure(run_id, exc, attempt)["reason"]
        store.log("end", run_id, status="failed", seconds=time.time() - t0, reason=reason)
    except OSError as e:
        reason += f" (not recorded in the study folder: {e.strerror or e})"
    return Outcome(run_id, "failed", seconds=time.time() - t0, reason=reason, how=how, worker=me)


def record_lost(study_dir: str, run_id: str, reason: str) -> bool:
    """A worker died mid-run (killed, out of memory): write error.json if nobody holds the run now.
    Returns whether it was recorded."""
    store = Store(study_dir)
    try:
        lock = store.claim(run_id)
    except OSError:  # a full disk: the study still reports the loss
        return False
    if lock is None:
        return False
    try:
        if store.state(run_id).done:
            return False
        try:
            store.record_failure(run_id, reason, store.attempts(run_id) + 1)
            store.log("end", run_id, status="failed", reason=reason)
        except OSError:  # a full disk or a read-only run folder: the study still reports the loss
            return False
        return True
    finally:
        lock.release()


def ray_execute(task: Task) -> Outcome:
    """Entry point of a Ray task: torch threads = the CPUs Ray granted this task."""
    from ..speed.runtime import configure
    configure(threads=task.speed.get("threads") or None)
    return run_task(task)


def ray_probe(device: str) -> dict:
    """Entry point of the Ray task that tells the study where its runs will train (mixing.Target)."""
    from ..speed.runtime import resolve_device
    from ..train import provenance
    dev = resolve_device(device)
    return {"device": dev.type, "machine": provenance.machine(dev),
            "info": {**provenance.code_version(), "host": socket.gethostname()}}


def study_dir_of(path: str | Path) -> str:
    return str(Path(path).resolve())
