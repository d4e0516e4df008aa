"""`make_report(dir)`: read the run folders, write results.csv, summary.md, plots/*.png and one
self-contained report.html into the study folder, and return the Markdown for the terminal.

After the summary tables and plots come the "why" parts (why.py: one per topic the analyses declare,
where the runs have its numbers) and, last, the verdict on the paper's claims (claims.py) when the
study has lw runs. The provenance of the runs (provenance.py) comes right after the tables, and a
warning under the title when the runs were made by different code or machines."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..rundir import atomic_write_bytes
from .catalog import build_catalog
from .claims import LW, evaluate, verdict_part
from .collect import collect
from .html import render
from .part import Part, part_markdown
from .plots import make_plots
from .provenance import StudyProvenance, provenance_part, summarize as summarize_provenance
from .results_csv import results_csv
from .tables import Tables, compute, to_markdown
from .values import load as load_values
from .why import Why, compute as compute_why, why_parts


@dataclass
class Report:
    markdown: str
    tables: Tables
    files: list[Path]
    why: Why | None = None
    claims: list | None = None  # claims.Claim, when the study has lw runs
    provenance: StudyProvenance | None = None


def make_report(root: str | Path) -> Report:
    root = Path(root)
    col = collect(root)
    tables = compute(col)
    name = ((col.study or {}).get("definition") or {}).get("name") or root.name
    title = f"Study {name}: reinitialization results"
    plots = make_plots(col, root / "plots")
    rel = [(p.relative_to(root).as_posix(), cap) for p, cap in plots]
    md = to_markdown(tables, title, rel)
    data = load_values(col)
    catalog = build_catalog()
    why = compute_why(col, data, catalog)
    parts: list[Part] = []
    why_plots: list[Path] = []
    if why.topics:
        from .why_plots import make_why_plots
        figs = make_why_plots(why, col.runs, root / "plots")
        why_plots = [p for fs in figs.values() for p, _ in fs]
        parts += why_parts(why, figs)
    claims = evaluate(col, data, catalog) if any(r.method == LW for r in col.runs) else None
    if claims is not None:
        parts.append(verdict_part(claims, has_long=any(r.method == "long" and r.status == "finished"
                                                       for r in col.runs)))
    prov = summarize_provenance(col)
    prov_part = provenance_part(prov)
    if prov_part is not None:  # after the summary tables, before the why parts: the verdict stays last
        parts.insert(0, prov_part)
    md = md.rstrip("\n") + "\n\n" + "\n".join(part_markdown(p, root) for p in parts) if parts else md
    if prov.mixed:  # and on top, right under the title
        head, _, rest = md.partition("\n")
        md = f"{head}\n\n> **{prov.warning()}**\n{rest}"
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
    atomic_write_bytes(files[2], render(tables, title, plots, meta, parts, warnings=[prov.warning()] if prov.mixed
                                        else []).encode())
    return Report(md, tables, files + [p for p, _ in plots] + why_plots, why, claims, prov)
