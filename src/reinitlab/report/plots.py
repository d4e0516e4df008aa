"""The report's PNG plots, one figure per dataset and kind, one panel per (arch, size/noise, extra
settings of the study's other axes):

  acc_vs_size_<dataset>.png    mean test accuracy ± SE against the training-set size, per method
  per_round_<dataset>.png      test accuracy after each round (reinit methods), with the single-round
                               baseline and long as horizontal reference lines
  acc_vs_compute_<dataset>.png test accuracy against epochs trained so far: every round of a reinit
                               method is a point on its curve; baseline and long are single points

Means are over finished seeds only, like the tables.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .collect import Collected, RunRecord, value_order  # noqa: E402
from .stats import mean_se  # noqa: E402

SINGLE_ROUND = ("baseline", "long")


def _colors(methods: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _finished(col: Collected) -> list[RunRecord]:
    return [r for r in col.runs if r.status == "finished" and r.test_acc is not None]


def _grid(n_rows: int, n_cols: int, title: str):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols + 1.6, 3.2 * n_rows + 0.6), squeeze=False)
    fig.suptitle(title)
    return fig, axes


def _save(fig, path: Path) -> None:
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="center right", fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / fig.get_size_inches()[0], 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _settings_text(settings) -> str:
    return "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in settings)


def _settings_order(settings) -> tuple:
    return tuple((k, value_order(v)) for k, v in settings)


def _numeric_sizes(runs: list[RunRecord]) -> bool:
    return all(isinstance(r.axes["train_size"], (int, float)) for r in runs)


def acc_vs_size(col: Collected, out: Path, dataset: str, colors) -> Path | None:
    runs = [r for r in _finished(col) if r.axes["dataset"] == dataset]
    if not runs or not _numeric_sizes(runs):
        return None
    archs = sorted({r.axes["arch"] for r in runs})
    noises = sorted({(r.combo.label_noise, r.combo.settings) for r in runs}, key=lambda c: (c[0], _settings_order(c[1])))
    fig, axes = _grid(len(archs), len(noises), f"{dataset}: test accuracy vs training-set size")
    for i, arch in enumerate(archs):
        for j, (noise, settings) in enumerate(noises):
            ax = axes[i][j]
            sel = [r for r in runs if r.axes["arch"] == arch and (r.combo.label_noise, r.combo.settings) == (noise, settings)]
            sizes = sorted({r.axes["train_size"] for r in sel})
            for m in col.methods:
                xs, ys, es = [], [], []
                for n in sizes:
                    s = mean_se([r.test_acc for r in sel if r.method == m and r.axes["train_size"] == n])
                    if s.n:
                        xs.append(n)
                        ys.append(100 * s.mean)
                        es.append(0.0 if math.isnan(s.se) else 100 * s.se)
                if xs:
                    ax.errorbar(xs, ys, yerr=es, marker="o", ms=4, capsize=3, label=m, color=colors[m])
            if len(sizes) > 1 and sizes[-1] / sizes[0] >= 4:
                ax.set_xscale("log")
            ax.set_title(f"{arch}, label noise {noise:g}{_settings_text(settings)}", fontsize="medium")
            ax.set_xlabel("training examples")
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
    path = out / f"acc_vs_size_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def _col(r: RunRecord) -> tuple:
    return (r.combo.train_size, r.combo.label_noise, r.combo.settings)


def _panels(runs: list[RunRecord]) -> tuple[list, list]:
    archs = sorted({r.axes["arch"] for r in runs})
    cols = sorted({_col(r) for r in runs}, key=lambda c: (value_order(c[0]), c[1], _settings_order(c[2])))
    return archs, cols


def _round_curve(sel: list[RunRecord], x_of) -> tuple[list, list, list]:
    """Mean ± SE over seeds of per-round test accuracy, at the x of each round."""
    by_round: dict[int, list] = {}
    xs: dict[int, list] = {}
    for r in sel:
        for row in (r.result or {}).get("per_round", []):
            if row.get("test_acc") is None:
                continue
            by_round.setdefault(row["round"], []).append(row["test_acc"])
            xs.setdefault(row["round"], []).append(x_of(row))
    rounds = sorted(by_round)
    stats = [mean_se(by_round[k]) for k in rounds]
    return ([sum(xs[k]) / len(xs[k]) for k in rounds], [100 * s.mean for s in stats],
            [0.0 if math.isnan(s.se) else 100 * s.se for s in stats])


def _method_panels(col: Collected, runs: list[RunRecord], title: str, xlabel: str):
    """One figure with a panel per (arch, size, noise), labelled; yields (figure, panel, method, its
    runs) for every method that has runs in a panel."""
    archs, cols = _panels(runs)
    fig, axes = _grid(len(archs), len(cols), title)
    for i, arch in enumerate(archs):
        for j, panel in enumerate(cols):
            size, noise, settings = panel
            ax = axes[i][j]
            ax.set_title(f"{arch}, n={size}, noise {noise:g}{_settings_text(settings)}", fontsize="medium")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            sel = [r for r in runs if r.axes["arch"] == arch and _col(r) == panel]
            for m in col.methods:
                ms = [r for r in sel if r.method == m]
                if ms:
                    yield fig, ax, m, ms


def per_round(col: Collected, out: Path, dataset: str, colors) -> Path | None:
    runs = [r for r in _finished(col) if r.axes["dataset"] == dataset]
    if not any(len((r.result or {}).get("per_round", [])) > 1 for r in runs):
        return None
    fig = None
    for fig, ax, m, ms in _method_panels(col, runs, f"{dataset}: test accuracy after each round",
                                         "round (0 = before any reset)"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        x, y, e = _round_curve(ms, lambda row: row["round"])
        if m in SINGLE_ROUND:
            ax.axhline(y[-1], ls="--", lw=1.2, color=colors[m], label=m)
        else:
            ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=3, label=m, color=colors[m])
    path = out / f"per_round_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def acc_vs_compute(col: Collected, out: Path, dataset: str, colors) -> Path | None:
    runs = [r for r in _finished(col) if r.axes["dataset"] == dataset]
    if not runs:
        return None
    fig = None
    for fig, ax, m, ms in _method_panels(col, runs, f"{dataset}: test accuracy vs compute (epochs trained)",
                                         "epochs trained"):
        x, y, e = _round_curve(ms, lambda row: row["epochs_total"])
        if not x:  # a result without per-round rows: its final numbers
            s = mean_se([r.test_acc for r in ms])
            x, y, e = [sum(r.result["epochs_total"] for r in ms) / len(ms)], [100 * s.mean], [0.0]
        style = {"marker": "s", "ms": 7} if m in SINGLE_ROUND else {"marker": "o", "ms": 4}
        ax.errorbar(x, y, yerr=e, capsize=3, label=m, color=colors[m], **style)
    path = out / f"acc_vs_compute_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def make_plots(col: Collected, out: Path) -> list[tuple[Path, str]]:
    """Writes the PNGs into `out`; returns (path, caption) of each."""
    out.mkdir(parents=True, exist_ok=True)
    colors = _colors(col.methods)
    made = []
    for dataset in sorted({r.axes["dataset"] for r in col.runs}):
        for fn, caption in ((acc_vs_size, "test accuracy vs training-set size"),
                            (per_round, "test accuracy per round"),
                            (acc_vs_compute, "test accuracy vs compute")):
            path = fn(col, out, dataset, colors)
            if path is not None:
                made.append((path, f"{dataset}: {caption}"))
    return made


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
