"""Per-epoch training and validation curves (loss and accuracy), read from the run folders'
metrics.jsonl only: one line per epoch with train_loss, train_acc, val_loss, val_acc, the round
and epoch_total. The x axis is the epochs trained (epoch_total); a reset (the start of rounds 1..R)
is a vertical dotted line where its round begins, after the last epoch of the round before.

  curves_plot   the report's figure: per dataset, a row of panels per combination (training loss,
                validation loss, training accuracy, validation accuracy), a line per method as the
                mean over its finished seeds with a ± SE band
  plot_runs     `reinitlab plot RUN...`: any run folders (finished or not) in one figure, one line
                per run (training solid, validation dashed), each labelled by what differs between
                the runs' configs
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..util.errors import UserError
from ..util.files import read_json_dict, read_jsonl, writable_problem
from .collect import STANDARD_AXES, Collected, find_run_folders, folder_problem, varying_settings
from .part import Part, ReportContext, report_part
from .plots import _col, _colors, _grid, _panels, _safe, _save, _settings_text, panel_title, se_text, seeds_text, wrap
from .stats import mean_se

# (metrics.jsonl key, label, percent)
SERIES = (("train_loss", "training loss", False), ("val_loss", "validation loss", False),
          ("train_acc", "training accuracy (%)", True), ("val_acc", "validation accuracy (%)", True))
FORMATS = (".png", ".pdf", ".svg")


def read_curve(folder: Path) -> list[dict]:
    """The epoch lines of a run folder's metrics.jsonl ([] where it has none or it is unreadable)."""
    try:
        rows = read_jsonl(Path(folder) / "metrics.jsonl")
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("epoch_total"), (int, float))]


def resets(rows: list[dict]) -> list[float]:
    """Epochs trained when each reset happened: where the round number goes up."""
    return [prev["epoch_total"] for prev, row in zip(rows, rows[1:], strict=False) if row.get("round") != prev.get("round")]


def _value(row: dict, key: str, percent: bool) -> float | None:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return 100 * v if percent else float(v)


def mean_curve(curves: list[list[dict]], key: str, percent: bool = False) -> tuple[list, list, list]:
    """(epochs trained, mean, SE) over the runs at every epoch some run has a value for."""
    by_x: dict[float, list[float]] = {}
    for rows in curves:
        for row in rows:
            v = _value(row, key, percent)
            if v is not None:
                by_x.setdefault(row["epoch_total"], []).append(v)
    xs = sorted(by_x)
    stats = [mean_se(by_x[x]) for x in xs]
    return xs, [s.mean for s in stats], [0.0 if math.isnan(s.se) else s.se for s in stats]


def _reset_lines(ax, xs: list[float], color="0.45", label: str | None = "reset") -> None:
    for i, x in enumerate(sorted(set(xs))):
        ax.axvline(x, color=color, ls=":", lw=1.0, label=label if i == 0 else None)


def curves_plot(col: Collected, out: Path, dataset: str, colors) -> Path | None:
    runs = [r for r in col.runs if r.status == "finished" and r.combo.dataset == dataset]
    curves = {r.id: read_curve(col.run_dir(r)) for r in runs}
    runs = [r for r in runs if curves[r.id]]
    series = [s for s in SERIES if any(_value(row, s[0], s[2]) is not None for r in runs for row in curves[r.id])]
    if not runs or not series:
        return None
    archs, cols = _panels(runs)
    panels = [(arch, c) for arch in archs for c in cols if any(r.combo.arch == arch and _col(r) == c for r in runs)]
    fig, axes = _grid(len(panels), len(series), f"{dataset}: per-epoch curves, mean ± SE band over "
                      f"{seeds_text(runs)}; dotted: resets", size=(3.5, 2.6))
    for i, (arch, c) in enumerate(panels):
        sel = [r for r in runs if r.combo.arch == arch and _col(r) == c]
        for j, (key, label, percent) in enumerate(series):
            ax = axes[i][j]
            for m in col.methods:
                ms = [curves[r.id] for r in sel if r.method == m]
                xs, mu, se = mean_curve(ms, key, percent)
                if not xs:
                    continue
                ax.plot(xs, mu, color=colors[m], lw=1.3, label=m)
                ax.fill_between(xs, [a - b for a, b in zip(mu, se, strict=True)], [a + b for a, b in zip(mu, se, strict=True)],
                                color=colors[m], alpha=0.2, lw=0)
            _reset_lines(ax, [x for r in sel for x in resets(curves[r.id])])
            if key.endswith("loss") and _spread(ax) > 20:
                ax.set_yscale("log")
            panel_title(ax, f"{arch}, n={c[0]}, noise {c[1]:g}{_settings_text(c[2])}: {label.split(' (')[0]}")
            ax.set_xlabel("epochs trained")
            ax.set_ylabel(label, fontsize="small")
            ax.grid(alpha=0.3)
    path = out / f"curves_{_safe(dataset)}.png"
    _save(fig, path)
    return path


