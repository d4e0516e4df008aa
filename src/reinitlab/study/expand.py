"""Cross a study's axes into runs, each with a stable readable folder name and a checked config.

Run folders: runs/<dataset>/<arch>/n<size|full>/noise<p>/<method spec>/seed<k>. With extra axes (run
settings given as lists) one more segment names their values, keys sorted, values canonical:
runs/.../noise0/rounds=2,weight_decay=0.005/lw/seed0. A study without extra axes has no such
segment, so folders made before extra axes existed still resume. The names depend only on the axis
values, so the same study always maps a run to the same folder and a re-run finds what is already
done.

Every expanded run passes the checks that need no data: TrainConfig types and ranges, the method and
its options, the architecture, the dataset name and the training-set size against the dataset's
size, and a method whose in-round events could never fire in its runs' schedule (swr's `every` beyond
a round's steps) is refused. So a typo fails before anything is written, not as a failed run hours
later, and no method is reported that never acted.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.method import METHODS, make_method, parse_spec, warn_budget
from ..data import check_dataset
from ..data.split import pool_size
from ..models import check_arch
from ..protocols import PROTOCOLS, StagePlan
from ..train.config import TrainConfig
from ..train.engine import Schedule
from ..train.resolve import check_protocol
from ..util.errors import UserError
from .definition import FULL, StudyDefinition, value_text


@dataclass(frozen=True)
class RunSpec:
    id: str  # folder below DIR/runs, also the run's name in tables and logs
    config: dict[str, Any]  # TrainConfig values; speed-only fields (threads) are added by the backend
    axes: dict[str, Any]  # dataset, arch, train_size (int or "full"), label_noise, method, seed, extra axes

    def train_config(self, **speed) -> TrainConfig:
        return TrainConfig.from_dict({**self.config, **speed})

    def to_dict(self) -> dict:
        return {"id": self.id, "axes": self.axes, "config": self.config}

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        return cls(id=d["id"], config=d["config"], axes=d["axes"])


@dataclass(frozen=True)
class Budget:
    """The compute every method gets at one (architecture, rounds, epochs): R rounds after round 0
    of E epochs; `long` trains (R+1)*E epochs in one round, `baseline` E. `patience` > 0: every
    round ends early once training accuracy has been 100% that many epochs in a row, so E is a cap."""

    arch: str
    rounds: int
    epochs: int
    patience: tuple[int, ...] = (0,)  # the study's values (several if patience is an axis)
    protocols: tuple[str, ...] = ("rounds",)  # the study's protocols (several if protocol is an axis)
    fit_acc: tuple[float, ...] = (1.0,)  # the training accuracy patience waits for (several if an axis)

    @property
    def reinit_epochs(self) -> int:
        return (self.rounds + 1) * self.epochs

    def to_dict(self) -> dict:
        out = {"arch": self.arch, "rounds": self.rounds, "epochs": self.epochs, "reinit_epochs": self.reinit_epochs,
               "long_epochs": self.reinit_epochs, "baseline_epochs": self.epochs, "patience": list(self.patience)}
        if self.protocols != ("rounds",):  # study.json of a rounds study stays as it was
            out["protocols"] = list(self.protocols)
        if self.fit_acc != (1.0,):
            out["fit_acc"] = list(self.fit_acc)
        return out

    @property
    def staged(self) -> bool:
        return any(PROTOCOLS[p].staged for p in self.protocols)


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


def settings_segment(settings: dict[str, Any]) -> str:
    """The path segment of a run's extra-axis values: "rounds=2,weight_decay=0.005"."""
    return ",".join(f"{k}={slug(value_text(settings[k]))}" for k in sorted(settings))


def run_id(dataset: str, arch: str, train_size: int | None, noise: float, method: str, seed: int,
           settings: dict[str, Any] | None = None) -> str:
    size = FULL if train_size is None else str(train_size)
    parts = [slug(dataset), slug(arch), f"n{size}", f"noise{noise:g}"]
    if settings:
        parts.append(settings_segment(settings))
    return "/".join(parts + [slug(method), f"seed{seed}"])


def full_rounds(defn: StudyDefinition, arch: str) -> int:
    """The architecture's full LW budget K-1 (groups stem, blocks, head)."""
    return study_groups(defn, arch).K - 1


