"""What every tracker shares: where its store is, what a run's numbers are called there, how a run
is replayed from its folder, and the guard that keeps a failing tracker from failing the run.

A tracker is a `Writer` (one file per library) behind `TrackerHook`, a hook (hooks.py):

    open(run)                  start the tracker's run `run` (a TrackedRun), replacing any earlier
                               record of the same run folder
    scalars(step, values)      {tag: number} at a global step: the run's epoch_total (1, 2, ...)
    text(step, tag, text)
    close(result)              the run ended; `result` is result.json
    abort()                    best effort after the writer failed

The tracker is a mirror of the run folder, which stays the record. When a run starts, or resumes
after a kill, its tracker run is built anew: what the folder already holds (metrics.jsonl, the
finished rounds) is written first, then every epoch as it is trained. So a resumed run shows one
curve with no epoch twice, also where the killed attempt wrote epochs after its last checkpoint or
had no tracker at all. `reinitlab export` writes finished folders through the same writers.

The names, the same in every tracker: train/loss, train/acc, val/loss, val/acc, lr, round,
norm/<group> per epoch; round/test_acc, round/train_acc, round/val_acc, round/train_loss and
diagnostics/<name> at the last epoch of each round; the reset of each round as text ("reset") at
its first epoch; result/test_acc, result/val_acc, result/train_acc, result/epochs_total,
result/seconds at the end. Parameters: the resolved config, method options as method_options.<key>.
"""
from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..util.errors import ReinitlabWarning
from ..util.files import read_json_dict, read_jsonl

DEFAULT_EXPERIMENT = "reinitlab"
# what a study sweeps; tags in every tracker (export adds whatever else differs between its runs)
AXES = ("dataset", "arch", "method", "seed", "train_size", "label_noise")


class TrackerWarning(ReinitlabWarning):
    """A tracker could not write; the run went on without it."""


@dataclass
class TrackedRun:
    """One run as a tracker sees it."""

    name: str  # in a study its run id (dataset/arch/n500/noise0/lw/seed0), else the folder's name
    store: Path  # the tracker's folder (tracker_dir)
    experiment: str  # the study's name, or "reinitlab"
    key: str  # stable id of the run folder (a hash of its absolute path): what replaces what
    params: dict[str, Any]  # flat: str, int, float or bool
    tags: dict[str, str]
    run_dir: str | None = None
    config: dict = field(default_factory=dict)  # as config.json holds it, unflattened


class Writer:
    """One tracker's library behind the five calls above. Subclasses set `name` and `package`
    (what `pip install` needs), and implement the calls; nothing else in reinitlab imports the
    tracker libraries."""

    name = ""
    package = ""

    @classmethod
    def hook(cls, tracker: str) -> "TrackerHook":
        """The hook that mirrors a run into this tracker (train/hooks.tracker_hooks)."""
        return TrackerHook(tracker, cls)

    def open(self, run: TrackedRun) -> None:
        raise NotImplementedError

    def scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def text(self, step: int, tag: str, text: str) -> None:
        raise NotImplementedError

    def close(self, result: dict) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        pass

    @staticmethod
    def open_command(store: Path) -> str:
        """How a person opens the store."""
        raise NotImplementedError


# ---- where and under which name ------------------------------------------------------------
def default_store(tracker: str, root: Path) -> Path:
    """TensorBoard and MLflow get a folder of their own; W&B makes its own wandb/ in the folder
    it is given, so the root itself."""
    return root if tracker == "wandb" else root / tracker


def study_of(run_dir: Path) -> Path | None:
    """The study folder that `run_dir` is a run of (STUDY/runs/<id>, STUDY/study.json), or None."""
    run_dir = run_dir.resolve()
    for p in run_dir.parents:
        if (p / "study.json").is_file() and p / "runs" in (run_dir, *run_dir.parents):
            return p
    return None


