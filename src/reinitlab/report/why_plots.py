"""The "why" section's figures, one per dataset and topic, one panel per (arch, train size, noise,
extra settings), one colour per method (the summary plots' colours), every curve over finished seeds:

  why_margins_<dataset>.png        training-margin distributions as CDFs, raw and divided by the
                                   spectral complexity R; the seeds' quantile functions averaged
                                   (analysis.json margins arrays)
  why_norms_<dataset>.png          Frobenius norm, log10 spectral product and log10 R after each
                                   round, mean ± SE (per-round diagnostics); baseline and long,
                                   trained in one round, as dashed horizontal lines
  why_flatness_<dataset>.png       training-loss increase against the noise sigma, mean with a
                                   ± SE band (analysis.json flatness)
  why_memorization_<dataset>.png   memorized fraction and the noisy examples' true-label accuracy,
                                   mean ± SE (label-noise combinations only)
  why_<topic>_<dataset>.png        any other topic (probes, and every analysis registered later): per
                                   declared family (one number per group, per sigma, ...) its members
                                   on the x axis, per scalar metric a bar per method; mean ± SE
                                   (probes: linear-probe and 5-NN accuracy after each group)
"""
from __future__ import annotations

import math
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from ..analyses.metrics import Metric
from .catalog import family_label, member_values
from .plots import (
    SINGLE_ROUND,
    _col,
    _colors,
    _grid,
    _panels,
    _safe,
    _save,
    _settings_text,
    panel_title,
    se_text,
    seeds_text,
    ylabel,
)
from .stats import mean_se
from .values import RunData, value_of
from .part import ReportContext, report_part
from .why import TopicRows, Why, compute, why_parts

QUANTILES = [i / 100 for i in range(1, 100)]


def _sel(runs, arch, col):
    return [r for r in runs if r.combo.arch == arch and _col(r) == col]


def _se(s) -> float:
    return 0.0 if math.isnan(s.se) else s.se


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics, as numpy's default."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _title(ax, arch, col, what=""):
    panel_title(ax, f"{arch}, n={col[0]}, noise {col[1]:g}{_settings_text(col[2])}" + (f": {what}" if what else ""))