def study_groups(defn: StudyDefinition, arch: str):
    """The groups of `arch` as the study's first dataset builds it (no data read)."""
    from ..train.preview import arch_groups
    base = TrainConfig.from_dict(defn.settings)
    width = defn.extra_axes.get("width", [base.width])[0]  # the number of groups does not depend on it
    resolution = defn.extra_axes.get("resolution", [base.resolution])[0]
    return arch_groups(arch, defn.datasets[0], width, resolution)[1]


def budget_label(defn: StudyDefinition, b: Budget) -> str:
    """The arch alone when the study has one budget per arch (as study.json always had), else the
    arch with what varies: "cnn R=2", "cnn R=2 E=5"."""
    label = b.arch
    if "rounds" in defn.extra_axes:
        label += f" R={b.rounds}"
    if "epochs" in defn.extra_axes:
        label += f" E={b.epochs}"
    return label


def budgets(defn: StudyDefinition) -> dict[str, Budget]:
    """Every (arch, R, E) of the study, by `budget_label`. R: the study's `rounds` (each value of
    the axis), else the architecture's full LW budget K-1; E: `epochs` (each value)."""
    base = TrainConfig.from_dict(defn.settings)
    methods = [make_method(m) for m in defn.methods]
    patience = tuple(defn.extra_axes.get("patience", [base.patience]))
    protocols = tuple(defn.extra_axes.get("protocol", [base.protocol]))
    fit_acc = tuple(defn.extra_axes.get("fit_acc", [base.fit_acc]))
    out = {}
    for arch in defn.archs:
        check_arch(arch)
        if "rounds" in defn.extra_axes:
            rounds = defn.extra_axes["rounds"]
        elif base.rounds is not None:
            rounds = [base.rounds]
        else:
            rounds = [default_rounds(defn, arch, protocols)]
        if any(m.resets for m in methods):
            probe = study_groups(defn, arch)
            for r in rounds:
                for m in methods:  # once here for the whole study; the runs' own checks stay quiet
                    warn_budget(m, r, probe)
        for r in rounds:
            for e in defn.extra_axes.get("epochs", [base.epochs]):
                b = Budget(arch, r, e, patience, protocols, fit_acc)
                out[budget_label(defn, b)] = b
    return out


def default_rounds(defn: StudyDefinition, arch: str, protocols: tuple[str, ...]) -> int:
    """R where the study gives none: the architecture's full LW budget under `rounds`; a staged
    protocol's own (warm_start: 1); refused where a staged protocol needs it stated."""
    staged = [p for p in protocols if PROTOCOLS[p].staged]
    if not staged:
        return full_rounds(defn, arch)
    own = {PROTOCOLS[p].rounds_default for p in staged}
    if len(own) == 1 and None not in own and len(staged) == len(protocols):
        return own.pop()
    raise UserError(f"rounds: protocol={staged[0] if None in own else ','.join(protocols)} needs rounds (the stages "
                    "after the first) given in the study, e.g. rounds = 4 for 5 stages")


def expand(defn: StudyDefinition, require_data: bool = True) -> tuple[list[RunSpec], dict[str, Budget]]:
    """All runs of the study in execution order (dataset, then seed, so a study stopped early holds
    complete paired sets of methods), and every budget (see `budgets`). `require_data`: refuse a
    study whose dataset files are not found (a plan may be printed without them).

    `baseline` ignores `rounds`: with a rounds axis its runs at each R are the same computation,
    trained once per R so that every budget holds a complete, seed-paired set of methods. A study
    of variants is the union of theirs."""
    if defn.variants:
        runs, budget, where = [], {}, {}
        for i, v in enumerate(defn.variants):
            vr, vb = expand(v, require_data)
            for r in vr:
                if r.id in where:
                    raise UserError(f"variants {where[r.id] + 1} and {i + 1} both have the run {r.id!r}; make them "
                                    "differ in a setting")
                where[r.id] = i
            runs += vr
            budget.update(vb)
        return runs, budget
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
    _check_folder_names(defn)
    budget = budgets(defn)
    rounds_of = {b.arch: b.rounds for b in budget.values()}  # used where rounds is not an axis
    for seed in defn.seeds:  # seeds are checked alone: they do not interact with other settings
        TrainConfig.from_dict({**defn.settings, "seed": seed})
    keys = list(defn.extra_axes)
    runs, seen, checked = [], {}, set()
    for dataset, seed, arch, size, noise, values, method in itertools.product(
            defn.datasets, defn.seeds, defn.archs, defn.train_sizes, defn.label_noise,
            list(itertools.product(*defn.extra_axes.values())), methods):
        settings = dict(zip(keys, values, strict=True))
        config = {**defn.settings, "dataset": dataset, "arch": arch, "method": method, "train_size": size,
                  "label_noise": noise, "seed": seed, "rounds": rounds_of[arch], **settings}
        key = (dataset, arch, size, noise, values, method)
        if key not in checked:  # a full check per combination, not per seed: the paper has 1440 runs
            cfg = TrainConfig.from_dict(config)
            _check_size(cfg)
            _check_protocol(cfg)
            _check_acts(cfg)
            if defn.tune:
                _check_tunable(cfg, defn.tune)
            checked.add(key)
        rid = run_id(dataset, arch, size, noise, method, seed, settings)
        if rid in seen:
            raise UserError(f"runs {seen[rid]!r} and {method!r} map to the same folder {rid!r}; rename one")
        seen[rid] = method
        axes = {"dataset": dataset, "arch": arch, "train_size": FULL if size is None else size,
                "label_noise": noise, "method": method, "seed": seed, **settings}
        runs.append(RunSpec(rid, config, axes))
    _check_device(defn)
    return runs, budget


