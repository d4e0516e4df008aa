"""The budget frontier: test accuracy against epochs trained, one series per method over a study's
budgets (R rounds after round 0 of E epochs each), and LW minus the compute-matched `long` at each
budget, seed-paired.

A frame is one (dataset, arch, train size, label noise, other extra axes): everything but `rounds`
and `epochs` fixed. At the budget (R, E) a reinit method and `long` train (R+1)·E epochs, `baseline`
E. The x value of a point is that nominal schedule; with `patience` (until convergence) rounds may
end early, so each point also carries the mean epochs its runs actually trained.

`baseline` ignores R, and `long` depends on R and E only through (R+1)·E: their runs at two budgets
with the same schedule are one computation trained twice, so their series keeps one point per
schedule (that of the smallest budget) instead of counting the same seeds twice.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..util.errors import UserError
from .collect import RunRecord, combo_settings
from .part import Part, ReportContext, report_part
from .stats import MeanSE, PairedDiff, mean_se, paired_diff

BUDGET_AXES = ("rounds", "epochs")
BEATS, TIES, LOSES, ONE_SEED = "beats", "ties", "loses", "one seed"


@dataclass(frozen=True)
class Point:
    rounds: int
    epochs: int  # per round (E)
    epochs_trained: int  # the method's schedule at this budget: (R+1)*E, E for baseline
    stat: MeanSE  # test accuracy (fraction) over the seeds
    seeds: tuple[int, ...]
    actual_epochs: float  # mean epochs the runs trained (less than the schedule with patience)


@dataclass
class Frame:
    """One (dataset, arch, train_size, label_noise, settings): `settings` are the extra axes other
    than rounds and epochs, sorted (key, value) pairs."""

    dataset: str
    arch: str
    train_size: Any
    label_noise: float
    settings: tuple
    budgets: list[tuple[int, int]]  # (R, E), sorted
    series: dict[str, list[Point]]  # method -> points, by epochs trained then R
    diffs: dict[tuple[int, int], PairedDiff] = field(default_factory=dict)  # method - reference per budget
    verdicts: dict[tuple[int, int], str] = field(default_factory=dict)  # BEATS, TIES, LOSES, ONE_SEED
    method: str = "lw"
    reference: str = "long"
    sentence: str = ""

    @property
    def title(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.settings)
        return f"{self.dataset}, {self.arch}, {self.train_size} examples, noise {self.label_noise:g}{extra}"


def budget_of(r: RunRecord) -> tuple[int, int] | None:
    """(R, E) of a run: its axes where rounds/epochs are axes, else its config."""
    rounds = r.axes.get("rounds", r.config.get("rounds"))
    epochs = r.axes.get("epochs", r.config.get("epochs"))
    if rounds is None or epochs is None:
        return None
    return int(rounds), int(epochs)


def schedule_epochs(method: str, rounds: int, epochs: int) -> int:
    """Epochs a method trains at the budget (R, E), from the method's own schedule."""
    from ..core.method import make_method
    try:
        return sum(make_method(method).epochs(rounds, epochs))
    except UserError:  # a method this version does not know (an old folder): the reinit schedule
        return (rounds + 1) * epochs


def _resets(method: str) -> bool:
    from ..core.method import make_method
    try:
        return make_method(method).resets
    except UserError:
        return True


def frontier(runs: Iterable[RunRecord], extra_axes: Sequence[str] = (), methods: Sequence[str] | None = None,
             method: str = "lw", reference: str = "long") -> list[Frame]:
    """A frame per (dataset, arch, size, noise, other extra axes) with finished runs. `extra_axes`:
    the study's extra axes (Collected.extra_axes); `methods`: display order (default: as found)."""
    other = [k for k in extra_axes if k not in BUDGET_AXES]
    groups: dict[tuple, dict[str, dict[tuple[int, int], dict[int, RunRecord]]]] = {}
    for r in runs:
        b = budget_of(r)
        if r.status != "finished" or r.test_acc is None or b is None:
            continue
        a = r.axes
        key = (a["dataset"], a["arch"], a["train_size"], a["label_noise"], combo_settings(r, other))
        groups.setdefault(key, {}).setdefault(r.method, {}).setdefault(b, {})[r.seed] = r
    frames = []
    for key in sorted(groups, key=_frame_order):
        by_method = groups[key]
        order = [m for m in (methods or []) if m in by_method] + sorted(m for m in by_method
                                                                        if m not in (methods or []))
        budgets = sorted({b for m in by_method.values() for b in m})
        series = {m: _series(m, by_method[m]) for m in order}
        f = Frame(*key, budgets=budgets, series=series, method=method, reference=reference)
        for b in budgets:
            mine, ref = by_method.get(method, {}).get(b, {}), by_method.get(reference, {}).get(b, {})
            common = sorted(set(mine) & set(ref))
            if common:
                d = paired_diff([mine[s].test_acc for s in common], [ref[s].test_acc for s in common])
                f.diffs[b] = d
                f.verdicts[b] = verdict(d)
        f.sentence = sentence(f)
        frames.append(f)
    return frames


