"""`run_study`: expand, check, plan, then keep every worker busy until each run is finished,
diverged or failed.

Restart semantics: the same command after a crash, Ctrl-C or SIGKILL reads each run's state from
its folder: finished runs are skipped, partial ones resume from their checkpoint, failed ones are
tried again (once per start; `retry_failed=False` keeps them as they are). With `analyses` in the
definition, a finished run is done once its analysis.json holds them; one that lacks any (killed
after result.json, an analysis that raised, analyses added later) is analysed without training. A second study process on
the same DIR cooperates: runs are claimed one by one under a lock, a run held by the other process
is left to it and waited for, so both return when the study is complete.

Before anything is written, every existing run's provenance.json is compared with what this study
and this code would make of it (mixing.py): a run made by other code or on another kind of machine
refuses the start in one line unless `allow_mixed`. A task lost with its node (Ray) is recorded in
the journal and submitted again, up to MAX_LOST times per run and start; the run resumes from its
checkpoint wherever it lands.
"""
from __future__ import annotations

import collections
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..train import provenance
from ..train.config import TrainConfig
from ..util.errors import UserError
from ..util.files import atomic_write_json
from ..version import __version__
from . import mixing
from .definition import StudyDefinition, axes_changed
from .display import Counts, Display
from .expand import RunSpec, expand, missing_datasets
from .lock import acquire_blocking
from .plan import PARALLEL_SLOWDOWN, Plan, estimate_runs, fmt_duration, simulate_wall
from .precision import Choice, begun_precisions, plan_line, study_precision, with_precision
from .precision import record as precision_record
from .store import Store
from .worker import Task, record_lost, study_dir_of

SPEED_ONLY = provenance.NOT_COMPARED  # never refused between starts: speed settings, trackers
RECHECK_HELD_S = 5.0  # how often to look again at a run another process is training
MAX_LOST = 2  # resubmissions of a run whose task was lost (node died); then it is recorded as failed


@dataclass
class StudyResult:
    total: int
    finished: int = 0
    diverged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason)
    seconds: float = 0.0
    estimate_s: float | None = None
    ran: int = 0  # runs trained (or resumed) by this process
    analysed: int = 0  # finished earlier, analysed now without training
    analysis_failed: list[tuple[str, str]] = field(default_factory=list)  # (run id, what failed); runs stay finished
    lost: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason) per task lost with its node
    retried: int = 0  # lost tasks submitted again
    mix: mixing.Mixing | None = None  # the provenance check of this start

    @property
    def ok(self) -> bool:
        return not self.failed


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_study(defn: StudyDefinition, out: str | Path, workers: int | None = None, backend: str = "local",
              address: str | None = None, retry_failed: bool = True, dry_run: bool = False,
              stream=None, command: list[str] | None = None, allow_mixed: bool = False) -> StudyResult:
    stream = stream or sys.stderr
    runs, budgets = expand(defn, require_data=not dry_run)
    store = Store(Path(out).expanduser())
    check_compatible(store, defn)
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: expected an integer >= 1")
    if backend not in ("local", "ray"):
        raise UserError(f"--backend {backend!r}: expected local or ray")
    if address and backend != "ray":
        raise UserError("--address is for --backend ray")

    states = {r.id: store.state(r.id) for r in runs}
    check_data_only(store, [r.id for r in runs if states[r.id].status != "pending"])
    # finished runs whose requested analyses are missing; --keep-failed leaves those that raised before
    heal = {r.id for r in runs if states[r.id].status == "finished" and store.analyses_missing(r.id, defn.analyses)
            and (retry_failed or store.analysis_error(r.id) is None)}
    todo = [r for r in runs if (not states[r.id].done and (retry_failed or states[r.id].status != "failed"))
            or r.id in heal]
    failed_kept = [(r.id, (states[r.id].error or {}).get("reason", "")) for r in runs
                   if states[r.id].status == "failed" and not retry_failed]
    if not dry_run:
        check_data(todo)

    # Decide the workers before estimating: the estimate depends on each run's thread count.
    settings = TrainConfig.from_dict(defn.settings)
    res = _resources(backend, address, workers, settings, len(todo), dry_run)
    try:
        target = res.target()
        if target.machine.get("source_hash") != provenance.source_hash() and not allow_mixed:
            raise UserError(f"{res.where} runs reinitlab source_hash={target.machine.get('source_hash')} "
                            f"(commit {target.info.get('commit')}), this command source_hash={provenance.source_hash()} "
                            f"(commit {provenance.code_version()['commit']}); install the same code on every node, "
                            "or --allow-mixed")
        # auto is resolved once, here, for every run: the runs (and their fingerprints) carry the value
        choice = study_precision(defn.settings, runs, res.speed["threads"], target.device,
                                 (store.read_study() or {}).get("precision"),
                                 begun_precisions(store.run_dir(r.id) for r in runs if states[r.id].status != "pending"))
        runs = with_precision(runs, choice.precision)
        todo = with_precision(todo, choice.precision)
        mix = mixing.check(store, runs, states, target, allow_mixed)
        return _run(defn, store, runs, budgets, states, todo, failed_kept, res, dry_run, stream, command, heal,
                    mix, TaskContext(target.expect(), allow_mixed), choice)
    finally:
        if res.ray_started and res.backend_obj is None:
            _shutdown_ray()  # started for this study but no backend took it over


