"""Cross a study's axes into runs, each with a stable readable folder name and a checked config.

Run folders: runs/<dataset>/<arch>/n<size|full>/noise<p>/<method spec>/seed<k>. The names depend only
on the axis values, so the same study always maps a run to the same folder and a re-run finds what
is already done.

Every expanded run passes the checks that need no data: TrainConfig types and ranges, the method and
its options, the architecture, the dataset name and the training-set size against the dataset's
size. So a typo fails before anything is written, not as a failed run hours later.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from ..data import check_dataset
from ..data.split import pool_size
from ..errors import UserError
from ..methods import METHODS, make_method, parse_spec, warn_budget
from ..models import build_model, check_arch
from .definition import FULL, StudyDefinition


@dataclass(frozen=True)
class RunSpec:
    id: str  # folder below DIR/runs, also the run's name in tables and logs
    config: dict[str, Any]  # TrainConfig values; speed-only fields (threads) are added by the backend
    axes: dict[str, Any]  # dataset, arch, train_size (int or "full"), label_noise, method, seed

    def train_config(self, **speed) -> TrainConfig:
        return TrainConfig.from_dict({**self.config, **speed})

    def to_dict(self) -> dict:
        return {"id": self.id, "axes": self.axes, "config": self.config}

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        return cls(id=d["id"], config=d["config"], axes=d["axes"])


@dataclass(frozen=True)
class Budget:
    """The compute every method of one architecture gets: R rounds after round 0 of E epochs;
    `long` trains (R+1)*E epochs in one round, `baseline` E."""

    arch: str
    rounds: int
    epochs: int

    @property
    def reinit_epochs(self) -> int:
        return (self.rounds + 1) * self.epochs

    def to_dict(self) -> dict:
        return {"rounds": self.rounds, "epochs": self.epochs, "reinit_epochs": self.reinit_epochs,
                "long_epochs": self.reinit_epochs, "baseline_epochs": self.epochs}


def canonical_method(spec: str) -> str:
    """One spelling per method spec, so "lw: rescale=False" and "lw:rescale=false" share a folder.
    Also checks the name and the options."""
    name, options = parse_spec(spec)
    typed = METHODS[name](**options).options_dict()  # raises UserError on an unknown option or a bad value
    if not options:
        return name
    return name + ":" + ",".join(f"{k}={_fmt(typed[k])}" for k in options)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", text)


def run_id(dataset: str, arch: str, train_size: int | None, noise: float, method: str, seed: int) -> str:
    size = FULL if train_size is None else str(train_size)
    return "/".join([slug(dataset), slug(arch), f"n{size}", f"noise{noise:g}", slug(method), f"seed{seed}"])


def budgets(defn: StudyDefinition) -> dict[str, Budget]:
    """R per architecture: the study's `rounds`, else the architecture's full LW budget K-1."""
    from ..groups import groups_of
    base = TrainConfig.from_dict(defn.settings)
    methods = [make_method(m) for m in defn.methods]
    out = {}
    for arch in defn.archs:
        check_arch(arch)
        rounds = base.rounds
        if rounds is None or any(m.resets for m in methods):
            info = check_dataset(defn.datasets[0])
            probe = groups_of(build_model(arch, info.channels, info.num_classes, base.width,
                                          base.resolution or info.resolution))
            rounds = probe.K - 1 if rounds is None else rounds
            for m in methods:  # once here for the whole study; the runs' own checks stay quiet
                warn_budget(m, rounds, probe)
        out[arch] = Budget(arch, rounds, base.epochs)
    return out


def expand(defn: StudyDefinition, require_data: bool = True) -> tuple[list[RunSpec], dict[str, Budget]]:
    """All runs of the study in execution order (dataset, then seed, so a study stopped early holds
    complete paired sets of methods), and the budget per architecture. `require_data`: refuse a
    study whose dataset files are not found (a plan may be printed without them)."""
    for d in defn.datasets:
        check_dataset(d)
    if require_data:
        missing = missing_datasets(defn)
        if missing:
            raise UserError(f"{len(missing)} of the study's {len(defn.datasets)} datasets cannot be found: "
                            f"{missing[0]}" + (f" (and {', '.join(m.split(':')[0] for m in missing[1:])})"
                                               if len(missing) > 1 else "") + "; see `reinitlab data list`")
    methods = [canonical_method(m) for m in defn.methods]
    dup = [m for m in methods if methods.count(m) > 1]
    if dup:
        raise UserError(f"methods: {dup[0]!r} is listed twice (after normalizing the spelling)")
    budget = budgets(defn)
    for seed in defn.seeds:  # seeds are checked alone: they do not interact with other settings
        TrainConfig.from_dict({**defn.settings, "seed": seed})
    runs, seen, checked = [], {}, set()
    for dataset, seed, arch, size, noise, method in itertools.product(
            defn.datasets, defn.seeds, defn.archs, defn.train_sizes, defn.label_noise, methods):
        config = {**defn.settings, "dataset": dataset, "arch": arch, "method": method, "train_size": size,
                  "label_noise": noise, "seed": seed, "rounds": budget[arch].rounds}
        key = (dataset, arch, size, noise, method)
        if key not in checked:  # a full check per combination, not per seed: the paper has 1440 runs
            _check_size(TrainConfig.from_dict(config))
            checked.add(key)
        rid = run_id(dataset, arch, size, noise, method, seed)
        if rid in seen:
            raise UserError(f"runs {seen[rid]!r} and {method!r} map to the same folder {rid!r}; rename one")
        seen[rid] = method
        axes = {"dataset": dataset, "arch": arch, "train_size": FULL if size is None else size,
                "label_noise": noise, "method": method, "seed": seed}
        runs.append(RunSpec(rid, config, axes))
    _check_device(defn)
    return runs, budget


def missing_datasets(defn: StudyDefinition) -> list[str]:
    """One line per dataset whose files are not found, naming it and why (cheap: paths only)."""
    data_dir = defn.settings.get("data_dir")
    out = []
    for d in defn.datasets:
        try:
            check_dataset(d).locate(Path(data_dir).expanduser() if data_dir else None)
        except UserError as e:
            first = str(e).splitlines()[0] if str(e) else "not found"
            out.append(first if first.startswith(d) else f"{d}: {first}")
    return out


def _check_size(cfg: TrainConfig) -> None:
    """Against the pool left after the validation split, from the dataset's registered sizes (no data
    read, so `--dry-run` catches it too); `runner.check_data` checks again on the loaded data."""
    info = check_dataset(cfg.dataset)
    pool = pool_size(info.train_size, info.num_classes, cfg.val_fraction, bool(info.val_size))
    if cfg.train_size is not None and cfg.train_size > pool:
        split = ("the official validation set is separate" if info.val_size else
                 f"val_fraction={cfg.val_fraction:g} of {info.train_size} held out")
        raise UserError(f"train_sizes: {cfg.train_size} is larger than the training pool of {cfg.dataset} "
                        f"({pool} examples; {split}); use at most {pool}, or \"full\"")


def _check_device(defn: StudyDefinition) -> None:
    from ..runtime import resolve_device
    resolve_device(defn.settings.get("device", "auto"))
