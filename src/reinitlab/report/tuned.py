"""Tuned comparisons: every method gets its best hyper-parameters, chosen on validation data.

A study names tune axes (`tune = ["weight_decay", "augment"]`, a subset of its extra axes). For each
(method, combination, seed), where a combination is (dataset, arch, train size, label noise, the
extra axes not tuned), the run with the best validation accuracy over the grid of tune settings is
picked; test accuracy is never looked at to choose. The picked runs' test accuracies are then
compared seed-paired against a reference method, tuned the same way ("tuned lw vs tuned baseline"),
as the summary tables compare untuned runs.

Ties in validation accuracy (common: a few hundred validation images give coarse accuracies) go to
the setting that comes first in the study's order of values, so a pick never depends on test data or
on the order folders are read in. A run without a validation split (val_acc missing, val_fraction=0
on a dataset without an official one) cannot be tuned: its group is listed, not guessed.

Sensitivity (Zaidi et al. 2022: reinitialization makes results less sensitive to hyper-parameters):
per method and combination, the mean test accuracy over seeds at each grid setting, then the spread
(max − min) and the standard deviation of those means across the grid.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .collect import RunRecord, combo_settings
from .part import Part, ReportContext, report_part
from .stats import PairedDiff, mean_se, paired_vs

NO_VALIDATION = "no validation split (val_acc missing): cannot be tuned"


@dataclass(frozen=True)
class Pick:
    method: str
    combo: tuple  # (dataset, arch, train_size, label_noise, settings not tuned)
    seed: int
    setting: tuple  # the picked tune values, sorted (key, value) pairs
    val_acc: float
    test_acc: float
    candidates: int  # grid settings with a finished, validated run on this seed
    grid: int  # grid settings the method has in this combination
    run: str = ""  # the picked run's id (its folder under runs/)


@dataclass(frozen=True)
class Untunable:
    method: str
    combo: tuple
    seed: int
    reason: str


@dataclass(frozen=True)
class Sensitivity:
    method: str
    combo: tuple
    settings: int  # grid settings with at least one finished run
    spread: float  # max − min over the grid of the mean test accuracy (fraction)
    sd: float  # sample SD of those means across the grid; NaN with one setting
    best: tuple  # the setting with the highest mean test accuracy (described, never used to pick)
    worst: tuple


@dataclass
class Tuned:
    tune: list[str]
    picks: list[Pick]
    untunable: list[Untunable]
    diffs: dict[str, dict[tuple, dict[str, PairedDiff]]]  # reference -> combo -> method -> tuned diff
    sensitivity: list[Sensitivity]
    methods: list[str]
    combos: list[tuple]
    incomplete: list[Pick] = field(default_factory=list)  # picks made from part of the grid

    def by_method(self, combo: tuple) -> dict[str, dict[int, float]]:
        """method -> seed -> test accuracy of the picked run."""
        out: dict[str, dict[int, float]] = {}
        for p in self.picks:
            if p.combo == combo:
                out.setdefault(p.method, {})[p.seed] = p.test_acc
        return out


def study_tuning(study: dict | None) -> tuple[list[str], dict[str, list]]:
    """(tune axes, values of every extra axis in the study's order) from study.json; ([], {}) for a
    folder without them."""
    d = (study or {}).get("definition") or {}
    return list(d.get("tune") or []), dict(d.get("extra_axes") or {})


def combo_of(r: RunRecord, keep: Sequence[str]) -> tuple:
    a = r.axes
    return (a["dataset"], a["arch"], a["train_size"], a["label_noise"], combo_settings(r, keep))


def tune(runs: Iterable[RunRecord], tune_axes: Sequence[str], extra_axes: Sequence[str] = (),
         methods: Sequence[str] | None = None, references: Sequence[str] = ("baseline", "long"),
         order: dict[str, list] | None = None) -> Tuned:
    """Pick, compare, measure sensitivity. `extra_axes`: all of the study's extra axes (the ones
    not tuned split combinations); `order`: the study's values per tune axis (study.json's
    definition.extra_axes), for breaking ties; `methods`: display order."""
    tune_axes = list(tune_axes)
    keep = [k for k in extra_axes if k not in tune_axes]
    order = order or {}
    groups: dict[tuple, dict[tuple, list[RunRecord]]] = {}  # (method, combo) -> setting -> runs
    for r in runs:
        if not all(k in r.axes for k in tune_axes):
            continue
        setting = tuple(sorted((k, r.axes[k]) for k in tune_axes))
        groups.setdefault((r.method, combo_of(r, keep)), {}).setdefault(setting, []).append(r)

    def rank(setting: tuple) -> tuple:
        return tuple(_position(order.get(k), v) for k, v in setting)

    picks, untunable, incomplete, sens = [], [], [], []
    for (method, combo), grid in sorted(groups.items(), key=lambda kv: (kv[0][0], _combo_order(kv[0][1]))):
        finished = {s: [r for r in rs if r.status == "finished" and r.test_acc is not None] for s, rs in grid.items()}
        seeds = sorted({r.seed for rs in finished.values() for r in rs})
        for seed in seeds:
            cands = [(s, r) for s, rs in finished.items() for r in rs if r.seed == seed]
            if any((r.result or {}).get("val_acc") is None for _, r in cands):
                untunable.append(Untunable(method, combo, seed, NO_VALIDATION))
                continue
            best_val = max(r.result["val_acc"] for _, r in cands)
            s, r = min(((s, r) for s, r in cands if r.result["val_acc"] == best_val), key=lambda sr: rank(sr[0]))
            p = Pick(method, combo, seed, s, r.result["val_acc"], r.test_acc, len(cands), len(grid), r.id)
            picks.append(p)
            if p.candidates < p.grid:
                incomplete.append(p)
        means = {s: mean_se([r.test_acc for r in rs]).mean for s, rs in finished.items() if rs}
        if means:
            vals = list(means.values())
            sd = statistics.stdev(vals) if len(vals) > 1 else math.nan
            best = min(means, key=lambda s: (-means[s], rank(s)))
            worst = min(means, key=lambda s: (means[s], rank(s)))
            sens.append(Sensitivity(method, combo, len(vals), max(vals) - min(vals), sd, best, worst))

    found = sorted({m for m, _ in groups})
    shown = [m for m in (methods or []) if m in found] + [m for m in found if m not in (methods or [])]
    combos = sorted({c for _, c in groups}, key=_combo_order)
    result = Tuned(tune_axes, picks, untunable, {}, sens, shown, combos, incomplete)
    for ref in references:
        per = {}
        for combo in combos:
            values = result.by_method(combo)
            if ref not in values:
                continue
            row = paired_vs(values, ref, shown)
            if row:
                per[combo] = row
        if per:
            result.diffs[ref] = per
    return result


def _position(values: list | None, v: Any) -> tuple:
    if values and v in values:
        return (0, values.index(v))
    return (1, repr(v))


def _combo_order(c: tuple):
    d, a, n, p, s = c
    return (str(d), str(a), (0, n) if isinstance(n, (int, float)) else (1, str(n)), p, repr(s))


def setting_text(setting: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting)


def combo_text(combo: tuple) -> str:
    d, a, n, p, s = combo
    return f"{d}, {a}, {n} examples, noise {p:g}" + "".join(f", {k}={v}" for k, v in s)


def lines(t: Tuned) -> list[str]:
    """The section's explanation and its caveats, in words."""
    grid = max((p.grid for p in t.picks), default=0)
    out = [(f"Tuned over {' × '.join(t.tune)}: for each method, combination and seed the run with the best "
            f"validation accuracy among the grid's settings ({grid} here) is picked; test accuracy is never used "
            "to choose. The picked runs are compared seed-paired.")]
    if t.untunable:
        groups = sorted({(u.method, u.combo) for u in t.untunable}, key=lambda mc: (mc[0], _combo_order(mc[1])))
        out.append(f"{len(t.untunable)} (method, combination, seed) group(s) cannot be tuned: their runs have no "
                   f"validation split (val_fraction=0 on a dataset without an official one), e.g. {groups[0][0]} at "
                   f"{combo_text(groups[0][1])}.")
    if t.incomplete:
        p = t.incomplete[0]
        out.append(f"{len(t.incomplete)} pick(s) were made from part of the grid (runs unfinished or failed), e.g. "
                   f"{p.method} seed {p.seed} at {combo_text(p.combo)}: {p.candidates} of {p.grid} settings.")
    return out


