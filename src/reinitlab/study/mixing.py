"""One study folder, one experiment: each existing run's provenance is compared with what this
study and this code would produce for it on the machines that train it, before it counts as done.

`expected(spec, target)` is what `train` would write to the run's provenance.json now: the config
comes from `train.prepare` itself (so a changed default is seen exactly as the code resolves it),
the machine fields from `target` (this machine for the local backend; a probe task on the cluster
for Ray, whose nodes may differ from the machine the study command runs on).

A difference in a result-changing field refuses the start in one line, before anything is written,
unless `--allow-mixed`: then finished runs are kept as they are (the report flags them) and
partial ones are trained again from the start, so no single run mixes two codes or machines.
Run folders written before provenance.json existed are read as before, with a note.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..train import provenance
from ..util.errors import UserError
from .bundles import bundle_for, release
from .expand import RunSpec
from .store import Store

# what identifies a run's config up to the seeds (they change no resolved field besides themselves)
_SEEDS = ("seed", "data_seed")


@dataclass
class Target:
    """Where the runs of this start train: the device type their config resolves to and the
    result-changing machine fields (torch, cpu_capability, gpu, source_hash), plus who said so."""

    device: str
    machine: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # commit, host: shown, never compared

    def expect(self) -> dict[str, Any]:
        """What each worker checks itself against before it trains (worker.run_task)."""
        return {"device": self.device, **self.machine}


def local_target(device_setting: str) -> Target:
    from ..speed.runtime import resolve_device
    dev = resolve_device(device_setting)
    return Target(dev.type, provenance.machine(dev), {**provenance.code_version(), "host": _host()})


def _host() -> str:
    import socket
    return socket.gethostname()


class Expected:
    """Expected result fingerprints of runs, `train.prepare` called once per config up to the seeds."""

    def __init__(self, target: Target):
        self.target = target
        self._configs: dict[str, dict] = {}
        self.loaded = False

    def of(self, spec: RunSpec) -> dict[str, Any]:
        from ..train.resolve import prepare
        from ..util.errors import ReinitlabWarning
        cfg = spec.train_config()
        key = json.dumps({k: v for k, v in spec.config.items() if k not in _SEEDS}, sort_keys=True, default=str)
        if key not in self._configs:
            self.loaded = True
            # resolved as on a CPU: a CUDA-less study machine can still check runs of a GPU cluster;
            # the device itself comes from the target, and nothing else that resolves per device counts
            with warnings.catch_warnings():  # the study warns about a run's budget itself, once
                warnings.simplefilter("ignore", ReinitlabWarning)
                p = prepare(cfg.replace(device="cpu"), bundle_for(cfg))
            self._configs[key] = p.cfg.to_dict()
        config = dict(self._configs[key])
        config["seed"] = cfg.seed
        config["data_seed"] = cfg.seed if cfg.data_seed is None else cfg.data_seed
        config["device"] = self.target.device
        return {"config": provenance.result_config(config), **self.target.machine}


@dataclass
class Mismatch:
    run_id: str
    status: str
    diffs: list[provenance.Difference]
    info: dict[str, Any]  # the run's recorded informative fields (its commit, host)


@dataclass
class Mixing:
    checked: int = 0
    legacy: list[str] = field(default_factory=list)  # run folders without provenance.json
    mismatched: list[Mismatch] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # why some runs could not be checked (dry run)
    target_info: dict[str, Any] = field(default_factory=dict)

    def refusal(self, root) -> str:
        m = self.mismatched[0]
        d = m.diffs[0]
        was, now = provenance.describe(d, m.info, self.target_info)
        also = [x.field for x in m.diffs[1:]]
        more = len(self.mismatched) - 1
        return (f"{root}/runs/{m.run_id} was trained with {was}, {provenance.verb(d.field)} {now}"
                + (f" (also differs: {', '.join(also)})" if also else "")
                + (f"; {more} more run(s) differ" if more else "")
                + "; use another --out, or --allow-mixed")

    def plan_lines(self) -> list[str]:
        out = []
        if self.mismatched:
            m = self.mismatched[0]
            was, now = provenance.describe(m.diffs[0], m.info, self.target_info)
            redo = sum(x.status != "finished" and x.status != "diverged" for x in self.mismatched)
            out.append(f"  mixed (--allow-mixed): {len(self.mismatched)} run(s) were made differently from what "
                       f"this code and machine make now (first: {m.run_id}: {was}, now {now}); finished ones are "
                       "kept and flagged in the report"
                       + (f", {redo} unfinished one(s) are trained again from the start" if redo else ""))
        if self.legacy:
            out.append(f"  note: {len(self.legacy)} run folder(s) have no provenance.json (written before reinitlab "
                       "recorded it): read as before, not checked against this code")
        for why in self.unchecked[:1]:
            out.append(f"  note: provenance not checked for some runs: {why}")
        return out


def check(store: Store, runs: list[RunSpec], states: dict, target: Target, allow_mixed: bool) -> Mixing:
    """Compare every run of `runs` that has a folder with what would be made now. Raises UserError
    (one line: the first run that differs, its first field, how many others differ) unless
    `allow_mixed`."""
    mixing = Mixing(target_info=target.info)
    exp = Expected(target)
    # one dataset in memory at a time (the workers' loader keeps one)
    for spec in sorted(runs, key=lambda r: str(r.config.get("dataset"))):
        status = states[spec.id].status
        folder = store.run_dir(spec.id)
        if status == "pending" and not (folder / "config.json").exists():
            continue
        recorded = provenance.read(folder)
        if recorded is None:
            if (folder / "config.json").exists():
                mixing.legacy.append(spec.id)
            continue
        try:
            expected = exp.of(spec)
        except UserError as e:  # data not found (a dry run), or a run that now fails to resolve: it
            mixing.unchecked.append(f"{spec.id}: {str(e).splitlines()[0]}")  # fails the same way in its worker
            continue
        mixing.checked += 1
        diffs = provenance.differences(recorded["result"], expected)
        if diffs:
            mixing.mismatched.append(Mismatch(spec.id, status, diffs, recorded.get("info") or {}))
    if exp.loaded:  # the workers load their own; the study process need not keep a dataset
        release()
    # in the study's own order, so the first named is the same run at every start
    order = {r.id: i for i, r in enumerate(runs)}
    mixing.mismatched.sort(key=lambda m: order[m.run_id])
    if mixing.mismatched and not allow_mixed:
        raise UserError(mixing.refusal(store.root))
    return mixing


def node_problem(mine: dict[str, Any], expect: dict[str, Any] | None, where: str) -> str:
    """Why a worker may not train the study's runs like the others (a node of another kind), or ''."""
    for k, v in (expect or {}).items():
        if mine.get(k) != v:
            return (f"{where} has {k}={provenance.show(mine.get(k))}, the study's runs are made with "
                    f"{k}={provenance.show(v)}; use nodes of one kind, or --allow-mixed")
    return ""
