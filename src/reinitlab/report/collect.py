"""Read a study folder, or any set of run folders, into one record per run, from the run folders
alone (nothing is retrained).

A run folder's state: result.json (finished or diverged), error.json (failed), config.json only
(partial: interrupted; `running` if a worker holds its lock now). Runs listed in runs.json without a
folder are pending. Folders of earlier definitions of the study are included: they are results too.

Loose run folders (several `train` outputs, the runs of several studies, a folder holding run
folders; `collect_runs`) have no study.json: a run's combination and method come from its
config.json, and every setting that differs between the runs besides the method and the seed
becomes part of the combination (`Combo.settings`), so runs that differ in, say, lr are never
averaged or paired.

Nothing is merged or dropped silently: a run folder whose files cannot be read (a torn config.json,
or one that is valid JSON but not a run's config, a garbled metrics.jsonl line, a model.pt that
holds code) is refused naming the file, and so are two loose folders that claim the same run (same
settings, method and seed) with different results; with `skip_bad` both kinds are left out, each
named (`Collected.skipped`), and where that leaves no run at all the report is refused. Two copies
of one run with the same results count once, and the copy is named.
"""
from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from ..study.definition import FULL
from ..study.store import Store, folder_state
from ..train.rundir import RESUMABLE_DIFFERENCES, folder_problem, read_config
from ..util.errors import ReinitlabWarning, UserError
from ..util.files import read_json_dict

MARKERS = ("config.json", "result.json", "error.json")
# The axes every study has; any other axis of a run (rounds, epochs, lr, ...) is a setting.
STANDARD_AXES = ("dataset", "arch", "train_size", "label_noise", "method", "seed")
REFERENCES = ("baseline", "long")
FOCUS = "lw"  # the method of interest: shown right after the references, named in the answer


class Combo(NamedTuple):
    """The combination a run belongs to: every axis but the method and the seed. `settings` holds the
    study's extra axes as sorted (key, value) pairs; () for a study with only the standard axes."""

    dataset: str
    arch: str
    train_size: Any  # int, or "full" where a run's config does not say
    label_noise: float
    settings: tuple[tuple[str, Any], ...] = ()


