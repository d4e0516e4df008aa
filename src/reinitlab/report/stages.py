"""The report of staged protocols (warm_start, chunks, classes, permuted, relabel; protocols/): for
every combination whose runs trained in stages,

- the answer at the last stage, in sentences: each method against the warm start (`baseline`,
  trained on across the stages) and against `scratch` (re-drawn at every stage), seed-paired
  differences with their 95% t-intervals;
- the accuracy per stage, one line per method (mean ± SE over seeds): test accuracy, or under
  `relabel` the training accuracy reached (the test labels are not the stage's);
- under `permuted` and `relabel`, the loss of plasticity per method: the mean online accuracy over
  the last third of the stages minus the first third, per seed, with its 95% t-interval (below 0:
  the method learns new tasks worse than it did at the start);
- the plasticity diagnostics per stage (dormant units, effective rank of the penultimate features,
  weight norm, gradient norm: measure/plasticity.py), as figures and a last-stage table.

The `rounds` protocol's report is unchanged: this part is empty without staged runs.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from .collect import Combo, RunRecord, combo_order
from .part import Part, ReportContext, report_part
from .plots import _colors, _grid, _safe, _save, panel_title, wrap
from .stats import MeanSE, PairedDiff, mean_se, paired_diff

WARM, COLD = "baseline", "scratch"
SHIFTING = ("permuted", "relabel")  # tasks that change: online accuracy over the stages is the measure
DIAGNOSTICS = (("dormant", "dormant units (share)"), ("srank", "effective rank of penultimate features"),
               ("weight_norm", "weight norm"), ("grad_norm", "gradient norm"))


def protocol_of(r: RunRecord) -> str:
    return r.config.get("protocol") or "rounds"


def stage_value(rec: dict, protocol: str) -> float | None:
    """A stage's accuracy: the test accuracy, or under relabel the training accuracy it reached."""
    return rec.get("train_acc") if protocol == "relabel" else rec.get("test_acc")


def per_stage(runs: list[RunRecord], key) -> dict[str, dict[int, list[float]]]:
    """method -> seed -> the value of `key(record)` at every stage (finished runs only)."""
    out: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for r in runs:
        values = [key(rec) for rec in (r.result or {}).get("per_round", [])]
        if values and all(v is not None for v in values):
            out[r.method][r.seed] = values
    return out


def plasticity_loss(online: list[float]) -> float:
    """Mean online accuracy over the last third of the stages minus the first third (points)."""
    k = max(1, len(online) // 3)
    return 100 * (sum(online[-k:]) / k - sum(online[:k]) / k)


def paired_last(values: dict[str, dict[int, list[float]]], method: str, ref: str) -> PairedDiff | None:
    if method not in values or ref not in values or method == ref:
        return None
    seeds = sorted(set(values[method]) & set(values[ref]))
    if not seeds:
        return None
    return paired_diff([100 * values[method][s][-1] for s in seeds], [100 * values[ref][s][-1] for s in seeds])


def diff_text(d: PairedDiff) -> str:
    if d.n < 2:
        return f"{d.mean:+.2f} (one seed: no interval)"
    return f"{d.mean:+.2f} [{d.lo:+.2f}, {d.hi:+.2f}]" + (" *" if d.excludes_zero else "")


def sentence(method: str, ref: str, d: PairedDiff, what: str) -> str:
    if d.n < 2:
        verdict = "differs from"
    elif d.lo > 0:
        verdict = "is above"
    elif d.hi < 0:
        verdict = "is below"
    else:
        verdict = "is level with"
    return (f"{method} {verdict} {ref} at the last stage: {what} {diff_text(d)} points "
            f"({d.n} seed{'s' if d.n != 1 else ''})")


def combo_title(c: Combo, protocol: str) -> str:
    size = c.train_size if c.train_size is not None else "full"
    settings = "".join(f", {k}={v}" for k, v in c.settings if k != "protocol")
    return f"{c.dataset}, {c.arch}, {size} examples, noise {c.label_noise:g}, protocol {protocol}{settings}"


def plot_stages(title: str, series: dict[str, dict[int, list[float]]], ylabel: str, path: Path,
                colors: dict) -> Path:
    fig, axes = _grid(1, 1, title, size=(6.4, 3.6))
    ax = axes[0][0]
    for m, by_seed in series.items():
        n = min(len(v) for v in by_seed.values())
        stats = [mean_se([by_seed[s][i] for s in by_seed]) for i in range(n)]
        xs = list(range(n))
        ys = [st.mean for st in stats]
        ax.plot(xs, ys, label=m, color=colors.get(m), lw=1.2, marker="o" if n <= 12 else None, ms=3)
        se = [0.0 if math.isnan(st.se) else st.se for st in stats]
        ax.fill_between(xs, [y - e for y, e in zip(ys, se, strict=True)], [y + e for y, e in zip(ys, se, strict=True)], color=colors.get(m),
                        alpha=0.15, lw=0)
    ax.set_xlabel("stage")
    ax.set_ylabel(wrap(ylabel, 34))
    panel_title(ax, "mean ± SE over seeds")
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)
    return path


def plot_diagnostics(title: str, diag: dict[str, dict[str, dict[int, list[float]]]], path: Path,
                     colors: dict) -> Path:
    fig, axes = _grid(1, len(DIAGNOSTICS), title, size=(3.4, 2.8))
    for ax, (key, label) in zip(axes[0], DIAGNOSTICS, strict=True):
        for m, by_seed in diag[key].items():
            n = min(len(v) for v in by_seed.values())
            ax.plot(range(n), [mean_se([by_seed[s][i] for s in by_seed]).mean for i in range(n)], label=m,
                    color=colors.get(m), lw=1.1)
        ax.set_xlabel("stage")
        panel_title(ax, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)
    return path


