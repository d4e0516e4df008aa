"""Which runs the claims verdict reads, and the regime they are named by.

A study with `tune` is judged on its tuned runs: per (method, combination, seed) the run picked by
validation accuracy (tuned.py), its tune axes dropped from its combination, so "tuned lw vs tuned
baseline" is what the verdict pools. A study whose budgets vary within a combination (`rounds` or
`epochs` axes) is judged over its budgets: per (combination without the budget, seed) the mean of
each method over the budgets both it and the reference ran, one pair per seed, never one per budget
(baseline ignores R, so its runs at two budgets are one computation counted once). Otherwise the
verdict comes from the study's fixed budget. Other extra axes split combinations as the tables do.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .budget import BUDGET_AXES, budget_of
from .collect import Collected, Combo
from .tuned import study_tuning, tune


@dataclass(frozen=True)
class Regime:
    text: str  # e.g. "fixed budget R=2, E=10", "tuned over weight_decay; over budgets R=1, R=2 (E=5)"
    merge_axes: tuple[str, ...] = ()  # extra axes averaged per seed before pooling (the budget)

    def merge(self, combo: Combo) -> Combo:
        """The combination a pair counts in: without the axes averaged over."""
        if not self.merge_axes:
            return combo
        return combo._replace(settings=tuple((k, v) for k, v in combo.settings if k not in self.merge_axes))


FIXED = Regime("the runs as they are")


def _budgets_text(budgets: dict[str, set]) -> str:
    """"R=2, E=10", or per architecture where they differ."""
    def one(bs):
        es = sorted({e for _, e in bs})
        rs = ", ".join(f"R={r}" for r in sorted({r for r, _ in bs}))
        return f"{rs}, E={es[0]}" if len(es) == 1 else ", ".join(f"R={r}, E={e}" for r, e in sorted(bs))
    distinct = {frozenset(bs) for bs in budgets.values()}
    if len(distinct) == 1:
        return one(next(iter(distinct)))
    return "; ".join(f"{arch} {one(bs)}" for arch, bs in sorted(budgets.items()))


def verdict_runs(col: Collected) -> tuple[Collected, Regime]:
    """The study as the verdict reads it (tuned picks where it tunes) and its regime."""
    tune_axes, order = study_tuning(col.study)
    parts = []
    if tune_axes:
        t = tune(col.runs, tune_axes, col.extra_axes, col.methods, order=order)
        if t.picks:
            by_id = {r.id: r for r in col.runs}
            picked = [by_id[p.run] for p in t.picks]
            runs = [dataclasses.replace(r, axes={k: v for k, v in r.axes.items() if k not in tune_axes})
                    for r in picked]
            col = dataclasses.replace(col, runs=runs, extra_axes=[k for k in col.extra_axes if k not in tune_axes])
            text = f"tuned over {', '.join(tune_axes)} (picked by validation accuracy per method and seed)"
            if t.untunable:
                text += f", {len(t.untunable)} group(s) without a validation split left out"
            parts.append(text)
        else:
            parts.append(f"untuned: the study tunes over {', '.join(tune_axes)} but no run could be picked "
                         "(no validation split or nothing finished)")
    finished = [r for r in col.runs if r.status == "finished"]
    budgets: dict[str, set] = {}
    for r in finished:
        b = budget_of(r)
        if b is not None:
            budgets.setdefault(r.axes["arch"], set()).add(b)
    varying = [k for k in BUDGET_AXES if k in col.extra_axes]
    if varying and any(len(bs) > 1 for bs in budgets.values()):
        parts.append(f"over budgets {_budgets_text(budgets)} (averaged per seed)")
        merge = tuple(varying)
    else:
        merge = ()
        if budgets:
            parts.append(f"fixed budget {_budgets_text(budgets)}")
    patience = sorted({int(r.config.get("patience") or 0) for r in finished} - {0})
    if patience:
        parts.append(f"rounds until training accuracy is 100% for {', '.join(map(str, patience))} epochs "
                     "(at most E)")
    others = [k for k in col.extra_axes if k not in merge and k not in BUDGET_AXES]
    if others:
        parts.append(f"{', '.join(others)} split{'s' if len(others) == 1 else ''} combinations")
    return col, Regime("; ".join(parts) or FIXED.text, merge)
