"""The report's "why" section: the source paper's explanations of LW's gain, measured per run by the
analyses and compared across methods with the statistics of the summary tables (stats.py): per
(combination, method) the mean ± standard error (n seeds) of every number, and the seed-paired
difference of every method vs baseline and vs long with a 95% t-interval (* = excludes 0).

The topics and their numbers are the analyses' own declarations (`Analysis.topic`, `Analysis.metrics`,
collected in catalog.py), in registry order: training margins, weight norms and the margin bound
(with the per-round diagnostics), flatness, memorization under label noise, layer probes, and any
analysis registered later. Each topic is a Part with its tables and a figure (why_plots.py).

Only finished runs enter; pairs need both methods on the same seed. A number missing from a run
(the analysis was not run) leaves its cell empty; a topic with no number at all is left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..analyses.metrics import Metric
from .catalog import Catalog, build_catalog, fmt
from .collect import Collected, Combo, RunRecord, combo_order
from .part import Part
from .stats import MeanSE, PairedDiff, mean_se, paired_vs
from .tables import REFERENCES, labels
from .values import DIAGNOSTICS, RunData, load, round_table, value_table


@dataclass
class MetricRow:
    combo: Combo
    metric: Metric
    cells: dict[str, MeanSE]  # method -> over seeds
    diffs: dict[str, dict[str, PairedDiff]]  # reference -> method -> (method - reference) over common seeds
    sources: set[str] = field(default_factory=set)


@dataclass
class RoundRow:
    combo: Combo
    metric: Metric
    round: int
    cells: dict[str, MeanSE]


@dataclass
class TopicRows:
    key: str  # the analysis that declares the topic: margins | norms | flatness | memorization | probes | ...
    title: str
    intro: str
    rows: list[MetricRow]
    round_rows: list[RoundRow] = field(default_factory=list)
    declared: list[Metric] = field(default_factory=list)  # the topic's metrics as declared (families unexpanded)
    round_metrics: list[Metric] = field(default_factory=list)  # the per-round diagnostics shown


@dataclass
class Why:
    methods: list[str]
    topics: list[TopicRows]
    data: dict[str, RunData]


def _finished(col: Collected) -> list[RunRecord]:
    return [r for r in col.runs if r.status == "finished"]


def metric_rows(col: Collected, data: dict[str, RunData], metrics: list[Metric],
                combos: list[Combo] | None = None) -> list[MetricRow]:
    runs = _finished(col)
    combos = combos if combos is not None else sorted({r.combo for r in col.runs}, key=combo_order)
    tables = [value_table(runs, m, data) for m in metrics]
    out = []
    for combo in combos:
        for metric, values in zip(metrics, tables, strict=True):
            by_method = values.by_combo.get(combo, {})
            if not by_method:
                continue
            cells = {m: mean_se([v for _, v in sorted(by_method[m].items())]) for m in col.methods if m in by_method}
            diffs = {}
            for ref in REFERENCES:
                if ref not in by_method:
                    continue
                diffs[ref] = paired_vs(by_method, ref, col.methods)
            out.append(MetricRow(combo, metric, cells, diffs, values.combo_sources(combo)))
    return out


def round_rows(col: Collected, data: dict[str, RunData], metrics: list[Metric]) -> list[RoundRow]:
    runs = _finished(col)
    tables = [round_table(runs, m, data) for m in metrics]
    out = []
    for combo in sorted({c for t in tables for c, _ in t}, key=combo_order):
        for metric, table in zip(metrics, tables, strict=True):
            for rnd in sorted({k for c, k in table if c == combo}):
                by = table[(combo, rnd)]
                out.append(RoundRow(combo, metric, rnd, {m: mean_se([v for _, v in sorted(by[m].items())])
                                                         for m in col.methods if m in by}))
    return out


def compute(col: Collected, data: dict[str, RunData] | None = None, catalog: Catalog | None = None) -> Why:
    """Every topic of the catalog with the rows the runs have; a topic with none is left out."""
    data = load(col) if data is None else data
    cat = catalog or build_catalog()
    combos = sorted({r.combo for r in col.runs}, key=combo_order)
    numbers = [d.numbers for d in data.values()]
    topics = []
    for key, topic in cat.topics.items():
        declared = [m for m in cat.topic_metrics(key) if m.source != "diagnostics"]
        per_round = [m for m in cat.topic_metrics(key) if m.source == "diagnostics"]
        scope = combos if topic.combos == "all" else [c for c in combos if c.label_noise > 0]
        t = TopicRows(key, topic.title, topic.intro, metric_rows(col, data, cat.expand(declared, numbers), scope),
                      round_rows(col, data, per_round), declared, per_round)
        if t.rows or t.round_rows:
            topics.append(t)
    return Why(col.methods, topics, data)


# ---- rendering -------------------------------------------------------------------------------
def fmt_stat(metric: Metric, s: MeanSE | None) -> str:
    if s is None or s.n == 0:
        return ""
    if s.n == 1:
        return f"{fmt(metric, s.mean)} (1)"
    return f"{fmt(metric, s.mean)} ± {fmt(metric, s.se)} ({s.n})"


def fmt_paired(metric: Metric, d: PairedDiff | None) -> str:
    if d is None:
        return ""
    if d.n < 2:
        return f"{fmt(metric, d.mean, True)} (1 seed)"
    return (f"{fmt(metric, d.mean, True)} [{fmt(metric, d.lo, True)}, {fmt(metric, d.hi, True)}] ({d.n})"
            + (" *" if d.excludes_zero else ""))


def _label(row: MetricRow) -> str:
    return row.metric.label + (" †" if row.sources == {DIAGNOSTICS} else " ‡" if DIAGNOSTICS in row.sources else "")


def topic_tables(topic: TopicRows, methods: list[str]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    out = []
    # one column naming what differs between the combinations (the summary tables say what they share)
    combos = list(dict.fromkeys(r.combo for r in topic.rows + topic.round_rows))
    names = dict(zip(combos, labels(combos)[1], strict=True))
    varying = any(names.values())
    head = (["combination"] if varying else []) + ["measure"]

    def prefix(combo) -> list[str]:
        return [names[combo]] if varying else []

    if topic.rows:
        used = [m for m in methods if any(m in r.cells for r in topic.rows)]
        note = ("mean ± standard error (n seeds) over finished runs"
                + ("; † from the final-round diagnostics (no analysis.json), ‡ partly so"
                   if any(DIAGNOSTICS in r.sources for r in topic.rows) else "") + ".")
        out.append((f"{topic.title.split(': ', 1)[-1].capitalize()}: mean ± SE", note, head + used,
                    [prefix(r.combo) + [_label(r)] + [fmt_stat(r.metric, r.cells.get(m)) for m in used]
                     for r in topic.rows]))
        for ref in REFERENCES:
            rows = [r for r in topic.rows if ref in r.diffs]
            others = [m for m in used if m != ref and any(m in r.diffs[ref] for r in rows)]
            if not rows or not others:
                continue
            out.append((f"{topic.title.split(': ', 1)[-1].capitalize()}: paired difference vs {ref}",
                        f"mean of (method − {ref}) over the seeds where both finished, 95% t-interval, (n); "
                        "* = the interval excludes 0; accuracies in points.",
                        head + others,
                        [prefix(r.combo) + [_label(r)] + [fmt_paired(r.metric, r.diffs[ref].get(m)) for m in others]
                         for r in rows]))
    if topic.round_rows:
        used = [m for m in methods if any(m in r.cells for r in topic.round_rows)]
        out.append(("Per round (diagnostics at the end of each round): mean ± SE",
                    "round 0 is before any reset; baseline and long have only round 0.",
                    head + ["round"] + used,
                    [prefix(r.combo) + [r.metric.label, str(r.round)] + [fmt_stat(r.metric, r.cells.get(m))
                                                                              for m in used]
                     for r in topic.round_rows]))
    return out


def why_parts(why: Why, plots: dict[str, list[tuple[Path, str]]]) -> list[Part]:
    """One Part per topic; `plots`: topic key -> its figures."""
    return [Part(t.title, t.intro, topic_tables(t, why.methods), plots.get(t.key, [])) for t in why.topics]