def value_order(v: Any) -> tuple:
    """Numbers in numeric order before anything else in text order (None, strings, lists)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v, "")
    return (1, 0, str(v))


def combo_order(c: Combo) -> tuple:
    return (str(c.dataset), str(c.arch), value_order(c.train_size), c.label_noise,
            tuple((k, value_order(v)) for k, v in c.settings))


def hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, hashable(x)) for k, x in v.items()))
    return v


@dataclass
class RunRecord:
    id: str
    status: str  # finished | diverged | failed | partial | running | pending
    config: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    axes: dict[str, Any] = field(default_factory=dict)  # the six axes and the study's extra axes
    folder: Path | None = None  # where the run folder is (None: <study>/runs/<id>)

    @cached_property  # read for every cell of every table
    def combo(self) -> Combo:
        a = self.axes
        settings = tuple(sorted((k, hashable(v)) for k, v in a.items() if k not in STANDARD_AXES))
        return Combo(a["dataset"], a["arch"], a["train_size"], a["label_noise"], settings)

    @property
    def method(self) -> str:
        return self.axes["method"]

    @property
    def seed(self) -> int:
        return self.axes["seed"]

    @property
    def test_acc(self) -> float | None:
        return (self.result or {}).get("test_acc") if self.status == "finished" else None


@dataclass
class Collected:
    root: Path
    runs: list[RunRecord]
    study: dict | None  # study.json, if the folder was made by `reinitlab study`
    methods: list[str]  # display order
    extra_axes: list[str] = field(default_factory=list)  # sorted names of the study's extra axes
    loose: bool = False  # run folders without a study (collect_runs): `root` is where the report goes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run folder, why) left out or counted once

    def by_status(self, status: str) -> list[RunRecord]:
        return [r for r in self.runs if r.status == status]

    def run_dir(self, r: RunRecord) -> Path:
        return r.folder if r.folder is not None else self.root / "runs" / r.id


def collect(root: str | Path, skip_bad: bool = False) -> Collected:
    root = Path(root)
    store = Store(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    runs_dir = root / "runs"
    folders = set()
    if runs_dir.is_dir():
        for marker in MARKERS:
            for f in runs_dir.rglob(marker):
                folders.add(f.parent.relative_to(runs_dir).as_posix())
    listed = {d["id"]: d for d in store.read_runs()}
    if not folders and not listed:
        raise UserError(f"{root}: no run folders under {runs_dir} and no runs.json; is this a study folder "
                        "(reinitlab study ... --out DIR)?")
    study = store.read_study()
    extra = extra_axes_of(study)
    records, skipped = [], []
    for rid in sorted(folders | set(listed)):
        # A study redoes a run whose result.json is torn (store.clean_for_attempt), so the report
        # counts it as unfinished, and a torn config.json is replaced by runs.json's; what cannot be
        # read around is refused: code in model.pt or ckpt.pt, a config that runs.json does not list.
        problem = folder_problem(store.run_dir(rid), json_files=() if rid in listed else ("config.json",),
                                 metrics=False)
        if problem:
            _refuse_or_skip(problem, skip_bad, skipped, store.run_dir(rid))
            continue
        records.append(_record(store, rid, listed.get(rid), extra))
    _something_left(records, skipped)
    return Collected(root, records, study, _method_order(records, study), extra, skipped=skipped)


def is_study_folder(path: str | Path) -> bool:
    """A folder `reinitlab study` wrote (or one laid out like it): study.json, runs.json or runs/,
    and not itself a run folder."""
    p = Path(path)
    return (p.is_dir() and not (p / "config.json").exists()
            and any((p / name).exists() for name in ("study.json", "runs.json", "runs")))


def find_run_folders(paths: Sequence[str | Path]) -> list[Path]:
    """The run folders that `paths` name: run folders themselves (they hold config.json), glob
    patterns (quoted, so the shell left them), and folders holding run folders at any depth (a
    study folder, a folder of `train` outputs). In the order given, each once. Raises UserError
    naming a path that is missing or holds no run folder."""
    found: list[Path] = []
    for p in paths:
        text = str(p)
        matches = sorted(glob.glob(text)) if any(c in text for c in "*?[") else [text]
        if not matches:
            raise UserError(f"{text}: matches no file or folder")
        for m in map(Path, matches):
            if not m.is_dir():
                raise UserError(f"{m}: no such folder" if not m.exists() else
                                f"{m}: not a folder; give run folders (reinitlab train ... --out DIR) or a "
                                "folder holding them")
            if (m / "config.json").is_file():
                found.append(m)
                continue
            inner = sorted({f.parent for f in m.rglob("config.json")})
            inner = [d for d in inner if not any(o != d and o in d.parents for o in inner)]  # a run's own files
            if not inner:
                raise UserError(f"{m}: no run folders in it (a run folder holds config.json, as "
                                "`reinitlab train ... --out DIR` or a study writes it)")
            found += inner
    out, seen = [], set()
    for d in found:
        key = os.path.realpath(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def varying_settings(configs: Sequence[dict]) -> list[str]:
    """The run settings whose values differ between `configs`, besides the method (and its
    options), the seed, the standard axes (they are the combination's own fields) and the settings
    that change no number (threads, compile, eval batch, trackers). `data_seed` counts only where
    it does not simply follow the seed. Sorted."""
    keys = sorted({k for c in configs for k in c})
    skip = set(STANDARD_AXES) | {"method_options"} | RESUMABLE_DIFFERENCES
    if all(c.get("data_seed", c.get("seed")) == c.get("seed") for c in configs):
        skip.add("data_seed")
    out = []
    for k in keys:
        if k in skip:
            continue
        values = {repr(hashable(c.get(k))) for c in configs}
        if len(values) > 1:
            out.append(k)
    return out


def collect_runs(folders: Sequence[str | Path], root: str | Path, skip_bad: bool = False) -> Collected:
    """Loose run folders as one collection; `root`: where the report is written. A run's id is its
    path relative to the folders' common parent. Unreadable folders and conflicting copies of one run
    raise UserError, or with `skip_bad` are left out (named in `skipped` and in a warning)."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise UserError("no run folders given")
    skipped: list[tuple[str, str]] = []
    readable = []
    for f in folders:
        problem = folder_problem(f)
        if problem:
            _refuse_or_skip(problem, skip_bad, skipped, f)
        else:
            readable.append(f)
    _something_left(readable, skipped)
    folders = readable
    parent = Path(os.path.commonpath([os.path.abspath(f) for f in folders]))
    configs = [read_json_dict(f / "config.json") or {} for f in folders]
    settings = varying_settings(configs)
    records = []
    for f, config in zip(folders, configs, strict=True):
        state = folder_state(f)
        rel = Path(os.path.relpath(os.path.abspath(f), parent)).as_posix()
        rid = rel if rel != "." else f.resolve().name
        axes = _axes(config, None, state.result, settings)
        axes["method"] = _canonical(str(axes["method"]))  # "lw: rescale=False" and "lw:rescale=false" are one method
        for k in settings:  # a setting this run's config lacks (older code) is a value of its own
            axes.setdefault(k, None)
        records.append(RunRecord(rid, state.status, config, state.result, state.error, axes, folder=f))
    records = _one_per_run(records, skip_bad, skipped)
    _something_left(records, skipped)
    records.sort(key=lambda r: (combo_order(r.combo), r.method, value_order(r.seed), r.id))
    return Collected(Path(root), records, None, _method_order(records, None), settings, loose=True, skipped=skipped)


# ---- what is refused, or left out with skip_bad ------------------------------------------------------
def _refuse_or_skip(problem: str, skip_bad: bool, skipped: list, folder: Path) -> None:
    if not skip_bad:
        raise UserError(f"{problem}; refused (--skip-bad leaves such run folders out of the report)")
    warnings.warn(f"left out of the report: {problem}", ReinitlabWarning, stacklevel=2)
    skipped.append((str(folder), problem))


def _something_left(records: list, skipped: list[tuple[str, str]]) -> None:
    """A report of no run, written after --skip-bad left every one out, would read as a result
    (exit 0, empty tables): refused instead, before anything is written."""
    if not records:
        n = len({folder for folder, _ in skipped})
        raise UserError(f"no run left to report after skipping {n} bad folder{'s' if n != 1 else ''} "
                        "(--skip-bad); nothing written")


def _outcome(r: RunRecord) -> tuple:
    """What a run found, for telling two copies of it apart (time taken is not a finding)."""
    res = r.result or {}
    return (r.status, res.get("test_acc"), res.get("val_acc"), res.get("train_acc"), res.get("epochs_total"),
            tuple((x.get("round"), x.get("test_acc")) for x in res.get("per_round") or [] if isinstance(x, dict)))


def _one_per_run(records: list[RunRecord], skip_bad: bool, skipped: list) -> list[RunRecord]:
    """Loose folders that claim one run (combination, method and seed: every setting but speed and
    observers) must agree on its results: a table has one value per seed, and keeping whichever came
    last would be a silent choice. Copies with the same results count once."""
    by: dict[tuple, list[RunRecord]] = {}
    for r in records:
        if r.status in ("finished", "diverged"):
            by.setdefault((r.combo, r.method, r.seed), []).append(r)
    drop: set[int] = set()
    for same in by.values():
        first = same[0]
        for other in same[1:]:
            if _outcome(other) == _outcome(first):
                drop.add(id(other))
                skipped.append((str(other.folder), f"the same run as {first.folder} with the same results: counted once"))
                continue
            a, b = _outcome(first)[1], _outcome(other)[1]
            problem = (f"{first.folder} and {other.folder} claim the same run ({first.method}, seed {first.seed}, the same "
                       f"settings) with different results (test_acc {_acc(a)} vs {_acc(b)})")
            if not skip_bad:
                raise UserError(f"{problem}; give one of them (--skip-bad leaves both out)")
            warnings.warn(f"left out of the report: {problem}", ReinitlabWarning, stacklevel=2)
            for r in (first, other):
                if id(r) not in drop:
                    drop.add(id(r))
                    skipped.append((str(r.folder), problem))
    return [r for r in records if id(r) not in drop]


def _acc(v: Any) -> str:
    return f"{100 * v:.2f}%" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _canonical(spec: str) -> str:
    from ..study.expand import canonical_method
    try:
        return canonical_method(spec)
    except UserError:  # a method this code no longer knows: its runs are still results
        return spec


def combo_settings(r: RunRecord, names: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    """The (key, value) pairs of the run's extra axes among `names`, sorted by key: the `settings`
    part of its combination."""
    return tuple(sorted((k, r.axes[k]) for k in names if k in r.axes))


def extra_axes_of(study: dict | None) -> list[str]:
    """The extra axes named in study.json (none for folders made before they existed)."""
    return sorted(((study or {}).get("definition") or {}).get("extra_axes") or {})


def _record(store: Store, rid: str, listed: dict | None, extra: list[str] = ()) -> RunRecord:
    d = store.run_dir(rid)
    state = store.state(rid)
    config = _own_config(d / "config.json") or (listed or {}).get("config") or {}
    status = state.status
    if status in ("partial", "pending") and store.is_running(rid):
        status = "running"
    axes = _axes(config, (listed or {}).get("axes"), state.result, extra)
    return RunRecord(rid, status, config, state.result, state.error, axes, folder=d)


def _own_config(path: Path) -> dict | None:
    """The run's config.json where it is a run config (rundir.read_config), else None: a study's
    runs.json then says what the run is."""
    if not path.is_file():
        return None
    try:
        return read_config(path)
    except (UserError, OSError):
        return None


def _axes(config: dict, listed_axes: dict | None, result: dict | None, extra: list[str] = ()) -> dict:
    """The resolved config wins (train_size "full" becomes the number of examples trained on); an
    extra axis comes from the config too, so a run of an earlier definition not in runs.json has it."""
    a = dict(listed_axes or {})
    for key in ("dataset", "arch", "method", "label_noise", "seed", *extra):
        if key in config:
            a[key] = config[key]
    size = config.get("train_size")
    a["train_size"] = size if size is not None else a.get("train_size", FULL)
    for key, default in (("dataset", "?"), ("arch", "?"), ("method", "?"), ("label_noise", 0.0), ("seed", 0)):
        a.setdefault(key, (result or {}).get(key, default))
    return a


def is_focus(method: str) -> bool:
    """The method of interest or one of its variants (lw, lw:rescale=false)."""
    return method == FOCUS or method.startswith(FOCUS + ":")


def _method_order(records: list[RunRecord], study: dict | None) -> list[str]:
    """baseline, long, the method of interest (lw, then its variants), then the rest in the
    study's order as written, then any others found."""
    declared = ((study or {}).get("definition") or {}).get("methods", [])
    from ..study.expand import canonical_method
    order = []
    for m in declared:
        try:
            m = canonical_method(m)
        except UserError:
            pass
        if m not in order:
            order.append(m)
    have = {r.method for r in records}
    listed = [m for m in order if m in have] + sorted(m for m in have if m not in order)

    def rank(m: str) -> int:
        return REFERENCES.index(m) if m in REFERENCES else 2 if m == FOCUS else 3 if is_focus(m) else 4

    return sorted(listed, key=rank)  # stable: the study's order within each rank