def check_data_only(store: Store, run_ids: list[str]) -> None:
    """Refuse a study folder whose model.pt or ckpt.pt holds code (a shared folder someone altered):
    before anything is written or loaded, nothing in the file is run. Where a worker meets one
    planted later, it refuses to load it too (util.files.read_torch) and the run fails."""
    bad = store.first_code_file(run_ids)
    if bad:
        path, why = bad
        fix = ("delete it to train the run again from its start" if path.name == "ckpt.pt" else
               f"delete the run folder {path.parent} to train the run again")
        raise UserError(f"{path}: {why}; refused, nothing in it was run; {fix}")


def check_data(todo: list[RunSpec]) -> None:
    """Read every dataset the runs to do need, once, before anything is written: a truncated or
    corrupt file is one line and exit 2 here, not one failed run per run later. The decoded tensors
    are cached, so the workers' own loads are cheap."""
    from ..data import load_dataset
    from ..data.split import check_train_size, pool_counts
    wanted: dict[tuple, set] = {}
    for r in todo:  # the sizes to check against each dataset's pool, per validation fraction
        cfg = r.train_config()
        wanted.setdefault((cfg.dataset, cfg.data_dir, cfg.resolution), set()).add((cfg.val_fraction, cfg.train_size))
    for (dataset, data_dir, resolution), sizes in sorted(wanted.items(), key=str):
        bundle = load_dataset(dataset, data_dir, resolution)
        for val_fraction, train_size in sorted(sizes, key=str):
            try:
                check_train_size(bundle, train_size, pool_counts(bundle, val_fraction))
            except UserError as e:
                raise UserError(f"train_sizes: {e}") from None


@dataclass
class TaskContext:
    """What every task of this start carries besides its run: the machine its worker must match."""
    expect: dict
    allow_mixed: bool = False


