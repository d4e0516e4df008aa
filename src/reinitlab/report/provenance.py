"""Where a study's numbers come from: the runs' provenance.json files, grouped.

Runs belong to one group when every result-changing field of their provenance is equal, except the
fields the study varies on purpose: the axes (dataset, arch, method, size, noise, seed and any
setting that takes several values among the study's runs) and what follows from them (method
options, data seed, resolution, rounds). One group: the whole study was made by one code on one
kind of machine, and the report says which. Several: a warning names the fields that differ,
lists the groups (with their commits, hosts and CPUs) and the runs outside the largest group, whose
differences from the others are then not only the method's. Runs without provenance.json (made
before reinitlab recorded it) are counted in a note and left out of the groups.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..train import provenance
from .collect import Collected
from .part import Part, ReportContext, report_part

# config fields that differ between a study's runs by design
AXIS_FIELDS = frozenset({"dataset", "arch", "method", "method_options", "train_size", "label_noise", "seed",
                         "data_seed", "resolution", "rounds"})
FIELD_LABELS = {"source_hash": "source", "cpu_capability": "CPU level", "gpu": "GPU", "torch": "torch"}


@dataclass
class Group:
    fields: dict[str, Any]  # result-changing field -> value, axes left out
    runs: list[str] = field(default_factory=list)
    commits: set = field(default_factory=set)
    hosts: set = field(default_factory=set)
    cpus: set = field(default_factory=set)
    versions: set = field(default_factory=set)
    threads: set = field(default_factory=set)


@dataclass
class StudyProvenance:
    groups: list[Group]  # the largest first
    legacy: list[str]  # run ids without provenance.json
    varying: list[str]  # fields whose value differs between groups
    precision: dict | None = None  # study.json's one choice for all runs: precision, why

    @property
    def mixed(self) -> bool:
        return len(self.groups) > 1

    def group_of(self, run_id: str) -> int | None:
        return next((i for i, g in enumerate(self.groups) if run_id in g.runs), None)

    def differing(self) -> list[str]:
        """Runs outside the largest group."""
        return [r for g in self.groups[1:] for r in g.runs]

    def warning(self) -> str:
        if not self.mixed:
            return ""
        return (f"Mixed provenance: the runs were made in {len(self.groups)} different ways "
                f"({', '.join(self.varying)} differ); {len(self.differing())} run(s) outside the largest group "
                "are listed under Provenance. Differences between them are not only the methods'.")


def study_axes(col: Collected) -> set[str]:
    """AXIS_FIELDS plus every setting that takes more than one value among the study's listed runs,
    plus the axes the runs were collected with (a study folder reported with --out is read as loose
    run folders: its variants' settings are axes there, and must not read as mixed provenance)."""
    from ..study.store import Store
    values: dict[str, set] = {}
    for spec in Store(col.root).read_runs():
        for k, v in (spec.get("config") or {}).items():
            values.setdefault(k, set()).add(repr(v))
    collected = {k for r in col.runs for k in r.axes}
    return set(AXIS_FIELDS) | collected | {k for k, vs in values.items() if len(vs) > 1}


def summarize(col: Collected) -> StudyProvenance:
    axes = study_axes(col)
    groups: dict[str, Group] = {}
    legacy = []
    for r in col.runs:
        doc = provenance.read(col.run_dir(r))
        if doc is None:
            if r.status not in ("pending",):
                legacy.append(r.id)
            continue
        res = doc["result"]
        fields = {k: v for k, v in (res.get("config") or {}).items() if k not in axes and k not in provenance.NOT_COMPARED}
        fields.update({k: res.get(k) for k in provenance.MACHINE_FIELDS if k in res})
        key = repr(sorted(fields.items()))
        g = groups.setdefault(key, Group(fields))
        g.runs.append(r.id)
        info = doc.get("info") or {}
        g.commits.add(info.get("commit") or f"installed {info.get('reinitlab')}")
        g.hosts.add(info.get("host"))
        g.cpus.add(info.get("cpu_model"))
        g.versions.add(info.get("reinitlab"))
        g.threads.add(info.get("threads"))
    ordered = sorted(groups.values(), key=lambda g: (-len(g.runs), g.runs[0]))
    varying = []
    for g in ordered:
        for k in g.fields:
            if k not in varying and any(o.fields.get(k) != g.fields.get(k) for o in ordered):
                varying.append(k)
    chosen = (col.study or {}).get("precision")
    return StudyProvenance(ordered, legacy, varying, chosen if isinstance(chosen, dict) else None)


def _value(k: str, v: Any) -> str:
    return provenance.show(v) if v is not None else "-"


def _machine_text(g: Group) -> str:
    f = g.fields
    cfg_device = f.get("device", "?")
    where = f"{cfg_device}" + (f" ({f['gpu']})" if f.get("gpu") else "")
    cpus = ", ".join(sorted(c for c in g.cpus if c)) or "?"
    return (f"torch {f.get('torch')}, {where}, CPU {cpus} ({f.get('cpu_capability')}), "
            f"precision {f.get('precision', '?')}")


def _commits(g: Group) -> str:
    return ", ".join(sorted(c[:12] + ("+dirty" if c.endswith("+dirty") else "") if not c.startswith("installed")
                            else c for c in g.commits))


def provenance_part(p: StudyProvenance) -> Part | None:
    if not p.groups and not p.legacy:
        return None
    lines = []
    if p.precision:
        lines.append(f"precision {p.precision.get('precision')} for every run, chosen once by the study: "
                     f"{p.precision.get('why')}")
    threads = sorted({t for g in p.groups for t in g.threads if t is not None})
    if len(threads) > 1:
        lines.append(f"the runs used different torch thread counts ({', '.join(map(str, threads))}): a speed setting, "
                     "but sums are ordered differently, so such runs agree in distribution, not bit for bit")
    if p.legacy:
        lines.append(f"{len(p.legacy)} run(s) have no provenance.json (made before reinitlab recorded it): read as "
                     "before, not part of the comparison below")
    if not p.mixed:
        if not p.groups:
            return Part("Provenance", "", lines=lines)
        g = p.groups[0]
        intro = (f"All {len(g.runs)} run(s) with a provenance record were made by one code version on one kind of "
                 f"machine: reinitlab {', '.join(sorted(v for v in g.versions if v))} (source "
                 f"{g.fields.get('source_hash')}, commit {_commits(g)}), {_machine_text(g)}; "
                 f"host(s) {', '.join(sorted(h for h in g.hosts if h))}"
                 + (f", {threads[0]} torch thread(s) per run" if len(threads) == 1 else "") + ". Rerunning a run bit-identically needs the "
                 "same torch, precision, CPU level and thread count (docs/reproducibility.md).")
        return Part("Provenance", intro, lines=lines)
    header = ["group", "runs"] + [FIELD_LABELS.get(k, k) for k in p.varying] + ["commit(s)", "host(s)", "CPU"]
    rows = []
    for i, g in enumerate(p.groups, 1):
        rows.append([str(i), str(len(g.runs))] + [_value(k, g.fields.get(k)) for k in p.varying]
                    + [_commits(g), ", ".join(sorted(h for h in g.hosts if h)),
                       ", ".join(sorted(c for c in g.cpus if c))])
    base = p.groups[0]
    diff_rows = []
    for i, g in enumerate(p.groups[1:], 2):
        what = "; ".join(f"{FIELD_LABELS.get(k, k)} {_value(k, g.fields.get(k))} (group 1: {_value(k, base.fields.get(k))})"
                         for k in p.varying if g.fields.get(k) != base.fields.get(k))
        diff_rows += [[rid, str(i), what] for rid in g.runs]
    intro = (f"**Warning**: {p.warning()} Compare runs within one group, or train the differing runs again with "
             "one code version (delete their folders and run the study again).")
    return Part("Provenance: mixed", intro, lines=lines,
                tables=[("Groups of runs", "Runs in one group share every result-changing field except the "
                         "study's axes; the columns are the fields that differ between groups.", header, rows),
                        ("Runs outside the largest group", "", ["run", "group", "differs from group 1 in"],
                         diff_rows)])


@report_part("provenance", 15)
def _provenance_part(ctx: ReportContext) -> Part | None:
    """After the tables and curves, before the why parts (the verdict stays last)."""
    prov = ctx.found.setdefault("provenance", summarize(ctx.col))
    return provenance_part(prov)
