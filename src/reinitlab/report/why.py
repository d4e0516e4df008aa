"""The report's "why" section: the source paper's explanations of LW's gain, measured per run by the
analyses and compared across methods with the statistics of the summary tables (stats.py): per
(combination, method) the mean ± standard error (n seeds) of every number, and the seed-paired
difference of every method vs baseline and vs long with a 95% t-interval (* = excludes 0).

Topics, each a Part with its tables and a figure (why_plots.py):
  training margins      quantiles of f_y(x) - max_{j≠y} f_j(x), and normalized by the spectral
                        complexity R and by the product of Frobenius norms
  norms and the bound   Frobenius total, log10 spectral product (effective and raw), log10 R;
                        their course over the rounds from the per-round diagnostics
  flatness              training-loss increase under relative weight noise per sigma, top Hessian
                        eigenvalue
  memorization          under label noise: memorized fraction, the noisy examples' true-label
                        accuracy, clean training accuracy
  layer probes          linear-probe and 5-NN held-out accuracy of each group's features

Only finished runs enter; pairs need both methods on the same seed. A number missing from a run
(the analysis was not run) leaves its cell empty; a topic with no number at all is left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .collect import Collected, RunRecord
from .part import Part
from .stats import MeanSE, PairedDiff, mean_se, paired_vs
from .tables import REFERENCES, _sort_key, combo_text
from .why_data import DIAGNOSTICS, Metric, RunData, load, probe_groups, sigmas

HEAD = ["dataset", "arch", "train size", "noise", "measure"]


@dataclass
class MetricRow:
    combo: tuple
    metric: Metric
    cells: dict[str, MeanSE]  # method -> over seeds
    diffs: dict[str, dict[str, PairedDiff]]  # reference -> method -> (method - reference) over common seeds
    sources: set[str] = field(default_factory=set)


@dataclass
class RoundRow:
    combo: tuple
    metric: Metric
    round: int
    cells: dict[str, MeanSE]


@dataclass
class Topic:
    key: str  # margins | norms | flatness | memorization | probes
    title: str
    intro: str
    rows: list[MetricRow]
    round_rows: list[RoundRow] = field(default_factory=list)


@dataclass
class Why:
    methods: list[str]
    topics: list[Topic]
    data: dict[str, RunData]


def _finished(col: Collected) -> list[RunRecord]:
    return [r for r in col.runs if r.status == "finished"]


def seed_values(runs: list[RunRecord], data: dict[str, RunData], metric: Metric
                ) -> tuple[dict[tuple, dict[str, dict[int, float]]], dict[tuple, set[str]]]:
    """combo -> method -> seed -> value, and the sources used per combo."""
    from .why_data import run_value
    vals: dict = {}
    sources: dict = {}
    for r in runs:
        v, src = run_value(metric, r, data)
        if v is not None:
            vals.setdefault(r.key, {}).setdefault(r.method, {})[r.seed] = v
            sources.setdefault(r.key, set()).add(src)
    return vals, sources


def metric_rows(col: Collected, data: dict[str, RunData], metrics: list[Metric],
                combos: list[tuple] | None = None) -> list[MetricRow]:
    runs = _finished(col)
    combos = combos if combos is not None else sorted({r.key for r in col.runs}, key=_sort_key)
    out = []
    per_metric = {m.key + m.label: seed_values(runs, data, m) for m in metrics}
    for combo in combos:
        for metric in metrics:
            vals, sources = per_metric[metric.key + metric.label]
            by_method = vals.get(combo, {})
            if not by_method:
                continue
            cells = {m: mean_se([v for _, v in sorted(by_method[m].items())]) for m in col.methods if m in by_method}
            diffs = {}
            for ref in REFERENCES:
                if ref not in by_method:
                    continue
                diffs[ref] = paired_vs(by_method, ref, col.methods)
            out.append(MetricRow(combo, metric, cells, diffs, sources.get(combo, set())))
    return out


# ---- the topics ------------------------------------------------------------------------------
MARGINS = [
    Metric("margins.q05", "margin q05", fallback="margin_q05"),
    Metric("margins.q25", "margin q25", fallback="margin_q25"),
    Metric("margins.q50", "margin median", fallback="margin_q50"),
    Metric("margins.spectral_normalized_q50", "margin median / R", also=("bound.normalized_q50",),
           fallback="normalized_margin_q50"),
    Metric("margins.frobenius_normalized_q50", "margin median / Π‖A‖_F"),
    Metric("margins.negative_fraction", "misfit fraction (margin ≤ 0) (%)", percent=True),
]
NORMS = [
    Metric("norms.frobenius_total", "Frobenius norm, all parameters", fallback="frobenius_total"),
    Metric("norms.log10_spectral_product", "log10 Π‖A‖_2 (effective)", also=("bound.log10_spectral_product",),
           fallback="log10_spectral_product"),
    Metric("norms.log10_spectral_product_raw", "log10 Π‖W‖_2 (weights alone)"),
    Metric("bound.log10_R", "log10 spectral complexity R", also=("margins.log10_spectral_complexity",),
           fallback="log10_spectral_complexity"),
]
PER_ROUND = [  # diagnostics keys shown per round
    Metric("frobenius_total", "Frobenius norm, all parameters"),
    Metric("log10_spectral_product", "log10 Π‖A‖_2 (effective)"),
    Metric("log10_spectral_complexity", "log10 spectral complexity R"),
]
MEMORIZATION = [
    Metric("memorization.memorized_fraction", "memorized fraction of noisy examples (%)", percent=True),
    Metric("memorization.noisy_true_label_acc", "noisy examples: true-label accuracy (%)", percent=True),
    Metric("memorization.clean_train_acc", "clean training accuracy (%)", percent=True),
]


def flatness_metrics(data: dict[str, RunData]) -> list[Metric]:
    return ([Metric(f"flatness.increase_sigma_{s}", f"loss increase, sigma {s}") for s in sigmas(data) if float(s) > 0]
            + [Metric("flatness.hessian_top_eigenvalue", "top Hessian eigenvalue")])


def probe_metrics(data: dict[str, RunData]) -> list[Metric]:
    gs = probe_groups(data)
    return ([Metric(f"probes.linear_acc.{g}", f"linear probe after {g} (%)", percent=True) for g in gs]
            + [Metric(f"probes.knn_acc.{g}", f"5-NN after {g} (%)", percent=True) for g in gs])


def round_rows(col: Collected, data: dict[str, RunData], metrics: list[Metric]) -> list[RoundRow]:
    runs = _finished(col)
    acc: dict = {}
    for r in runs:
        d = data.get(r.id)
        for row in (d.rounds if d else []):
            for metric in metrics:
                v = (row.get("diagnostics") or {}).get(metric.key)
                if isinstance(v, (int, float)):
                    acc.setdefault((r.key, metric.key, row.get("round", 0)), {}).setdefault(r.method, {})[r.seed] = v
    out = []
    for combo in sorted({k[0] for k in acc}, key=_sort_key):
        for metric in metrics:
            for rnd in sorted({k[2] for k in acc if k[0] == combo and k[1] == metric.key}):
                by = acc[(combo, metric.key, rnd)]
                out.append(RoundRow(combo, metric, rnd, {m: mean_se([v for _, v in sorted(by[m].items())])
                                                         for m in col.methods if m in by}))
    return out


def compute(col: Collected, data: dict[str, RunData] | None = None) -> Why:
    data = load(col) if data is None else data
    noisy = [c for c in sorted({r.key for r in col.runs}, key=_sort_key) if c[3] > 0]
    topics = [
        Topic("margins", "Why: training margins",
              "The paper's first explanation: LW raises training margins (f_y(x) − max_{j≠y} f_j(x) on the logits, "
              "labels as trained) without raising the weight norms, so the normalized margin (margin / spectral "
              "complexity R of Bartlett et al. 2017) improves.",
              metric_rows(col, data, MARGINS)),
        Topic("norms", "Why: weight norms and the margin bound",
              "Final weights: the Frobenius norm of every parameter, log10 of the product of the operators' "
              "spectral norms (effective: eval BatchNorm and LW's standardization folded in; raw: the weights "
              "alone) and log10 of the spectral complexity R. The per-round table follows them through training "
              "(diagnostics logged at the end of every round); baseline and long train in one round, so their only "
              "value is round 0, after E and (R+1)·E epochs.",
              metric_rows(col, data, NORMS), round_rows(col, data, PER_ROUND)),
        Topic("flatness", "Why: flatness",
              "Mean increase of the training loss (cross-entropy, BatchNorm in eval mode) when every weight gets "
              "Gaussian noise N(0, (sigma·|w|)²), and the top Hessian eigenvalue; smaller = flatter.",
              metric_rows(col, data, flatness_metrics(data))),
        Topic("memorization", "Why: memorization under label noise",
              "Only combinations with label noise: the memorized fraction is the accuracy on the noisy training "
              "examples w.r.t. their (wrong) noisy labels; their true-label accuracy is what the model predicts "
              "when it does not memorize.",
              metric_rows(col, data, MEMORIZATION, noisy)),
        Topic("probes", "Why: where general features live (layer probes)",
              "Held-out accuracy of a linear probe and of 5-NN on the pooled features after each group (fitted on "
              "training examples with their true labels); the paper's claim is that LW leans on its lower layers.",
              metric_rows(col, data, probe_metrics(data))),
    ]
    return Why(col.methods, [t for t in topics if t.rows or t.round_rows], data)


# ---- rendering -------------------------------------------------------------------------------
def fmt_stat(metric: Metric, s: MeanSE | None) -> str:
    if s is None or s.n == 0:
        return ""
    if s.n == 1:
        return f"{metric.fmt(s.mean)} (1)"
    return f"{metric.fmt(s.mean)} ± {metric.fmt(s.se)} ({s.n})"


def fmt_paired(metric: Metric, d: PairedDiff | None) -> str:
    if d is None:
        return ""
    if d.n < 2:
        return f"{metric.fmt(d.mean, True)} (1 seed)"
    return (f"{metric.fmt(d.mean, True)} [{metric.fmt(d.lo, True)}, {metric.fmt(d.hi, True)}] ({d.n})"
            + (" *" if d.excludes_zero else ""))


def _label(row: MetricRow) -> str:
    return row.metric.label + (" †" if row.sources == {DIAGNOSTICS} else " ‡" if DIAGNOSTICS in row.sources else "")


def topic_tables(topic: Topic, methods: list[str]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    out = []
    if topic.rows:
        used = [m for m in methods if any(m in r.cells for r in topic.rows)]
        note = ("mean ± standard error (n seeds) over finished runs"
                + ("; † from the final-round diagnostics (no analysis.json), ‡ partly so"
                   if any(DIAGNOSTICS in r.sources for r in topic.rows) else "") + ".")
        out.append((f"{topic.title.split(': ', 1)[-1].capitalize()}: mean ± SE", note, HEAD + used,
                    [combo_text(r.combo) + [_label(r)] + [fmt_stat(r.metric, r.cells.get(m)) for m in used]
                     for r in topic.rows]))
        for ref in REFERENCES:
            rows = [r for r in topic.rows if ref in r.diffs]
            others = [m for m in used if m != ref and any(m in r.diffs[ref] for r in rows)]
            if not rows or not others:
                continue
            out.append((f"{topic.title.split(': ', 1)[-1].capitalize()}: paired difference vs {ref}",
                        f"mean of (method − {ref}) over the seeds where both finished, 95% t-interval, (n); "
                        "* = the interval excludes 0; accuracies in points.",
                        HEAD + others,
                        [combo_text(r.combo) + [_label(r)] + [fmt_paired(r.metric, r.diffs[ref].get(m)) for m in others]
                         for r in rows]))
    if topic.round_rows:
        used = [m for m in methods if any(m in r.cells for r in topic.round_rows)]
        out.append(("Per round (diagnostics at the end of each round): mean ± SE",
                    "round 0 is before any reset; baseline and long have only round 0.",
                    HEAD + ["round"] + used,
                    [combo_text(r.combo) + [r.metric.label, str(r.round)] + [fmt_stat(r.metric, r.cells.get(m))
                                                                              for m in used]
                     for r in topic.round_rows]))
    return out


def why_parts(why: Why, plots: dict[str, list[tuple[Path, str]]]) -> list[Part]:
    """One Part per topic; `plots`: topic key -> its figures."""
    return [Part(t.title, t.intro, topic_tables(t, why.methods), plots.get(t.key, [])) for t in why.topics]