def _stage_plan(cfg: TrainConfig, n: int) -> StagePlan:
    """The protocol's plan from the registered sizes (no data read; no labels: a plan for checks)."""
    info = check_dataset(cfg.dataset)
    resolution = cfg.resolution or info.resolution
    return StagePlan(n=n, labels=torch.zeros(0, dtype=torch.long), num_classes=info.num_classes,
                     pixels=resolution * resolution, data_seed=cfg.seed, rounds=cfg.rounds, epochs=cfg.epochs,
                     first_fraction=cfg.first_fraction)


def _check_protocol(cfg: TrainConfig) -> None:
    """What the protocol asks of the run (resolve.check_protocol, the protocol's own check), from the
    dataset's registered sizes: no data is read, so `--dry-run` catches it too."""
    protocol = PROTOCOLS[cfg.protocol]()
    if not protocol.staged:
        return
    check_protocol(cfg, protocol, make_method(cfg.method))
    info = check_dataset(cfg.dataset)
    n = cfg.train_size or pool_size(info.train_size, info.num_classes, cfg.val_fraction, bool(info.val_size))
    protocol.check(_stage_plan(cfg, n))


def _check_folder_names(defn: StudyDefinition) -> None:
    """Two values of one axis must not share a folder name (slug replaces odd characters)."""
    for key, values in defn.extra_axes.items():
        names: dict[str, Any] = {}
        for v in values:
            name = slug(value_text(v))
            if name in names:
                raise UserError(f"{key}: {names[name]!r} and {v!r} map to the same folder name {key}={name}; "
                                "give values that differ in letters or digits")
            names[name] = v


def _check_tunable(cfg: TrainConfig, tune: list[str]) -> None:
    """Tuning picks by validation accuracy: a run without a validation split cannot be tuned."""
    if cfg.val_fraction == 0 and not check_dataset(cfg.dataset).val_size:
        raise UserError(f"tune = {tune}: runs on {cfg.dataset} with val_fraction=0 have no validation split, "
                        "and tuning never looks at test accuracy; set val_fraction > 0 (e.g. 0.1)")


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


def _check_acts(cfg: TrainConfig) -> None:
    """The runs' schedule from the registered sizes (no data read): train_size, else the pool."""
    info = check_dataset(cfg.dataset)
    n = cfg.train_size or pool_size(info.train_size, info.num_classes, cfg.val_fraction, bool(info.val_size))
    if not n or cfg.rounds is None:
        return  # a dataset of unregistered size: each run checks itself when it starts
    name, options = parse_spec(cfg.method)
    method = METHODS[name](**options)
    epochs = method.epochs(cfg.rounds, cfg.epochs)
    protocol = PROTOCOLS[cfg.protocol]()
    if protocol.staged:  # every stage as long as the largest: no refusal of a method that acts somewhere
        plan = _stage_plan(cfg, n)
        epochs = [protocol.epochs(s, plan) for s in range(cfg.rounds + 1)]
    Schedule.planned(n, cfg.batch_size, epochs).check_acts(
        method, where=f"runs of {cfg.method} on {cfg.dataset} ({n} training examples, {cfg.rounds} rounds of "
                      f"{cfg.epochs} epochs, batch {cfg.batch_size})")


def _check_device(defn: StudyDefinition) -> None:
    from ..speed.runtime import resolve_device
    resolve_device(defn.settings.get("device", "auto"))