def run_key(run_dir: Path | None, fallback: str) -> str:
    text = str(run_dir.resolve()) if run_dir is not None else fallback
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def locate(tracker: str, tracker_dir: str | None, run_dir: Path | None) -> tuple[Path, str, str]:
    """(store, run name, experiment) of a run trained into `run_dir`. Raises ValueError where
    there is nowhere to write (no run folder and no tracker_dir)."""
    study = study_of(run_dir) if run_dir is not None else None
    if tracker_dir:
        store = Path(tracker_dir).expanduser().resolve()
    elif run_dir is not None:
        store = default_store(tracker, study or run_dir.resolve().parent)
    else:
        raise ValueError("a run trained without a folder (out=None) needs tracker_dir")
    if study is not None:
        name = run_dir.resolve().relative_to(study / "runs").as_posix()
        experiment = (((read_json_dict(study / "study.json") or {}).get("definition") or {}).get("name")
                      or study.name)
    else:
        name = run_dir.resolve().name if run_dir is not None else "run"
        experiment = DEFAULT_EXPERIMENT
    return store, name, str(experiment)


def flat_params(config: dict) -> dict[str, Any]:
    """The config as flat parameters: nested dicts as a.b, None as 'none', lists as JSON."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in flat_params(v).items()})
        elif v is None:
            out[k] = "none"
        elif isinstance(v, (bool, int, float, str)):
            out[k] = v
        else:
            out[k] = json.dumps(v)
    return out


def tracked_run(tracker: str, config: dict, run_dir: Path | None, tracker_dir: str | None = None, label: str = "",
                extra_tags: dict[str, Any] | None = None) -> TrackedRun:
    store, name, experiment = locate(tracker, tracker_dir, run_dir)
    if run_dir is None and label:
        name = label
    key = run_key(run_dir, uuid.uuid4().hex)  # no folder: nothing to replace, ever
    tags = {a: str(config.get(a)) for a in AXES if a in config}
    tags.update({k: str(v) for k, v in (extra_tags or {}).items()})
    tags["reinitlab.key"] = key
    if run_dir is not None:
        tags["reinitlab.run_dir"] = str(run_dir.resolve())
    return TrackedRun(name=name, store=store, experiment=experiment, key=key, params=flat_params(config),
                      tags=tags, run_dir=str(run_dir.resolve()) if run_dir is not None else None, config=config)


# ---- what the numbers are called -------------------------------------------------------------
def _numbers(pairs: Iterable[tuple[str, Any]]) -> dict[str, float]:
    return {k: float(v) for k, v in pairs if isinstance(v, (int, float)) and not isinstance(v, bool)}


def epoch_scalars(row: dict) -> dict[str, float]:
    """A metrics.jsonl line's numbers."""
    pairs = [("train/loss", row.get("train_loss")), ("train/acc", row.get("train_acc")),
             ("val/loss", row.get("val_loss")), ("val/acc", row.get("val_acc")), ("lr", row.get("lr")),
             ("round", row.get("round")), ("epoch_seconds", row.get("seconds"))]
    pairs += [(f"norm/{g}", v) for g, v in (row.get("group_norms") or {}).items()]
    return _numbers(pairs)


def round_scalars(record: dict) -> dict[str, float]:
    """A result.json per_round entry's numbers."""
    pairs = [(f"round/{k}", record.get(k)) for k in ("test_acc", "train_acc", "val_acc", "train_loss")]
    pairs += [(f"diagnostics/{k}", v) for k, v in (record.get("diagnostics") or {}).items()]
    return _numbers(pairs)


def reset_text(reset: dict) -> str:
    """What a round's reset changed, in one line."""
    parts = [f"round {reset.get('round')}: {reset.get('event') or 'reset'}"]
    redrawn = reset.get("redrawn_fraction")
    if isinstance(redrawn, dict):  # per group
        shown = [f"{g} {v:.0%}" for g, v in redrawn.items() if isinstance(v, (int, float)) and v]
        parts.append("redrawn: " + (", ".join(shown) or "nothing"))
    elif isinstance(redrawn, (int, float)):
        parts.append(f"redrawn: {redrawn:.0%}")
    if reset.get("standardized"):
        parts.append("standardized: " + ", ".join(map(str, reset["standardized"])))
    return "; ".join(parts)