def _series(method: str, by_budget: dict[tuple[int, int], dict[int, RunRecord]]) -> list[Point]:
    points, seen = [], set()
    for (R, E) in sorted(by_budget):
        x = schedule_epochs(method, R, E)
        if not _resets(method):
            if x in seen:  # the same computation as a point already kept
                continue
            seen.add(x)
        seeds = sorted(by_budget[(R, E)])
        rs = [by_budget[(R, E)][s] for s in seeds]
        actual = [float(_or((r.result or {}).get("epochs_total"), x)) for r in rs]
        points.append(Point(R, E, x, mean_se([r.test_acc for r in rs]), tuple(seeds), sum(actual) / len(actual)))
    return sorted(points, key=lambda p: (p.epochs_trained, p.rounds))


def _or(value, default):
    return default if value is None else value


def _frame_order(key: tuple):
    d, a, n, p, s = key
    return (str(d), str(a), (0, n) if isinstance(n, (int, float)) else (1, str(n)), p, repr(s))


def verdict(d: PairedDiff) -> str:
    """BEATS or LOSES where the seed-paired 95% interval excludes 0, TIES where it holds 0."""
    if d.n < 2 or math.isnan(d.lo):
        return ONE_SEED
    return BEATS if d.lo > 0 else LOSES if d.hi < 0 else TIES


def budget_name(f: Frame, b: tuple[int, int]) -> str:
    """"R=2 (30 epochs)", with E where the frame's budgets differ in E."""
    R, E = b
    show_e = len({e for _, e in f.budgets}) > 1
    return f"R={R}" + (f", E={E}" if show_e else "") + f" ({schedule_epochs(f.method, R, E)} epochs)"


def sentence(f: Frame) -> str:
    """One sentence: at which budgets the method beats the reference, ties or loses."""
    m, ref = f.method, f.reference
    if not f.diffs:
        return f"{f.title}: no budget has both {m} and {ref} finished on a common seed."
    groups = {v: [b for b in f.budgets if f.verdicts.get(b) == v] for v in (BEATS, TIES, LOSES, ONE_SEED)}

    def names(bs):
        return ", ".join(budget_name(f, b) for b in bs) if bs else "none"

    n = sorted({d.n for d in f.diffs.values()})
    seeds = f"{n[0]} seed{'s' if n[0] != 1 else ''}" if len(n) == 1 else f"{n[0]}-{n[-1]} seeds"
    if groups[ONE_SEED] and not any(groups[v] for v in (BEATS, TIES, LOSES)):
        return (f"{f.title}: with one seed per budget no interval can be formed; {m} − {ref} is "
                + ", ".join(f"{100 * f.diffs[b].mean:+.2f} points at {budget_name(f, b)}" for b in groups[ONE_SEED])
                + ".")
    text = (f"{f.title}: {m} beats {ref} at {names(groups[BEATS])}; ties at {names(groups[TIES])}; loses at "
            f"{names(groups[LOSES])}")
    if groups[ONE_SEED]:
        text += f" ({names(groups[ONE_SEED])}: one seed, no interval)"
    missing = [b for b in f.budgets if b not in f.diffs]
    if missing:
        text += f"; not compared at {names(missing)} (no common seed)"
    return text + f" (seed-paired 95% intervals, {seeds})."


def table(f: Frame) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per budget, test accuracy (percent, ± SE (n)) per method at that
    budget, then the paired difference method − reference in points with its 95% interval."""
    methods = list(f.series)
    header = ["budget"] + methods + [f"{f.method} − {f.reference} (points)", "verdict"]
    rows = []
    for b in f.budgets:
        row = [budget_name(f, b)]
        for m in methods:
            p = _point_at(f, m, b)
            row.append("" if p is None else _acc(p.stat))
        d = f.diffs.get(b)
        row.append("" if d is None else _diff(d))
        row.append(f.verdicts.get(b, ""))
        rows.append(row)
    return header, rows


def _point_at(f: Frame, method: str, b: tuple[int, int]) -> Point | None:
    """The method's point at budget b; for baseline and long the kept point of the same schedule."""
    x = schedule_epochs(method, *b)
    for p in f.series.get(method, []):
        if (p.rounds, p.epochs) == b:
            return p
    if not _resets(method):
        return next((p for p in f.series.get(method, []) if p.epochs_trained == x), None)
    return None


def _acc(s: MeanSE) -> str:
    if s.n < 2:
        return f"{100 * s.mean:.2f} (1)"
    return f"{100 * s.mean:.2f} ± {100 * s.se:.2f} ({s.n})"


