"""results.csv: one row per run, every status included, with the run's config flattened into
columns (method options as method_options.<name>), so any table can be rebuilt in a spreadsheet or
pandas without reading the run folders.

The study's extra axes follow the six axes as columns named by their key (`rounds`,
`weight_decay`). Where an axis shares its name with a result column, the result's value moves to
`result.<name>`: with a rounds axis, `rounds` is the budget's R of every run and `result.rounds` the
rounds a run trained (0 for baseline and long)."""
from __future__ import annotations

import csv
import io
import json

from .collect import Collected, RunRecord

FIRST = ["run", "status", "dataset", "arch", "train_size", "label_noise", "method", "seed"]
RESULT = ["test_acc", "val_acc", "train_acc", "rounds", "epochs_total", "seconds", "train_images_per_second"]
TAIL = ["diverged_round", "diverged_epoch", "error"]


def _row(r: RunRecord, extra: list[str] = ()) -> dict:
    row = {"run": r.id, "status": r.status, **{k: r.axes.get(k) for k in FIRST[2:]}}
    for k in extra:
        row[k] = r.axes.get(k)
    res = r.result or {}
    for k in RESULT:
        row[f"result.{k}" if k in extra else k] = res.get(k)
    at = res.get("diverged_at") or {}
    row["diverged_round"], row["diverged_epoch"] = at.get("round"), at.get("epoch")
    row["error"] = ((r.error or {}).get("reason") or "").splitlines()[0] if r.error else None
    for k, v in r.config.items():
        if k in FIRST or k in extra:  # an extra axis has its column already
            continue
        if isinstance(v, dict):
            for ok, ov in v.items():
                row[f"{k}.{ok}"] = ov
        else:
            row[f"config.{k}" if k in RESULT else k] = v
    return row


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def results_csv(col: Collected) -> str:
    axes = list(col.extra_axes)
    rows = [_row(r, axes) for r in col.runs]
    result = [f"result.{k}" if k in axes else k for k in RESULT]
    rest = sorted({k for row in rows for k in row} - set(FIRST + axes + result + TAIL))
    header = FIRST + axes + result + TAIL + rest
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_cell(row.get(k)) for k in header])
    return buf.getvalue()
