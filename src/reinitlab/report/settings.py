"""The report's settings block: every run setting that all the runs share (read from their resolved
config.json files, so a setting left at its default is shown too), the settings that differ and
why, and the budget (study.json's budgets where a study wrote them, and the epochs each method
trained, from result.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..train.config import TrainConfig
from .collect import Collected, hashable
from .part import Part

# Keys that differ by design; said once instead of listing their values.
PER_RUN = {"method": "per method", "method_options": "per method", "seed": "per seed"}


@dataclass
class Settings:
    shared: list[tuple[str, str]]  # (key, value as text), in TrainConfig's field order
    varying: list[tuple[str, str]]  # (key, why or how it varies)
    budget: list[str]


def value_text(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


# What a reader compares first between studies; the rest follow in TrainConfig's field order.
FIRST = ("epochs", "rounds", "batch_size", "width", "lr", "weight_decay", "momentum", "augment", "precision",
         "label_smoothing", "warmup", "patience", "device")


def _order(keys) -> list[str]:
    fields = [*FIRST, *(f for f in TrainConfig.field_names() if f not in FIRST)]
    return sorted(keys, key=lambda k: (fields.index(k) if k in fields else len(fields), k))


def _epochs_text(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def settings_of(col: Collected) -> Settings:
    # the runs that trained (finished or diverged) wrote a resolved config; a pending run's is a plan
    configs = [r.config for r in col.runs if r.config and r.result] or [r.config for r in col.runs if r.config]
    keys = _order({k for c in configs for k in c})
    shared, varying = [], []
    axes = set(col.extra_axes)
    for k in keys:
        values = {repr(hashable(c.get(k))): c.get(k) for c in configs}
        if len(values) == 1:
            shared.append((k, value_text(next(iter(values.values())))))
            continue
        if k in PER_RUN:
            why = PER_RUN[k]
        elif k == "data_seed" and all(c.get("data_seed") == c.get("seed") for c in configs):
            why = "= seed"
        else:
            texts = sorted({value_text(v) for v in values.values()}, key=lambda t: (len(t), t))
            shown = ", ".join(texts[:6]) + (", ..." if len(texts) > 6 else "")
            is_axis = not col.loose and (k in axes or k in ("dataset", "arch", "train_size", "label_noise"))
            why = ("an axis: " if is_axis else "") + shown
        varying.append((k, why))
    budget = []
    for arch, b in ((col.study or {}).get("budgets") or {}).items():
        budget.append(f"{arch}: R={b['rounds']} rounds of E={b['epochs']} epochs; the reinit methods and long train "
                      f"{b['reinit_epochs']} epochs, baseline {b['baseline_epochs']}")
    trained: dict[str, list[int]] = {}
    for r in col.runs:
        e = (r.result or {}).get("epochs_total") if r.status == "finished" else None
        if isinstance(e, int):
            trained.setdefault(r.method, []).append(e)
    if trained:
        budget.append("epochs trained: " + ", ".join(f"{m} {_epochs_text(trained[m])}" for m in col.methods
                                                     if m in trained))
    return Settings(shared, varying, budget)


PAIRS_PER_ROW = 3  # (setting, value) pairs side by side: a short, screen-wide table


def settings_part(s: Settings) -> Part:
    """The settings as a report part: the shared ones as a table of (setting, value) pairs, the
    ones that differ and the budget as lines."""
    rows = []
    for i in range(0, len(s.shared), PAIRS_PER_ROW):
        pairs = s.shared[i:i + PAIRS_PER_ROW]
        rows.append([x for k, v in pairs for x in (k, v)] + ["", ""] * (PAIRS_PER_ROW - len(pairs)))
    tables = [("Shared by every run", "from the runs' resolved config.json (defaults included)",
               ["setting", "value"] * PAIRS_PER_ROW, rows)] if rows else []
    by_design = [k for k, why in s.varying if why in ("per method", "per seed", "= seed")]
    other = [f"**{k}** ({why})" for k, why in s.varying if k not in by_design]
    lines = (["Differ between runs: " + ", ".join(other) + "." if other else "No setting differs between the "
              "runs besides the method and the seed."] + [f"Budget {line}." for line in s.budget])
    return Part("Settings", "", tables, [], lines)