def diff_table(t: Tuned, ref: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per combination, tuned method − tuned reference, points [95% interval] (n)."""
    methods = [m for m in t.methods if m != ref]
    rows = []
    for combo, row in (t.diffs.get(ref) or {}).items():
        rows.append([combo_text(combo)] + [_diff(row.get(m)) for m in methods])
    return ["combination"] + [f"tuned {m} − tuned {ref}" for m in methods], rows


def sensitivity_table(t: Tuned) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per method and combination, spread and SD of test accuracy over the grid."""
    rows = []
    for m in t.methods:
        for s in (x for x in t.sensitivity if x.method == m):
            sd = "n/a" if math.isnan(s.sd) else f"{100 * s.sd:.2f}"
            rows.append([m, combo_text(s.combo), str(s.settings), f"{100 * s.spread:.2f}", sd,
                         setting_text(s.best), setting_text(s.worst)])
    return ["method", "combination", "settings", "max − min (points)", "SD (points)", "best (test)", "worst (test)"], rows


def picks_table(t: Tuned) -> tuple[list[str], list[list[str]]]:
    """(header, rows): how often each setting was picked, per method."""
    counts: dict[tuple[str, tuple], int] = {}
    for p in t.picks:
        counts[(p.method, p.setting)] = counts.get((p.method, p.setting), 0) + 1
    rows = [[m, setting_text(s), str(n)] for (m, s), n in sorted(counts.items(), key=lambda kv: (
        t.methods.index(kv[0][0]) if kv[0][0] in t.methods else len(t.methods), -kv[1], repr(kv[0][1])))]
    return ["method", "picked setting (by validation)", "picks"], rows


def _diff(d: PairedDiff | None) -> str:
    if d is None:
        return ""
    if d.n < 2:
        return f"{100 * d.mean:+.2f} (1 seed)"
    return f"{100 * d.mean:+.2f} [{100 * d.lo:+.2f}, {100 * d.hi:+.2f}] ({d.n})"


def accuracy_table(t: Tuned) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per combination, each method's test accuracy of its picked runs, mean ± SE (n)."""
    rows = []
    for combo in t.combos:
        by = t.by_method(combo)
        if not by:
            continue
        cells = []
        for m in t.methods:
            s = mean_se(list(by[m].values())) if m in by else None
            cells.append("" if s is None else f"{100 * s.mean:.2f} (1)" if s.n < 2
                         else f"{100 * s.mean:.2f} ± {100 * s.se:.2f} ({s.n})")
        rows.append([combo_text(combo)] + cells)
    return ["combination"] + [f"tuned {m}" for m in t.methods], rows


def _spread_line(t: Tuned) -> str:
    """Zaidi et al.'s reading in one sentence: each method's spread over the grid, averaged over
    the combinations that have more than one setting."""
    means = []
    for m in t.methods:
        spreads = [s.spread for s in t.sensitivity if s.method == m and s.settings > 1]
        if spreads:
            means.append(f"{m} {100 * sum(spreads) / len(spreads):.2f}")
    if not means:
        return ""
    return ("Sensitivity to the tuned settings, max − min of test accuracy over the grid (points, mean over "
            f"combinations): {', '.join(means)}; smaller is less sensitive.")


def _compare_lines(t: Tuned, method: str = "lw") -> list[str]:
    out = []
    for ref in ("baseline", "long"):
        for combo, row in (t.diffs.get(ref) or {}).items():
            if method in row:
                out.append(f"**tuned {method} − tuned {ref}**: {_diff(row[method])} points at {combo_text(combo)}.")
    return out


def tuned_part(col) -> Part | None:
    """The report's Tuned comparison, for a study with `tune` (None without): the picks' test
    accuracies, the tuned differences vs tuned baseline and long, sensitivity, and what was picked."""
    tune_axes, order = study_tuning(col.study)
    if not tune_axes:
        return None
    t = tune(col.runs, tune_axes, col.extra_axes, col.methods, order=order)
    title = "Tuned comparison"
    if not t.picks:
        why = ("no run could be tuned: " + NO_VALIDATION if t.untunable
               else "no finished runs with every tune axis yet")
        return Part(title, f"The study tunes over {' × '.join(tune_axes)}, but {why}.", lines=lines(t)[1:])
    intro = lines(t)[0] + (" Differences are tuned method − tuned reference in test-accuracy points with the "
                           "seed-paired 95% t-interval (n seeds).")
    tables = [("Test accuracy of the picked runs (%)", "mean ± SE (seeds)", *accuracy_table(t))]
    for ref in ("baseline", "long"):
        if ref in t.diffs:
            tables.append((f"Tuned methods vs tuned {ref} (points)", "", *diff_table(t, ref)))
    tables.append(("Sensitivity over the grid", "per method and combination: the mean test accuracy over seeds at "
                   "each setting, then its max − min and SD across settings (points); best and worst by test "
                   "accuracy, for reading only: the picks use validation", *sensitivity_table(t)))
    tables.append(("Settings picked by validation accuracy", "", *picks_table(t)))
    body = _compare_lines(t) + [x for x in [_spread_line(t)] if x] + lines(t)[1:]
    return Part(title, intro, tables, lines=body)


@report_part("tuned", 40)
def _tuned_part(ctx: ReportContext) -> Part | None:
    return tuned_part(ctx.col)
