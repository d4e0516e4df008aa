"""The report's settings block: every run setting that all the runs share (read from their resolved
config.json files, so a setting left at its default is shown too), the settings that differ and
why, and the budget (study.json's budgets where a study wrote them, and the epochs each method
trained, from result.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from .collect import Collected, hashable

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


def _order(keys) -> list[str]:
    fields = TrainConfig.field_names()
    return sorted(keys, key=lambda k: (fields.index(k) if k in fields else len(fields), k))


def _epochs_text(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def settings_of(col: Collected) -> Settings:
    configs = [r.config for r in col.runs if r.config]
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
            why = ("an axis: " if k in axes or k in ("dataset", "arch", "train_size", "label_noise") else "") + shown
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


def settings_markdown(s: Settings) -> list[str]:
    out = ["## Settings", ""]
    if s.shared:
        out += ["Shared by every run: " + ", ".join(f"{k}={v}" for k, v in s.shared) + ".", ""]
    if s.varying:
        out += ["Differ between runs: " + "; ".join(f"{k} ({why})" for k, why in s.varying) + ".", ""]
    out += [f"- budget {line}" for line in s.budget] + ([""] if s.budget else [])
    return out