def _run(defn, store, runs, budgets, states, todo, failed_kept, res, dry_run, stream, command,
         heal: set[str] = frozenset(), mix: mixing.Mixing | None = None, ctx: TaskContext | None = None,
         choice: Choice | None = None) -> StudyResult:
    analysis_s: dict[str, float] = {}
    estimates, note = (estimate_runs(todo, res.speed, defn.analyses, frozenset(heal), analysis_s) if todo
                       else ({}, ""))
    order = dispatch_order(todo, estimates)
    plan = Plan(total=len(runs), finished=sum(s.done for s in states.values()),
                failed_before=sum(s.status == "failed" for s in states.values()),
                partial=sum(s.status == "partial" for s in states.values()), todo=order,
                workers_text=res.text, estimates=estimates,
                wall_s=simulate_wall(order, estimates, res.slots, parallel=res.cpu_parallel), note=note)
    display = Display(stream)
    for line in plan.lines(defn.name, defn.axis_sizes(), budgets, str(store.root)):
        display.line(line)
    if choice is not None:
        display.line(plan_line(choice))
    if defn.analyses:
        per_run = sum(analysis_s.values()) / len(analysis_s) if analysis_s else None
        cost = ("every finished run has them" if not todo else "not estimated" if per_run is None else
                f"~{per_run:.1f}s per run, measured here on an untrained model of the run's shape, included in "
                "the estimate")
        display.line(f"  analyses per finished run: {', '.join(defn.analyses)} ({cost})"
                     + (f"; {len(heal)} finished run(s) lack them and are analysed now without training"
                        if heal else ""))
    for line in mix.plan_lines() if mix else []:
        display.line(line)
    if dry_run:
        for m in missing_datasets(defn):
            display.line(f"  not found here (a real start would refuse): {m}")
    result = StudyResult(total=len(runs), estimate_s=plan.wall_s, mix=mix)
    if dry_run:
        return result

    store.check_writable()
    write_definition(store, defn, runs, budgets, command, choice)
    t_start = time.time()
    if order:
        be = res.make()
        try:
            _schedule(store, be, order, res.speed, states, estimates, result, display, res.cpu_parallel,
                      list(defn.analyses), set(heal), ctx or TaskContext({}))
        except BaseException:
            display.close()
            be.close(force=True)
            raise
        be.close()
    display.close()
    result.failed = failed_kept + result.failed
    final = {r.id: store.state(r.id) for r in runs}
    result.finished = sum(s.status == "finished" for s in final.values())
    result.diverged = sum(s.status == "diverged" for s in final.values())
    result.seconds = time.time() - t_start
    display.line(f"study {defn.name}: {result.finished} finished, {result.diverged} diverged, "
                 f"{len(result.failed)} failed of {result.total} runs; {result.ran} trained now in "
                 f"{fmt_duration(result.seconds)} (planned {fmt_duration(plan.wall_s)})")
    for rid, reason in result.failed[:10]:
        display.line(f"  failed: {rid}: {reason}")
    if len(result.failed) > 10:
        display.line(f"  ... and {len(result.failed) - 10} more (reinitlab report {store.root} lists them all)")
    if result.lost:
        display.line(f"  {len(result.lost)} task(s) lost with their node or worker process, {result.retried} "
                     "submitted again (the journal has a 'lost' line for each)")
    if result.analysed:
        display.line(f"  {result.analysed} run(s) finished before were analysed now")
    for rid, what in result.analysis_failed[:10]:
        display.line(f"  analysis failed (the run stays finished; analysis_error.json): {rid}: {what}")
    if len(result.analysis_failed) > 10:
        display.line(f"  ... and {len(result.analysis_failed) - 10} more")
    return result


def dispatch_order(todo: list[RunSpec], estimates: dict[str, float]) -> list[RunSpec]:
    """Keep the (dataset, seed) blocks of the expansion, so a study stopped early holds complete
    paired sets; inside a block, longest first, so the study does not end on one long run."""
    blocks: dict[tuple, list[RunSpec]] = collections.OrderedDict()
    for r in todo:
        blocks.setdefault((r.axes["dataset"], r.axes["seed"]), []).append(r)
    out = []
    for block in blocks.values():
        out.extend(sorted(block, key=lambda r: -estimates.get(r.id, 0.0)))
    return out


def check_compatible(store: Store, defn: StudyDefinition) -> None:
    """Axes may grow or shrink between starts (more seeds, another size); the shared settings may
    not, except speed-only ones: the run folders would hold runs of two different studies. A
    folder holding something else than a study is refused, not written into."""
    existing = next(p for p in (store.root, *store.root.parents) if p.exists())
    if not existing.is_dir():  # before the plan is printed: it could never be written
        raise UserError(f"--out {store.root}: " + ("exists and is not a folder" if existing == store.root
                                                   else f"{existing} is a file, not a folder"))
    if store.root.is_dir() and not store.study_file.exists():
        # dot files may be left by a start killed before its first write (lock, temp file)
        other = sorted(p.name for p in store.root.iterdir() if not p.name.startswith("."))
        if other:
            raise UserError(f"--out {store.root}: the folder is not empty ({other[0]}, ...) and holds no study; "
                            "choose a new or empty folder")
    old = store.read_study()
    if not old or "definition" not in old:
        return
    moved = axes_changed(old["definition"], defn)
    if moved:
        raise UserError(f"{store.root} holds study {old['definition'].get('name')!r} where {moved}")
    before = _comparable(old["definition"].get("settings", {}))
    now = _comparable(defn.settings)
    for k in now:
        if k not in defn.extra_axes and before.get(k) != now[k]:
            raise UserError(f"{store.root} holds study {old['definition'].get('name')!r} with {k}={before.get(k)!r}, "
                            f"not {now[k]!r}; use another --out folder, or the same settings (axes may change)")


def _comparable(settings: dict) -> dict:
    try:
        d = TrainConfig.from_dict(settings).to_dict()
    except UserError:
        d = dict(settings)
    return {k: v for k, v in d.items() if k not in SPEED_ONLY}