def _spread(ax) -> float:
    """max/min of the positive y data drawn: a loss falling by orders of magnitude reads on a log axis."""
    ys = [y for line in ax.get_lines() for y in line.get_ydata() if isinstance(y, float) and y > 0]
    return max(ys) / min(ys) if ys else 1.0


def make_curves(col: Collected, out: Path) -> list[tuple[Path, str]]:
    """The report's curve figures, one per dataset, with their captions."""
    out.mkdir(parents=True, exist_ok=True)
    colors = _colors(col.methods)
    made = []
    for dataset in sorted({r.combo.dataset for r in col.runs}):
        path = curves_plot(col, out, dataset, colors)
        if path is not None:
            runs = [r for r in col.runs if r.status == "finished" and r.combo.dataset == dataset]
            made.append((path, f"{dataset}: training and validation loss and accuracy after every epoch "
                               f"(metrics.jsonl), per method the mean over its finished seeds with a ± SE band "
                               f"({se_text(runs)}); dotted vertical lines: resets, where a round begins"))
    return made


# ---- single runs: reinitlab plot -----------------------------------------------------------------
def _text(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "none" if v is None else str(v)


def run_labels(configs: list[dict], folders: list[Path]) -> tuple[list[str], str]:
    """(a label per run naming what differs between the runs, what they share): the method alone
    where only methods differ ("lw", "baseline"), else key=value pairs; the folder name where
    nothing in their configs differs."""
    differ = [k for k in ("method", *STANDARD_AXES[:4]) if len({repr(c.get(k)) for c in configs}) > 1]
    differ += varying_settings(configs)
    seeds_differ = len({repr(c.get("seed")) for c in configs}) > 1
    labels = []
    for c, f in zip(configs, folders, strict=True):
        parts = [str(c.get("method")) if k == "method" else f"{k}={_text(c.get(k))}" for k in differ]
        if seeds_differ:
            parts.append(f"seed {c.get('seed')}")
        labels.append(", ".join(parts) or f.name)
    if len(set(labels)) < len(labels):  # the same settings twice: the folders tell them apart
        labels = [f"{lab} ({f.name})" if labels.count(lab) > 1 else lab for lab, f in zip(labels, folders, strict=True)]
    shared = [_text(configs[0].get(k)) if k in ("dataset", "arch") else
              f"{configs[0].get(k):,} examples" if k == "train_size" and isinstance(configs[0].get(k), int) else
              f"label noise {configs[0].get(k):g}" if k == "label_noise" and configs[0].get(k) else ""
              for k in ("dataset", "arch", "train_size", "label_noise")
              if k not in differ and configs and configs[0].get(k) is not None]
    if "method" not in differ and configs:
        shared.insert(0, str(configs[0].get("method")))
    return labels, ", ".join(s for s in shared if s)


def plot_runs(paths: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """One figure of the per-epoch curves of the run folders `paths` (run folders, quoted globs or
    folders holding run folders): loss and accuracy, training solid and validation dashed, one colour
    per run, its resets dotted in its colour. Written to `out` (.png, .pdf or .svg; default
    curves.png in the current folder); returns the path."""
    out = Path(out) if out is not None else Path("curves.png")
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out}: the figure's name must end in {', '.join(FORMATS)}")
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name such as {out / 'curves.png'}")
    folders = find_run_folders(paths)
    for f in folders:  # a torn file is named, never drawn as an empty or partial curve
        problem = folder_problem(f)
        if problem:
            raise UserError(f"{problem}; nothing plotted")
    problem = writable_problem(out.parent)
    if problem:
        raise UserError(f"--out {out}: cannot write the figure there: {problem}")
    curves = [read_curve(f) for f in folders]
    empty = [f for f, c in zip(folders, curves, strict=True) if not c]
    if empty:
        raise UserError(f"{empty[0]}: no epoch in its metrics.jsonl yet (nothing to plot)")
    configs = [read_json_dict(f / "config.json") or {} for f in folders]
    labels, shared = run_labels(configs, folders)
    colors = _colors(labels)
    fig, axes = _grid(1, 2, (f"{shared}: " if shared else "") + "per-epoch curves; solid: training, dashed: "
                      "validation, dotted: resets", size=(5.2, 3.6))
    for ax, (what, keys) in zip(axes[0], (("loss", SERIES[:2]), ("accuracy (%)", SERIES[2:])), strict=True):
        for label, rows in zip(labels, curves, strict=True):
            for (key, _, percent), style in zip(keys, ("-", "--"), strict=True):
                xs, ys, _se = mean_curve([rows], key, percent)
                if xs:
                    ax.plot(xs, ys, ls=style, lw=1.3, color=colors[label], label=label if style == "-" else None)
            _reset_lines(ax, resets(rows), color=colors[label], label=None)
        if what == "loss" and _spread(ax) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("epochs trained")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    for ax in axes[0]:
        ax.set_title(wrap(ax.get_ylabel(), 40), fontsize="medium")
    out.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, out)
    return out


@report_part("curves", 10)
def _curves_part(ctx: ReportContext) -> Part | None:
    curves = make_curves(ctx.col, ctx.plots)
    return Part("Training curves", "", plots=curves) if curves else None
