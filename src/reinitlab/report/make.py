"""`make_report(dir)`: read the run folders, write results.csv, summary.md, plots/*.png and one
self-contained report.html into the study folder, and return the Markdown for the terminal."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..rundir import atomic_write_bytes
from .collect import collect
from .html import render
from .plots import make_plots
from .results_csv import results_csv
from .tables import Tables, compute, to_markdown


@dataclass
class Report:
    markdown: str
    tables: Tables
    files: list[Path]


def make_report(root: str | Path) -> Report:
    root = Path(root)
    col = collect(root)
    tables = compute(col)
    name = ((col.study or {}).get("definition") or {}).get("name") or root.name
    title = f"Study {name}: reinitialization results"
    plots = make_plots(col, root / "plots")
    rel = [(p.relative_to(root).as_posix(), cap) for p, cap in plots]
    md = to_markdown(tables, title, rel)
    meta = []
    defn = (col.study or {}).get("definition") or {}
    if defn.get("description"):
        meta.append(defn["description"])
    for arch, b in ((col.study or {}).get("budgets") or {}).items():
        meta.append(f"budget {arch}: R={b['rounds']}, E={b['epochs']}: reinit methods and long "
                    f"{b['reinit_epochs']} epochs, baseline {b['baseline_epochs']}")
    files = [root / "results.csv", root / "summary.md", root / "report.html"]
    atomic_write_bytes(files[0], results_csv(col).encode())
    atomic_write_bytes(files[1], md.encode())
    atomic_write_bytes(files[2], render(tables, title, plots, meta).encode())
    return Report(md, tables, files + [p for p, _ in plots])
