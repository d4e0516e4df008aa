"""results.csv: one row per run, every status included, with the run's config flattened into
columns (method options as method_options.<name>), so any table can be rebuilt in a spreadsheet or
pandas without reading the run folders."""
from __future__ import annotations

import csv
import io
import json

from .collect import Collected, RunRecord

FIRST = ["run", "status", "dataset", "arch", "train_size", "label_noise", "method", "seed"]
RESULT = ["test_acc", "val_acc", "train_acc", "rounds", "epochs_total", "seconds", "train_images_per_second"]
TAIL = ["diverged_round", "diverged_epoch", "error"]


def _row(r: RunRecord) -> dict:
    row = {"run": r.id, "status": r.status, **{k: r.axes.get(k) for k in FIRST[2:]}}
    res = r.result or {}
    for k in RESULT:
        row[k] = res.get(k)
    at = res.get("diverged_at") or {}
    row["diverged_round"], row["diverged_epoch"] = at.get("round"), at.get("epoch")
    row["error"] = ((r.error or {}).get("reason") or "").splitlines()[0] if r.error else None
    for k, v in r.config.items():
        if k in FIRST:
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
    rows = [_row(r) for r in col.runs]
    extra = sorted({k for row in rows for k in row} - set(FIRST + RESULT + TAIL))
    header = FIRST + RESULT + TAIL + extra
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_cell(row.get(k)) for k in header])
    return buf.getvalue()