def fmt_mean(ms: MeanSE, scale: float = 1.0, digits: int = 2) -> str:
    if ms.n == 0:
        return ""
    if math.isnan(ms.se):
        return f"{ms.mean * scale:.{digits}f}"
    return f"{ms.mean * scale:.{digits}f} ± {ms.se * scale:.{digits}f}"


@report_part("stages", 25)
def stages_part(ctx: ReportContext) -> Part | None:
    runs = [r for r in ctx.col.runs if r.status == "finished" and protocol_of(r) != "rounds"]
    if not runs:
        return None
    colors = _colors(ctx.col.methods)
    by_combo: dict[tuple[Combo, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_combo[(r.combo, protocol_of(r))].append(r)
    lines, tables, plots = [], [], []
    for (combo, protocol), rs in sorted(by_combo.items(), key=lambda kv: (combo_order(kv[0][0]), kv[0][1])):
        title = combo_title(combo, protocol)
        methods = [m for m in ctx.col.methods if any(r.method == m for r in rs)]
        acc = per_stage(rs, lambda rec, p=protocol: stage_value(rec, p))
        what = "training accuracy reached" if protocol == "relabel" else "test accuracy"
        for m in methods:  # the warm-start gap once (baseline vs scratch), then every method vs both
            for ref in ((COLD,) if m == WARM else () if m == COLD else (WARM, COLD)):
                d = paired_last(acc, m, ref)
                if d is not None:
                    lines.append(f"{title}: {sentence(m, ref, d, what)}.")
        stages = max((len(v) for by_seed in acc.values() for v in by_seed.values()), default=0)
        shown = list(range(stages)) if stages <= 8 else sorted({0, stages // 4, stages // 2, 3 * stages // 4,
                                                                stages - 1})
        header = ["method"] + [f"stage {s}" for s in shown] + [f"− {WARM} (last)", f"− {COLD} (last)"]
        rows = []
        for m in methods:
            if m not in acc:
                continue
            cells = [fmt_mean(mean_se([v[s] for v in acc[m].values() if len(v) > s]), 100) for s in shown]
            refs = [paired_last(acc, m, ref) for ref in (WARM, COLD)]
            rows.append([m] + cells + ["" if d is None else diff_text(d) for d in refs])
        tables.append((f"{title}: {what} per stage (%)",
                       f"Mean ± SE over seeds; the last two columns are seed-paired differences at the last stage "
                       f"(points, 95% t-interval, * excludes 0).{' Stages shown: ' + ', '.join(map(str, shown)) if stages > 8 else ''}",
                       header, rows))
        plots.append((plot_stages(f"{title}: {what} per stage", acc, f"{what}", ctx.plots / _safe(
            f"stages_{title}.png"), colors), f"{title}: {what} per stage"))
        if protocol in SHIFTING and stages >= 3:
            online = per_stage(rs, lambda rec: rec.get("online_acc"))
            loss_rows = []
            for m in methods:
                if m not in online:
                    continue
                losses = [plasticity_loss(v) for v in online[m].values()]
                d = paired_diff(losses, [0.0] * len(losses))
                loss_rows.append([m, fmt_mean(mean_se([100 * sum(v[:max(1, len(v) // 3)]) / max(1, len(v) // 3)
                                                       for v in online[m].values()]), 1),
                                  fmt_mean(mean_se([100 * sum(v[-max(1, len(v) // 3):]) / max(1, len(v) // 3)
                                                    for v in online[m].values()]), 1), diff_text(d)])
                if d.n >= 2:
                    kept = "loses plasticity" if d.hi < 0 else "gains" if d.lo > 0 else "keeps its plasticity"
                    lines.append(f"{title}: {m} {kept}: online accuracy over the last third of the stages minus the "
                                 f"first third {diff_text(d)} points ({d.n} seeds).")
            tables.append((f"{title}: loss of plasticity",
                           "Mean online accuracy (the accuracy of each training batch before its update) over the "
                           "first and the last third of the stages (%, mean ± SE over seeds), and last − first per "
                           "seed (points, 95% t-interval, * excludes 0).",
                           ["method", "first third", "last third", "last − first"], loss_rows))
            plots.append((plot_stages(f"{title}: online accuracy per stage", online, "online accuracy",
                                      ctx.plots / _safe(f"online_{title}.png"), colors),
                          f"{title}: online accuracy per stage"))
        diag = {k: per_stage(rs, lambda rec, k=k: (rec.get("plasticity") or {}).get(k)) for k, _ in DIAGNOSTICS}
        if any(diag[k] for k, _ in DIAGNOSTICS):
            plots.append((plot_diagnostics(f"{title}: diagnostics per stage", diag,
                                           ctx.plots / _safe(f"diagnostics_{title}.png"), colors),
                          f"{title}: plasticity diagnostics per stage"))
            rows = [[m] + [fmt_mean(mean_se([v[-1] for v in diag[k][m].values()]), 1, 3) if m in diag[k] else ""
                           for k, _ in DIAGNOSTICS] for m in methods]
            tables.append((f"{title}: diagnostics at the last stage", "Mean ± SE over seeds (measure/plasticity.py).",
                           ["method"] + [label for _, label in DIAGNOSTICS], rows))
    intro = ("Runs trained in stages (the protocol setting): each method's reset fires at every stage start after "
             "the first. The references are the warm start (baseline: trained on across the stages, a fresh "
             "optimizer per stage) and scratch (the whole network re-drawn at every stage).")
    return Part("Stages", intro, tables, plots, lines=lines)
