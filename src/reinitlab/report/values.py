"""The per-run numbers behind every table, the "why" section and the claims verdict, read from the
run folders only, and the one value table they are all built from: combo -> method -> seed -> value.

Where a metric's value comes from (its `source`, see catalog.py):
  result        result.json (the final test accuracy)
  analysis      analysis.json (written by `reinitlab analyze` or a study's `analyses`): the metric's
                key, else another analysis' key holding the same number (`also`), else the final
                round's diagnostics if they measure the same thing (`fallback`: margin quantiles,
                Frobenius norms, log10 spectral product and complexity; the diagnostics use 500
                training examples and a looser power-iteration tolerance, see measure/round_log.py),
                so a study without `analyses` still gets its margins and norms compared
  diagnostics   result.json per_round[i].diagnostics: the final round's value, or every round's
Each value remembers which source it came from. Only finished runs have values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..analyses.metrics import Metric
from ..util.files import read_json_dict
from .collect import Collected, Combo, RunRecord

ANALYSIS = "analysis.json"
DIAGNOSTICS = "final-round diagnostics"
RESULT = "result.json"


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
        doc = read_json_dict(col.run_dir(r) / ANALYSIS)
        if doc:
            d.numbers = dict(doc.get("numbers") or {})
            d.arrays = {n: (e.get("arrays") or {}) for n, e in (doc.get("analyses") or {}).items() if isinstance(e, dict)}
        out[r.id] = d
    return out


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def value_of(metric: Metric, rec: RunRecord, data: dict[str, RunData]) -> tuple[float | None, str]:
    """(value, source) of one run; (None, "") where no source has it."""
    if metric.source == "result":
        if rec.status != "finished":
            return None, ""
        v = rec.test_acc if metric.key == "test_acc" else _finite((rec.result or {}).get(metric.key))
        return (v, RESULT) if v is not None else (None, "")
    d = data.get(rec.id)
    if d is None:
        return None, ""
    if metric.source == "diagnostics":
        v = _finite(d.final_diagnostics.get(metric.key.partition(".")[2]))
        return (v, DIAGNOSTICS) if v is not None else (None, "")
    if metric.compute is not None:
        return _finite(metric.compute(d.numbers)), ANALYSIS
    for key in (metric.key, *metric.also):
        v = _finite(d.numbers.get(key))
        if v is not None:
            return v, ANALYSIS
    if metric.fallback:
        v = _finite(d.final_diagnostics.get(metric.fallback))
        if v is not None:
            return v, DIAGNOSTICS
    return None, ""


@dataclass
class Values:
    """One metric over the finished runs: combo -> method -> seed -> value, and where each came from."""

    by_combo: dict[Combo, dict[str, dict[int, float]]] = field(default_factory=dict)
    sources: dict[tuple[Combo, str, int], str] = field(default_factory=dict)

    def combo_sources(self, combo: Combo) -> set[str]:
        return {s for (c, _, _), s in self.sources.items() if c == combo}


def value_table(runs: list[RunRecord], metric: Metric, data: dict[str, RunData]) -> Values:
    out = Values()
    for r in runs:
        if r.status != "finished":
            continue
        v, src = value_of(metric, r, data)
        if v is not None:
            out.by_combo.setdefault(r.combo, {}).setdefault(r.method, {})[r.seed] = v
            out.sources[(r.combo, r.method, r.seed)] = src
    return out


def round_table(runs: list[RunRecord], metric: Metric, data: dict[str, RunData]
                ) -> dict[tuple[Combo, int], dict[str, dict[int, float]]]:
    """A diagnostics metric after every round: (combo, round) -> method -> seed -> value."""
    name = metric.key.partition(".")[2]
    out: dict = {}
    for r in runs:
        if r.status != "finished":
            continue
        d = data.get(r.id)
        for row in (d.rounds if d else []):
            v = (row.get("diagnostics") or {}).get(name)
            if isinstance(v, (int, float)):
                out.setdefault((r.combo, row.get("round", 0)), {}).setdefault(r.method, {})[r.seed] = v
    return out