def _diff(d: PairedDiff) -> str:
    if d.n < 2:
        return f"{100 * d.mean:+.2f} (1 seed)"
    return f"{100 * d.mean:+.2f} [{100 * d.lo:+.2f}, {100 * d.hi:+.2f}] ({d.n})"


def plot(frames: list[Frame], path: Path, colors: dict[str, Any] | None = None) -> Path | None:
    """One row per frame: test accuracy (mean ± SE over seeds) against epochs trained per method,
    and the paired difference method − reference with its 95% interval at each budget."""
    frames = [f for f in frames if len(f.budgets) > 1]
    if not frames:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    methods = list(dict.fromkeys(m for f in frames for m in f.series))
    if colors is None:
        cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
        colors = {m: cmap(i % cmap.N) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(frames), 2, figsize=(11.5, 3.4 * len(frames) + 0.8), squeeze=False)
    n_seeds = sorted({p.stat.n for f in frames for ps in f.series.values() for p in ps})
    seeds = str(n_seeds[0]) if len(n_seeds) == 1 else f"{n_seeds[0]}-{n_seeds[-1]}"
    fig.suptitle(f"Budget frontier: error bars are ± SE over {seeds} seeds (left), 95% intervals of the "
                 "seed-paired difference (right)", fontsize="medium")
    for (ax, dx), f in zip(axes, frames, strict=True):
        for m, points in f.series.items():
            xs = [p.epochs_trained for p in points]
            ys = [100 * p.stat.mean for p in points]
            es = [0.0 if math.isnan(p.stat.se) else 100 * p.stat.se for p in points]
            style = {"marker": "s", "ms": 6, "ls": "--"} if not _resets(m) else {"marker": "o", "ms": 4}
            ax.errorbar(xs, ys, yerr=es, capsize=3, label=m, color=colors.get(m), **style)
        ax.set_title(f.title, fontsize="small")
        ax.set_xlabel("epochs trained")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize="x-small", frameon=False)
        bs = [b for b in f.budgets if b in f.diffs]
        xs = [schedule_epochs(f.method, *b) for b in bs]
        ys = [100 * f.diffs[b].mean for b in bs]
        lo = [0.0 if math.isnan(f.diffs[b].lo) else 100 * (f.diffs[b].mean - f.diffs[b].lo) for b in bs]
        hi = [0.0 if math.isnan(f.diffs[b].hi) else 100 * (f.diffs[b].hi - f.diffs[b].mean) for b in bs]
        dx.axhline(0.0, color="0.6", lw=1)
        dx.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, color=colors.get(f.method), ls="none")
        for x, y, b in zip(xs, ys, bs, strict=True):
            dx.annotate(f"R={b[0]}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize="x-small")
        dx.set_title(f"{f.method} − {f.reference} at matching compute", fontsize="small")
        dx.set_xlabel("epochs trained")
        dx.set_ylabel("difference (points)")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _colors(methods: Sequence[str]) -> dict[str, Any]:
    """The colours the report's other plots give the same methods (tab10 in the study's order)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _file_name(f: Frame) -> str:
    text = "_".join(str(x) for x in (f.dataset, f.arch, f.train_size, f"noise{f.label_noise:g}",
                                     *(f"{k}={v}" for k, v in f.settings)))
    return "budget_" + "".join(c if c.isalnum() or c in "=.-_" else "-" for c in text) + ".png"


def budget_part(col, plots: Path) -> Part | None:
    """The report's Budget frontier, for a study with more than one budget in some frame (None
    otherwise): per frame the one-sentence verdict, the table and a plot written into `plots`."""
    frames = [f for f in frontier(col.runs, col.extra_axes, col.methods) if len(f.budgets) > 1]
    if not frames:
        return None
    colors = _colors(col.methods)
    figures, tables = [], []
    for f in frames:
        path = plot([f], plots / _file_name(f), colors)
        if path is not None:
            figures.append((path, f"Budget frontier: {f.title}"))
        tables.append((f.title, "", *table(f)))
    intro = ("At the budget (R, E) every reinit method and long train (R+1)·E epochs (R reset rounds after round 0, "
             "E epochs each), baseline E: each budget is compute-matched. Test accuracy is mean ± SE (seeds); "
             "lw − long is the seed-paired difference in points with its 95% t-interval: lw beats long where the "
             "interval lies above 0, loses where it lies below, ties where it holds 0. baseline and long runs that "
             "repeat the same schedule at two budgets are one computation and count once.")
    patience = [f for f in frames for ps in f.series.values() for p in ps if p.actual_epochs < p.epochs_trained - 1e-9]
    notes = ["With patience, rounds end early: a point's epochs are its schedule, the runs trained fewer."] \
        if patience else []
    return Part("Budget frontier", intro, tables, figures, lines=[f.sentence for f in frames] + notes)


@report_part("budget", 30)
def _budget_part(ctx: ReportContext) -> Part | None:
    return budget_part(ctx.col, ctx.plots)
