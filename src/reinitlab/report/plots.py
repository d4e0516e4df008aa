"""The report's PNG plots, one figure per dataset and kind, one panel per (arch, size/noise, extra
settings of the study's other axes), each drawn only where it shows something the tables do not:

  acc_vs_size_<dataset>.png    mean test accuracy ± SE against the training-set size, per method
                               (only where a panel has at least two sizes)
  acc_vs_epochs_<dataset>.png  test accuracy after each round against the epochs trained so far:
                               every round of a reinit method is a point on its curve; baseline and
                               long are single points with a dashed line across the panel (only
                               where some run trained more than one round)

Means are over finished seeds only, like the tables; every title says over how many seeds its error
bars are (standard errors). Titles wrap, so long names (npz:/a/long/path) are never cut; the layout
is matplotlib's constrained layout, so labels do not overlap their neighbours.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullLocator  # noqa: E402

from .collect import Collected, RunRecord, value_order  # noqa: E402
from .stats import mean_se  # noqa: E402

SINGLE_ROUND = ("baseline", "long")


def _colors(methods: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _finished(col: Collected) -> list[RunRecord]:
    return [r for r in col.runs if r.status == "finished" and r.test_acc is not None]


def wrap(text: str, width: int) -> str:
    """Lines of at most `width` characters, broken after spaces and slashes (paths), and inside a
    word only where one is longer than a line."""
    lines, cur = [], ""
    for chunk in re.split(r"(?<=[ /])", text):
        while len(chunk) > width:
            if cur:
                lines.append(cur.rstrip())
                cur = ""
            lines.append(chunk[:width])
            chunk = chunk[width:]
        if cur and len(cur) + len(chunk.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = ""
        cur += chunk
    if cur.strip():
        lines.append(cur.rstrip())
    return "\n".join(lines)


def _chars(inches: float, points: float = 10.0) -> int:
    """About how many characters of a `points` font fit in `inches`."""
    return max(12, int(inches * 72 / (0.6 * points)))


def _grid(n_rows: int, n_cols: int, title: str, size: tuple[float, float] = (4.2, 3.2)):
    w, h = size
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(w * n_cols + 1.6, h * n_rows + 0.6), squeeze=False,
                             layout="constrained")
    fig.suptitle(wrap(title, _chars(w * n_cols + 1.6, 12)))
    return fig, axes


def panel_title(ax, text: str) -> None:
    ax.set_title(wrap(text, _chars(ax.figure.get_size_inches()[0] / max(1, _n_cols(ax)), 10)), fontsize="medium")


def _n_cols(ax) -> int:
    spec = ax.get_subplotspec()
    return spec.get_gridspec().ncols if spec is not None else 1


def ylabel(ax, text: str, fontsize="medium") -> None:
    ax.set_ylabel(wrap(text, 34), fontsize=fontsize)


def _save(fig, path: Path) -> None:
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize="small", frameon=False)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def seeds_text(runs: list[RunRecord]) -> str:
    """"3 seeds" (or "2-3 seeds"): how many seeds each (combination, method) point averages."""
    counts: dict[tuple, int] = {}
    for r in runs:
        counts[(r.combo, r.method)] = counts.get((r.combo, r.method), 0) + 1
    if not counts:
        return "0 seeds"
    lo, hi = min(counts.values()), max(counts.values())
    n = str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{n} seed{'s' if hi != 1 else ''}"


def se_text(runs: list[RunRecord]) -> str:
    """What the error bars are: "mean ± SE over 3 seeds"."""
    n = seeds_text(runs)
    return f"mean ± SE over {n}" + ("; one seed: no error bars" if n == "1 seed" else "")


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
    panels = [[r for r in runs if r.axes["arch"] == arch and (r.combo.label_noise, r.combo.settings) == ns]
              for arch in archs for ns in noises]
    if not any(len({r.axes["train_size"] for r in sel}) >= 2 for sel in panels):
        return None  # one size per panel: the accuracy table says it all
    fig, axes = _grid(len(archs), len(noises), f"{dataset}: test accuracy vs training-set size ({se_text(runs)})")
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
            if sizes:  # the sizes trained, as plain numbers (a log axis would say 6x10^2)
                ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
                ax.xaxis.set_minor_locator(NullLocator())
            panel_title(ax, f"{arch}, label noise {noise:g}{_settings_text(settings)}")
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
            panel_title(ax, f"{arch}, n={size}, noise {noise:g}{_settings_text(settings)}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            sel = [r for r in runs if r.axes["arch"] == arch and _col(r) == panel]
            for m in col.methods:
                ms = [r for r in sel if r.method == m]
                if ms:
                    yield fig, ax, m, ms


def acc_vs_epochs(col: Collected, out: Path, dataset: str, colors) -> Path | None:
    """Accuracy after each round against the epochs trained: the course over rounds and the
    compute it cost, in one figure."""
    runs = [r for r in _finished(col) if r.axes["dataset"] == dataset]
    if not any(len((r.result or {}).get("per_round", [])) > 1 for r in runs):
        return None  # no run trained more than one round: the table has every point
    fig = None
    for panel_fig, ax, m, ms in _method_panels(col, runs, f"{dataset}: test accuracy after each round vs epochs "
                                               f"trained ({se_text(runs)})", "epochs trained"):
        fig = panel_fig
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        x, y, e = _round_curve(ms, lambda row: row["epochs_total"])
        if not x:  # a result without per-round rows: its final numbers
            s = mean_se([r.test_acc for r in ms])
            x = [sum(r.result.get("epochs_total") or 0 for r in ms) / len(ms)]
            y, e = [100 * s.mean], [0.0 if math.isnan(s.se) else 100 * s.se]
        if m in SINGLE_ROUND or len(x) == 1:
            ax.axhline(y[-1], ls="--", lw=1.0, color=colors[m], alpha=0.8)
            ax.errorbar(x[-1:], y[-1:], yerr=e[-1:], marker="s", ms=7, capsize=3, label=m, color=colors[m], ls="none")
        else:
            ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=3, label=m, color=colors[m])
    path = out / f"acc_vs_epochs_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def make_plots(col: Collected, out: Path) -> list[tuple[Path, str]]:
    """Writes the PNGs into `out`; returns (path, caption) of each."""
    out.mkdir(parents=True, exist_ok=True)
    colors = _colors(col.methods)
    made = []
    for dataset in sorted({r.axes["dataset"] for r in col.runs}):
        runs = [r for r in _finished(col) if r.axes["dataset"] == dataset]
        for fn, caption in ((acc_vs_size, "test accuracy vs training-set size"),
                            (acc_vs_epochs, "test accuracy after each round vs epochs trained; baseline and "
                                            "long (one round) are squares with a dashed line across the panel")):
            path = fn(col, out, dataset, colors)
            if path is not None:
                made.append((path, f"{dataset}: {caption}; error bars: standard error over {seeds_text(runs)}"))
    return made


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