def margins_plot(why: Why, topic: TopicRows, runs, out: Path, dataset: str, colors) -> Path | None:
    have = [r for r in runs if ((why.data.get(r.id) or RunData()).arrays.get("margins") or {}).get("margins")]
    if not have:
        return None
    archs, cols = _panels(have)
    fig, axes = _grid(2 * len(archs), len(cols), f"{dataset}: training-margin distributions (CDF, quantiles averaged "
                      f"over {seeds_text(have)})")
    for i, arch in enumerate(archs):
        for j, col in enumerate(cols):
            sel = _sel(have, arch, col)
            for k, (key, xlabel) in enumerate((("margins", "margin f_y − max_{j≠y} f_j"),
                                               ("spectral_normalized", "margin / spectral complexity R"))):
                ax = axes[2 * i + k][j]
                for m in why.methods:
                    arrays = [why.data[r.id].arrays["margins"].get(key) for r in sel if r.method == m]
                    arrays = [a for a in arrays if a]
                    if not arrays:
                        continue
                    curve = [sum(_quantile(a, q) for a in arrays) / len(arrays) for q in QUANTILES]
                    ax.plot(curve, QUANTILES, color=colors[m], label=m, lw=1.4)
                ax.axvline(0, color="k", lw=0.6)
                ax.set_xlabel(xlabel)
                ax.set_ylabel("fraction of training examples ≤ x")
                _title(ax, arch, col)
                ax.grid(alpha=0.3)
    path = out / f"why_margins_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def norms_plot(why: Why, topic: TopicRows, runs, out: Path, dataset: str, colors) -> Path | None:
    have = [r for r in runs if (why.data.get(r.id) or RunData()).rounds]
    if not have:
        return None
    archs, cols = _panels(have)
    per_round = topic.round_metrics
    fig, axes = _grid(len(per_round) * len(archs), len(cols), f"{dataset}: weight norms after each round "
                      f"(per-round diagnostics, {se_text(have)})")
    for i, arch in enumerate(archs):
        for j, col in enumerate(cols):
            sel = _sel(have, arch, col)
            for k, metric in enumerate(per_round):
                ax = axes[len(per_round) * i + k][j]
                for m in why.methods:
                    by_round: dict[int, list[float]] = {}
                    for r in sel:
                        if r.method != m:
                            continue
                        for row in why.data[r.id].rounds:
                            v = row["diagnostics"].get(metric.key.partition(".")[2])
                            if isinstance(v, (int, float)) and math.isfinite(v):
                                by_round.setdefault(row.get("round", 0), []).append(v)
                    if not by_round:
                        continue
                    rounds = sorted(by_round)
                    stats = [mean_se(by_round[x]) for x in rounds]
                    if m in SINGLE_ROUND or len(rounds) == 1:
                        ax.axhline(stats[-1].mean, ls="--", lw=1.2, color=colors[m], label=m)
                    else:
                        ax.errorbar(rounds, [s.mean for s in stats], yerr=[_se(s) for s in stats], marker="o", ms=4,
                                    capsize=3, color=colors[m], label=m)
                ax.set_xlabel("round (0 = before any reset)")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ylabel(ax, metric.label, "small")
                _title(ax, arch, col)
                ax.grid(alpha=0.3)
    path = out / f"why_norms_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def flatness_plot(why: Why, topic: TopicRows, runs, out: Path, dataset: str, colors) -> Path | None:
    have = [r for r in runs if ((why.data.get(r.id) or RunData()).arrays.get("flatness") or {}).get("sigmas")]
    if not have:
        return None
    archs, cols = _panels(have)
    fig, axes = _grid(len(archs), len(cols), f"{dataset}: training-loss increase under weight noise "
                      f"({se_text(have)})")
    for i, arch in enumerate(archs):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            sel = _sel(have, arch, col)
            for m in why.methods:
                curves = [why.data[r.id].arrays["flatness"] for r in sel if r.method == m]
                if not curves:
                    continue
                sig = curves[0]["sigmas"]
                curves = [c for c in curves if c.get("sigmas") == sig and c.get("mean")]
                stats = [mean_se([c["mean"][k] for c in curves if c["mean"][k] is not None]) for k in range(len(sig))]
                mu = [s.mean for s in stats]
                se = [_se(s) for s in stats]
                ax.plot(sig, mu, "o-", ms=3, color=colors[m], label=m)
                ax.fill_between(sig, [a - b for a, b in zip(mu, se, strict=True)], [a + b for a, b in zip(mu, se, strict=True)],
                                color=colors[m], alpha=0.2, lw=0)
            ax.set_xlabel("sigma (relative weight noise)")
            ax.set_ylabel("training-loss increase")
            _title(ax, arch, col)
            ax.grid(alpha=0.3)
    path = out / f"why_flatness_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def memorization_plot(why: Why, topic: TopicRows, runs, out: Path, dataset: str, colors) -> Path | None:
    measures = topic.declared[:2]  # memorized fraction, the noisy examples' true-label accuracy
    key = measures[0].key
    have = [r for r in runs if r.combo.label_noise > 0 and (why.data.get(r.id) or RunData()).numbers.get(key) is not None]
    if not have:
        return None
    archs, cols = _panels(have)
    fig, axes = _grid(len(archs), len(cols), f"{dataset}: memorization under label noise ({se_text(have)})")
    for i, arch in enumerate(archs):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            sel = _sel(have, arch, col)
            methods = [m for m in why.methods if any(r.method == m for r in sel)]
            width = 0.8 / max(len(methods), 1)
            for k, m in enumerate(methods):
                stats = [mean_se([why.data[r.id].numbers[me.key] for r in sel
                                  if r.method == m and why.data[r.id].numbers.get(me.key) is not None])
                         for me in measures]
                xs = [x + (k - (len(methods) - 1) / 2) * width for x in range(len(measures))]
                ax.bar(xs, [100 * s.mean for s in stats], width, yerr=[100 * _se(s) for s in stats], capsize=2,
                       color=colors[m], label=m)
            ax.set_xticks(range(len(measures)), ["memorized fraction\n(noisy label)", "noisy examples:\ntrue label"],
                          fontsize="small")
            ax.set_ylabel("% of the noisy training examples")
            _title(ax, arch, col)
            ax.grid(alpha=0.3, axis="y")
    path = out / f"why_memorization_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def _stats(why: Why, sel, method: str, metric: Metric):
    return mean_se([v for r in sel if r.method == method
                    for v in [value_of(metric, r, why.data)[0]] if v is not None])


