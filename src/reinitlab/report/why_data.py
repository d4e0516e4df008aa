"""The per-run numbers behind the report's "why" section and the claims verdict, read from the run
folders only: analysis.json (written by `reinitlab analyze` or a study's `analyses`) and the
diagnostics that training logs at the end of every round (result.json `per_round[i].diagnostics`).

A `Metric` names one number of a run. Where a run has no analysis.json entry for it, the final
round's diagnostics stand in if they measure the same thing (margin quantiles, Frobenius norms,
log10 spectral product and complexity; the diagnostics use 500 training examples and a looser
power-iteration tolerance, see analyses/round_log.py), so a study without `analyses` still gets
its margins and norms compared. Each value remembers which source it came from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..rundir import read_json_dict
from .collect import Collected, RunRecord

ANALYSIS = "analysis.json"
DIAGNOSTICS = "final-round diagnostics"


@dataclass
class RunData:
    numbers: dict[str, Any] = field(default_factory=dict)  # analysis.json "numbers": "<analysis>.<key>"
    arrays: dict[str, dict] = field(default_factory=dict)  # analysis name -> its arrays
    rounds: list[dict] = field(default_factory=list)  # result.json per_round rows that carry diagnostics

    @property
    def final_diagnostics(self) -> dict[str, Any]:
        return (self.rounds[-1].get("diagnostics") or {}) if self.rounds else {}


def load(col: Collected) -> dict[str, RunData]:
    """RunData of every finished run, by run id (analysis.json may be absent: then only rounds)."""
    out = {}
    for r in col.runs:
        if r.status != "finished":
            continue
        d = RunData(rounds=[row for row in (r.result or {}).get("per_round", []) if row.get("diagnostics")])
        doc = read_json_dict(col.root / "runs" / r.id / ANALYSIS)
        if doc:
            d.numbers = dict(doc.get("numbers") or {})
            d.arrays = {n: (e.get("arrays") or {}) for n, e in (doc.get("analyses") or {}).items() if isinstance(e, dict)}
        out[r.id] = d
    return out


@dataclass(frozen=True)
class Metric:
    key: str  # analysis.json flat key, e.g. "margins.q50"
    label: str  # what a reader sees
    also: tuple[str, ...] = ()  # other analysis.json keys with the same number (bound.log10_R = margins.log10_...)
    percent: bool = False  # an accuracy/fraction: shown x100, differences in points
    fallback: str | None = None  # the final-round diagnostics key measuring the same thing
    compute: Callable[[RunData], float | None] | None = None  # a derived number (overrides key lookup)

    def value(self, d: RunData | None) -> tuple[float | None, str]:
        """(value, source) of one run; (None, "") where neither source has it."""
        if d is None:
            return None, ""
        if self.compute is not None:
            return _finite(self.compute(d)), ANALYSIS
        for key in (self.key, *self.also):
            v = _finite(d.numbers.get(key))
            if v is not None:
                return v, ANALYSIS
        if self.fallback:
            v = _finite(d.final_diagnostics.get(self.fallback))
            if v is not None:
                return v, DIAGNOSTICS
        return None, ""

    def fmt(self, x: float, signed: bool = False) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "n/a"
        if self.percent:
            return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"
        return f"{x:+.3g}" if signed else f"{x:.4g}"


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def accuracy_metric() -> Metric:
    """The run's final test accuracy (result.json), as a Metric for the claims' pooled tests."""
    return Metric("test_acc", "test accuracy (%)", percent=True)


def run_value(metric: Metric, rec: RunRecord, data: dict[str, RunData]) -> tuple[float | None, str]:
    if metric.key == "test_acc" and metric.compute is None:
        return (rec.test_acc, "result.json") if rec.test_acc is not None else (None, "")
    return metric.value(data.get(rec.id))


def run_probe_groups(d: RunData) -> list[str]:
    """The probes analysis' groups of one run, bottom to top: its arrays list them; else the order of
    its numbers (written in group order)."""
    gs = (d.arrays.get("probes") or {}).get("groups")
    if gs:
        return list(gs)
    prefix = "probes.linear_acc."
    return [k[len(prefix):] for k in d.numbers if k.startswith(prefix)]


def probe_groups(data: dict[str, RunData]) -> list[str]:
    """Group names of the first run that has probes (runs of one architecture share them)."""
    for d in data.values():
        gs = run_probe_groups(d)
        if gs:
            return gs
    return []


def lower_groups(groups: list[str]) -> list[str]:
    """The lower half of the groups below the head (rounded up): cnn stem, block1 of stem..block3."""
    body = groups[:-1]
    return body[: (len(body) + 1) // 2]


def lower_probe_metric(groups: list[str]) -> Metric:
    """Mean linear-probe held-out accuracy over the lower groups of a run (its own group list)."""
    def compute(d: RunData) -> float | None:
        vals = [_finite(d.numbers.get(f"probes.linear_acc.{g}")) for g in lower_groups(run_probe_groups(d))]
        return sum(vals) / len(vals) if vals and all(v is not None for v in vals) else None
    return Metric("probes.linear_acc.lower", f"linear-probe accuracy, mean over the lower groups "
                  f"({', '.join(lower_groups(groups)) or 'none'}) (%)", percent=True, compute=compute)


def sigmas(data: dict[str, RunData]) -> list[str]:
    """The flatness sigmas found (as written in the keys), sorted numerically."""
    found = {k[len("flatness.increase_sigma_"):] for d in data.values() for k in d.numbers
             if k.startswith("flatness.increase_sigma_")}
    return sorted(found, key=float)