def result_scalars(result: dict) -> dict[str, float]:
    return _numbers((f"result/{k}", result.get(k)) for k in ("test_acc", "val_acc", "train_acc",
                                                              "epochs_total", "seconds"))


def replay(writer: Writer, rows: list[dict], rounds: list[dict], current_reset: dict | None = None) -> int:
    """Write what a run folder holds, in step order: per round its reset, its epochs, its result.
    `rounds`: the finished rounds (result.json per_round); `current_reset`: the reset of the round
    under way, if it is not finished. Returns the last step written."""
    step = 0
    finished = {r.get("round"): r for r in rounds}
    seen_rounds: set = set()
    for row in rows:
        r = row.get("round")
        if r not in seen_rounds:
            seen_rounds.add(r)
            reset = (finished.get(r) or {}).get("reset") or (current_reset if r not in finished else None)
            if reset:
                writer.text(row["epoch_total"], "reset", reset_text(reset))
        step = row["epoch_total"]
        writer.scalars(step, epoch_scalars(row))
        record = finished.get(r)
        if record is not None and record.get("epochs_total") == step:
            writer.scalars(step, round_scalars(record))
    return step


# ---- the hook --------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class TrackerHook:
    """Mirrors one run into a tracker. Every call is guarded: the first failure (library missing,
    store unwritable, a write that raises) warns once and the tracker stops; the run goes on."""

    def __init__(self, tracker: str, make_writer: Callable[[], Writer]):
        self.tracker = tracker
        self.make_writer = make_writer
        self.writer: Writer | None = None
        self.failed = False
        self.where = ""

    def _guard(self, fn: Callable[[], None]) -> None:
        if self.failed:
            return
        try:
            fn()
        except Exception as e:  # a tracker never fails a run: KeyboardInterrupt and the like still pass
            self.failed = True
            if isinstance(e, ImportError):
                why = (f"the {getattr(self.writer, 'package', self.tracker)} package is not installed "
                       f"(pip install 'reinitlab[{self.tracker}]')")
            else:
                why = f"{type(e).__name__}: {one_line(e)}"
            warnings.warn(f"tracker {self.tracker}{self.where}: {why}; the run goes on without it (its folder "
                          "holds every number; `reinitlab export` can mirror it later)", TrackerWarning,
                          stacklevel=2)
            if self.writer is not None:
                try:
                    self.writer.abort()
                except Exception:
                    pass

    def on_run_start(self, ctx) -> None:
        def start():
            cfg = ctx.engine.config.to_dict()
            run = tracked_run(self.tracker, cfg, ctx.out, cfg.get("tracker_dir"), ctx.label)
            self.where = f" ({run.store})"
            self.writer = self.make_writer()
            self.writer.open(run)
            st = ctx.state
            if st.epochs_total and ctx.out is not None:  # resumed: what the folder holds first
                rows = [r for r in read_jsonl(ctx.out / "metrics.jsonl") if r["epoch_total"] <= st.epochs_total]
                replay(self.writer, rows, st.per_round, None if st.round_done else st.reset)
        self._guard(start)

    def on_round_start(self, ctx, reset) -> None:
        if reset:
            self._guard(lambda: self.writer.text(ctx.state.epochs_total + 1, "reset", reset_text(reset)))

    def on_epoch_end(self, ctx, row) -> None:
        self._guard(lambda: self.writer.scalars(row["epoch_total"], epoch_scalars(row)))

    def on_round_end(self, ctx, record) -> None:
        self._guard(lambda: self.writer.scalars(record["epochs_total"], round_scalars(record)))

    def on_run_end(self, ctx, result) -> None:
        def end():
            values = result_scalars(result)
            if values:
                self.writer.scalars(max(result.get("epochs_total") or 0, 1), values)
            self.writer.close(result)
        self._guard(end)
