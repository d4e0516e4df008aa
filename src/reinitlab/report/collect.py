"""Read a study folder into one record per run, from the run folders alone (nothing is retrained).

A run folder's state: result.json (finished or diverged), error.json (failed), config.json only
(partial: interrupted; `running` if a worker holds its lock now). Runs listed in runs.json without a
folder are pending. Folders of earlier definitions of the study are included: they are results too.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import UserError
from ..rundir import read_json_dict
from ..study.definition import FULL
from ..study.store import Store

MARKERS = ("config.json", "result.json", "error.json")
# The axes every study has; any other axis of a run (issue 11: rounds, epochs, lr, ...) is a setting.
STANDARD_AXES = ("dataset", "arch", "train_size", "label_noise", "method", "seed")


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


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


@dataclass
class RunRecord:
    id: str
    status: str  # finished | diverged | failed | partial | running | pending
    config: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    axes: dict[str, Any] = field(default_factory=dict)  # the six axes and the study's extra axes

    @cached_property  # read for every cell of every table
    def combo(self) -> Combo:
        a = self.axes
        settings = tuple(sorted((k, _hashable(v)) for k, v in a.items() if k not in STANDARD_AXES))
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

    def by_status(self, status: str) -> list[RunRecord]:
        return [r for r in self.runs if r.status == status]


def collect(root: str | Path) -> Collected:
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
    records = []
    for rid in sorted(folders | set(listed)):
        records.append(_record(store, rid, listed.get(rid), extra))
    return Collected(root, records, study, _method_order(records, study), extra)


def settings_of(r: RunRecord, names: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    """The (key, value) pairs of the run's extra axes among `names`, sorted by key: the `settings`
    part of its combination."""
    return tuple(sorted((k, r.axes[k]) for k in names if k in r.axes))


def extra_axes_of(study: dict | None) -> list[str]:
    """The extra axes named in study.json (none for folders made before they existed)."""
    return sorted(((study or {}).get("definition") or {}).get("extra_axes") or {})


def _record(store: Store, rid: str, listed: dict | None, extra: list[str] = ()) -> RunRecord:
    d = store.run_dir(rid)
    state = store.state(rid)
    config = read_json_dict(d / "config.json") or (listed or {}).get("config") or {}
    status = state.status
    if status in ("partial", "pending") and store.is_running(rid):
        status = "running"
    axes = _axes(config, (listed or {}).get("axes"), state.result, extra)
    return RunRecord(rid, status, config, state.result, state.error, axes)


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


def _method_order(records: list[RunRecord], study: dict | None) -> list[str]:
    """The study's order (baseline, long, then the rest as written), then any others found."""
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
    found = sorted({r.method for r in records}, key=lambda m: (m not in ("baseline", "long"), m != "baseline", m))
    return [m for m in order if m in {r.method for r in records}] + [m for m in found if m not in order]