def write_definition(store: Store, defn: StudyDefinition, runs: list[RunSpec], budgets: dict, command,
                     choice: Choice | None = None) -> None:
    """study.json and runs.json, under a short lock so two starts never interleave their writes."""
    with acquire_blocking(store.root / ".study.lock", purpose="write study.json"):
        check_compatible(store, defn)  # again, under the lock: another start may have just written
        old = store.read_study() or {}
        atomic_write_json(store.study_file, {
            "definition": defn.to_dict(),
            "budgets": {a: b.to_dict() for a, b in budgets.items()},
            "runs": len(runs),
            "created": old.get("created", time.time()),
            "updated": time.time(),
            "command": command if command is not None else sys.argv,
            "reinitlab": __version__,
            **({"precision": precision_record(choice)} if choice is not None else {}),
        })
        atomic_write_json(store.runs_file, {"runs": [r.to_dict() for r in runs]})


# ---- resources and backends ---------------------------------------------------------------
@dataclass
class _Resources:
    slots: int
    speed: dict
    text: str
    cpu_parallel: bool
    make: object
    target: object  # () -> mixing.Target: where the runs of this start train
    where: str = "this machine"
    ray_started: bool = False
    backend_obj: object = None


def _gpu_count(settings: TrainConfig) -> int:
    if settings.device not in ("auto", "cuda"):
        return 0
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _resources(backend: str, address: str | None, workers: int | None, settings: TrainConfig, n_todo: int,
               dry_run: bool) -> _Resources:
    if backend == "local":
        gpus = _gpu_count(settings)
        n = workers or (gpus if gpus else cores())
        # Threads from the workers asked for, not from the runs left: on the CPU the thread count
        # changes a run's last bits, so a restarted study with one run left must not give it every core.
        threads = settings.threads or max(1, cores() // n)
        n = max(1, min(n, n_todo)) if n_todo else n
        text = (f"{n} local worker process{'es' if n != 1 else ''} x {threads} torch thread{'s' if threads != 1 else ''}"
                + (f", GPUs used round-robin: {gpus}" if gpus else ""))

        def make():
            from .local import LocalBackend
            return LocalBackend(n, threads, gpus)
        return _Resources(n, {"threads": threads}, text, cpu_parallel=not gpus, make=make,
                          target=lambda: mixing.local_target(settings.device))

    from .ray_backend import RayBackend, connect, probe_target
    resources, started = connect(address)
    cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    use_gpu = gpus > 0 and settings.device in ("auto", "cuda")
    if use_gpu:
        n = workers or gpus
        threads = settings.threads or max(1, cpus // max(n, 1))
    else:
        threads = settings.threads or (max(1, cpus // workers) if workers else 1)
        n = workers or max(1, cpus // threads)
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    text = (f"{where} ({cpus} CPUs, {gpus} GPUs): up to {n} runs at a time x {threads} CPU"
            + (" + 1 GPU" if use_gpu else "") + " each")
    res = _Resources(n, {"threads": threads}, text, cpu_parallel=not use_gpu, make=None, ray_started=started,
                     target=lambda: probe_target(settings.device, threads, 1.0 if use_gpu else 0.0),
                     where=f"the Ray cluster at {address}" if address else "the local Ray instance")

    def make_ray():
        be = RayBackend(n, threads, 1.0 if use_gpu else 0.0, started, address)
        res.backend_obj = be  # it shuts Ray down itself when it closes
        return be
    res.make = make_ray
    return res


def _shutdown_ray() -> None:
    import ray
    ray.shutdown()


# ---- the scheduler ------------------------------------------------------------------------
def _schedule(store: Store, be, order: list[RunSpec], speed: dict, states: dict, estimates: dict[str, float],
              result: StudyResult, display: Display, parallel: bool, analyses: list[str] = (),
              heal: set[str] = frozenset(), ctx: TaskContext | None = None) -> None:
    ctx = ctx or TaskContext({})
    study_dir = study_dir_of(store.root)
    queue = collections.deque(order)
    held: dict[str, tuple[RunSpec, float]] = {}  # run id -> (spec, when to look again)
    running: dict[str, float] = {}
    # runs neither to do nor done: failed ones kept as they are (--keep-failed)
    # a finished run that still lacks its analyses is not done: it is in `order`
    done_before = sum(s.done for rid, s in states.items() if rid not in heal)
    kept = len(states) - len(order) - done_before
    counts = Counts(total=result.total, done=done_before, failed=kept)
    done_here: list[tuple[float, float]] = []  # (actual seconds, estimate) of runs finished now
    slow = PARALLEL_SLOWDOWN if parallel and be.slots > 1 else 1.0
    spec_by_id = {s.id: s for s in order}
    lost: collections.Counter = collections.Counter()  # run id -> tasks of it lost in this start

    def eta() -> float | None:
        pending = list(queue) + [s for s, _ in held.values()]
        if any(r.id not in estimates for r in pending) or any(rid not in estimates for rid in running):
            if not done_here:
                return None
            mean = sum(a for a, _ in done_here) / len(done_here)
            return (len(pending) * mean + len(running) * mean / 2) / be.slots
        ratio = slow
        if done_here and sum(e for _, e in done_here) > 0:
            ratio = sum(a for a, _ in done_here) / sum(e for _, e in done_here)
        now = time.time()
        left = sum(estimates[r.id] * ratio for r in pending)
        # a run past its estimate is not done: keep a tenth of it as still to come
        left += sum(max(estimates[rid] * ratio - (now - t), 0.1 * estimates[rid] * ratio) for rid, t in running.items())
        return left / be.slots

    def mark_held(spec: RunSpec) -> None:
        held[spec.id] = (spec, time.time() + RECHECK_HELD_S)

    while queue or held or running:
        now = time.time()
        for rid, (spec, when) in list(held.items()):
            if when <= now:
                del held[rid]
                queue.appendleft(spec)
        while be.idle() > 0 and queue:
            spec = queue.popleft()
            st = store.state(spec.id)
            if st.done and states[spec.id].done is False and not (
                    st.status == "finished" and store.analyses_missing(spec.id, analyses)):
                counts.done += 1  # another study process finished it
                states[spec.id] = st
                display.event(f"finished elsewhere {spec.id}", counts, eta())
                continue
            if store.is_running(spec.id):
                mark_held(spec)
                continue
            be.submit(Task(study_dir, spec.to_dict(), dict(speed), list(analyses), dict(ctx.expect), ctx.allow_mixed))
            running[spec.id] = time.time()
        counts.running, counts.waiting = len(running), len(held)
        if not running and held and not queue:
            display.status(counts, eta())
            time.sleep(min(max(min(w for _, w in held.values()) - time.time(), 0.1), RECHECK_HELD_S))
            continue
        for kind, payload in be.poll(timeout=0.5):
            if kind == "start":
                running[payload] = time.time()
                continue
            o = payload
            running.pop(o.run_id, None)
            if o.status == "busy":
                mark_held(spec_by_id[o.run_id])
            elif o.status == "lost":
                lost[o.run_id] += 1
                result.lost.append((o.run_id, o.reason))
                again = lost[o.run_id] <= MAX_LOST
                store.log("lost", o.run_id, reason=o.reason, worker=o.worker, lost=lost[o.run_id], again=again)
                if again:  # its checkpoint is in the study folder: it resumes wherever it lands next
                    result.retried += 1
                    queue.appendleft(spec_by_id[o.run_id])
                    display.event(f"lost {o.run_id}: {o.reason}; submitted again", counts, eta())
                else:
                    reason = f"{o.reason} ({lost[o.run_id]} times in this start)"
                    record_lost(study_dir, o.run_id, reason)
                    counts.failed += 1
                    result.failed.append((o.run_id, reason))
                    display.event(f"FAILED {o.run_id}: {reason}", counts, eta())
            elif o.status == "done_before":
                counts.done += 1
                display.event(f"finished elsewhere {o.run_id}", counts, eta())
            elif o.status in ("finished", "diverged", "analysed"):
                counts.done += 1
                if o.status == "analysed":
                    result.analysed += 1
                else:
                    result.ran += 1
                if o.analysis_failed:
                    result.analysis_failed.append((o.run_id, o.analysis))
                if o.run_id in estimates and o.how == "new":
                    done_here.append((o.seconds, estimates[o.run_id]))
                acc = f"test {o.test_acc:.4f}" if o.test_acc is not None else ""
                what = o.status + (" (resumed)" if o.how == "resume" else "")
                counts.running = len(running)
                display.event(f"{what} {o.run_id}{' (trained before)' if o.status == 'analysed' else ''}  {acc}  "
                              f"{fmt_duration(o.seconds)}"
                              + (f"  {o.reason}" if o.reason else "") + (f"  {o.analysis}" if o.analysis else ""),
                              counts, eta())
            else:
                counts.failed += 1
                result.ran += 1
                result.failed.append((o.run_id, o.reason))
                counts.running = len(running)
                display.event(f"FAILED {o.run_id}: {o.reason}", counts, eta())
        counts.running, counts.waiting = len(running), len(held)
        display.status(counts, eta())
