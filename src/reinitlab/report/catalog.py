"""The report's one metric catalog: every number the report can show or test, by one key.

Built from the analyses' own declarations (`Analysis.metrics` and `Analysis.topic`, see
analyses/metrics.py; keys qualified as "<analysis>.<key>") and the report's built-in run metrics:
the final test accuracy (result.json) and the per-round diagnostics that training logs at the end of
every round (result.json per_round[i].diagnostics). The "why" section shows each topic's metrics,
the claims name theirs by key, and both read values through values.py.

    cat = build_catalog()
    cat.metric("margins.q50")                       # a declared metric
    cat.metric("flatness.increase_sigma_0.05")      # one member of a declared family
    cat.expand(cat.topic_metrics("probes"), numbers)  # families -> the members the runs have
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..analyses import ANALYSES
from ..analyses.metrics import Metric, Topic

TEST_ACC = Metric("test_acc", "test accuracy (%)", "higher", percent=True, topic=None, source="result")
BUILTIN = (
    TEST_ACC,
    # shown per round in the norms topic; `diagnostics.<key>` reads per_round[i].diagnostics[<key>]
    Metric("diagnostics.frobenius_total", "Frobenius norm, all parameters", topic="norms", source="diagnostics"),
    Metric("diagnostics.log10_spectral_product", "log10 Π‖A‖_2 (effective)", topic="norms", source="diagnostics"),
    Metric("diagnostics.log10_spectral_complexity", "log10 spectral complexity R", "lower", topic="norms",
           source="diagnostics"),
)


@dataclass
class Catalog:
    metrics: list[Metric]  # qualified keys, families unexpanded, in order: built-ins, then analyses in registry order
    topics: dict[str, Topic]  # topic key (its analysis' name) -> declaration, in registry order

    def __post_init__(self):
        self._by_key = {m.key: m for m in self.metrics}

    def topic_metrics(self, topic: str) -> list[Metric]:
        return [m for m in self.metrics if m.topic == topic]

    def metric(self, key: str) -> Metric:
        """A declared metric, or the member of a declared family that `key` names."""
        if key in self._by_key:
            return self._by_key[key]
        for m in self.metrics:
            if m.placeholder:
                found = m.pattern().match(key)
                if found:
                    return m.member(found.group(m.placeholder))
        raise KeyError(f"no metric {key!r} in the report's catalog (declared by an analysis' `metrics`, or built in: "
                       f"{', '.join(b.key for b in BUILTIN)})")

    def expand(self, metrics: Iterable[Metric], numbers: Iterable[Mapping[str, Any]]) -> list[Metric]:
        """Each family replaced by its members found in the runs' flat numbers (analysis.json keys)."""
        numbers = list(numbers)
        out: list[Metric] = []
        for m in metrics:
            out += members(m, numbers) if m.placeholder else [m]
        return out


def member_values(family: Metric, numbers: list[Mapping[str, Any]]) -> list[str]:
    """The values of the family's placeholder over all runs: numeric order when every value is a
    number (sigmas), else the runs' own order merged (groups bottom to top, also over architectures
    with other groups); only those the family's `where` keeps."""
    pattern, name = family.pattern(), family.placeholder
    seqs = [[found.group(name) for found in map(pattern.match, nums) if found] for nums in numbers]
    values = _merge(seqs)
    if values and all(_is_number(v) for v in values):
        values.sort(key=float)
    return [v for v in values if family.where is None or family.where(v)]


def members(family: Metric, numbers: list[Mapping[str, Any]]) -> list[Metric]:
    return [family.member(v) for v in member_values(family, numbers)]


def _merge(seqs: list[list[str]]) -> list[str]:
    """One order containing every sequence's items: a new item goes right after its predecessor in
    the sequence that brings it (stem, block1..3, head + stem, block1..4, head -> stem, block1..4, head)."""
    out: list[str] = []
    for seq in seqs:
        prev = None
        for item in seq:
            if item not in out:
                out.insert(out.index(prev) + 1 if prev is not None else 0, item)
            prev = item
    return out


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def build_catalog() -> Catalog:
    metrics = list(BUILTIN)
    topics: dict[str, Topic] = {}
    for name, analysis in ANALYSES.items():
        if analysis.topic is not None:
            topics[name] = analysis.topic
        for m in analysis.metrics:
            topic = name if m.topic == "" else m.topic
            if topic == name and name not in topics:  # metrics without a declared topic: one of their own
                topics[name] = Topic(f"Why: {name}", analysis.summary)
            metrics.append(dataclasses.replace(m, key=f"{name}.{m.key}", topic=topic))
    keys = [m.key for m in metrics]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"metric catalog: {dup[0]!r} is declared twice")
    bad = [m for m in metrics if m.topic is not None and m.topic not in topics]
    if bad:
        raise ValueError(f"metric catalog: {bad[0].key!r} names topic {bad[0].topic!r}, which no analysis declares")
    return Catalog(metrics, topics)


def family_label(metric: Metric) -> str:
    """A family's label for all its members at once: "linear probe after each group (%)"."""
    name = metric.placeholder
    return metric.label.replace("{" + name + "}", f"each {name}") if name else metric.label


def fmt(metric: Metric, x: float | None, signed: bool = False) -> str:
    """A value (or, `signed`, a difference) as the tables show it: percent x100 with 2 decimals, else
    4 significant digits (differences 3)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if metric.percent:
        return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"
    return f"{x:+.3g}" if signed else f"{x:.4g}"