def topic_plot(why: Why, topic: TopicRows, runs, out: Path, dataset: str, colors) -> Path | None:
    """The figure of a topic without one of its own, from its declarations alone: a row of panels per
    declared family (members on the x axis, one line per method) and per scalar metric (a bar per
    method); mean ± SE over seeds, percent metrics x100."""
    in_scope = {row.combo for row in topic.rows}
    have = [r for r in runs if r.combo in in_scope and any(value_of(m, r, why.data)[0] is not None
                                                           for d in topic.declared for _, m in _members(d, why, [r]))]
    if not have:
        return None
    archs, cols = _panels(have)
    rows = len(topic.declared)
    fig, axes = _grid(rows * len(archs), len(cols), f"{dataset}: {topic.title.split(': ', 1)[-1]} ({se_text(have)})")
    for i, arch in enumerate(archs):
        for j, col in enumerate(cols):
            sel = _sel(have, arch, col)
            for k, declared in enumerate(topic.declared):
                ax = axes[rows * i + k][j]
                scale = 100 if declared.percent else 1
                if declared.placeholder:
                    found = _members(declared, why, sel)
                    for m in why.methods:
                        stats = [_stats(why, sel, m, metric) for _, metric in found]
                        if not stats or not all(s.n for s in stats):
                            continue
                        ax.errorbar(range(len(found)), [scale * s.mean for s in stats],
                                    yerr=[scale * _se(s) for s in stats], marker="o", ms=4, capsize=3, color=colors[m],
                                    label=m)
                    ax.set_xticks(range(len(found)), [v for v, _ in found], rotation=45, fontsize="small")
                    ax.set_xlabel(declared.placeholder)
                    ylabel(ax, family_label(declared), "small")
                else:
                    methods = [m for m in why.methods if _stats(why, sel, m, declared).n]
                    stats = [_stats(why, sel, m, declared) for m in methods]
                    ax.bar(range(len(methods)), [scale * s.mean for s in stats], yerr=[scale * _se(s) for s in stats],
                           capsize=3, color=[colors[m] for m in methods])
                    ax.set_xticks(range(len(methods)), methods, rotation=45, fontsize="small")
                    ylabel(ax, declared.label, "small")
                _title(ax, arch, col)
                ax.grid(alpha=0.3)
    path = out / f"why_{_safe(topic.key)}_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def _members(metric: Metric, why: Why, runs) -> list[tuple[str, Metric]]:
    """(placeholder value, member) of a family over `runs`; a scalar metric is its own one member."""
    if not metric.placeholder:
        return [("", metric)]
    values = member_values(metric, [(why.data.get(r.id) or RunData()).numbers for r in runs])
    return [(v, metric.member(v)) for v in values]


CAPTIONS = {
    "margins": "training-margin CDFs per method, raw and divided by the spectral complexity R (analysis.json margins; "
               "each seed's quantiles, averaged)",
    "norms": "Frobenius norm, log10 spectral product and log10 R after each round (per-round diagnostics in "
             "result.json; mean ± SE over seeds; baseline and long dashed)",
    "flatness": "training-loss increase under relative Gaussian weight noise (analysis.json flatness; mean ± SE band "
                "over seeds)",
    "memorization": "memorized fraction and true-label accuracy of the noisy training examples (analysis.json "
                    "memorization; mean ± SE over seeds)",
    "probes": "linear-probe and 5-NN held-out accuracy of the features after each group (analysis.json probes; "
              "mean ± SE over seeds)",
}
MAKERS = {"margins": margins_plot, "norms": norms_plot, "flatness": flatness_plot,
          "memorization": memorization_plot}  # every other topic: topic_plot


def make_why_plots(why: Why, runs, out: Path) -> dict[str, list[tuple[Path, str]]]:
    """topic key -> [(png, caption)], one figure per dataset; `runs`: the collected run records."""
    out.mkdir(parents=True, exist_ok=True)
    colors = _colors(why.methods)
    finished = [r for r in runs if r.status == "finished" and r.id in why.data]
    made: dict[str, list] = {}
    for topic in why.topics:
        maker = MAKERS.get(topic.key, topic_plot)
        caption = CAPTIONS.get(topic.key) or (f"{'; '.join(family_label(m) for m in topic.declared)} "
                                              f"(analysis.json {topic.key}; mean ± SE over seeds)")
        for dataset in sorted({r.combo.dataset for r in finished}):
            path = maker(why, topic, [r for r in finished if r.combo.dataset == dataset], out, dataset, colors)
            if path is not None:
                made.setdefault(topic.key, []).append((path, f"{dataset}: {caption}"))
    return made


@report_part("why", 20)
def _why_parts(ctx: ReportContext) -> list:
    """One part per topic the analyses declare, where the runs have its numbers (why.py), each with
    its figures."""
    why = ctx.found["why"] = compute(ctx.col, ctx.data, ctx.catalog)
    return why_parts(why, make_why_plots(why, ctx.col.runs, ctx.plots)) if why.topics else []
