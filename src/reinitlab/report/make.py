"""`make_report(dir)`: read the run folders, write results.csv, summary.md, plots/*.png and one
self-contained report.html into the study folder, and return the Markdown for the terminal.
`make_report([runA, runB, ...], out)`: the same for loose run folders (several `train` outputs, a
folder holding them, quoted globs), with a table of the runs side by side.

The report answers first: the answer in sentences (answer.py), the settings (settings.py), for
loose runs the runs compared (compare.py), then the summary tables, the plots and the training
curves (curves.py). After them come the "why" parts (why.py: one per topic the analyses declare,
where the runs have its numbers), the budget frontier, tuned comparison and decision tree (budget.py,
tuned.py, tree.py: each where the study has what it needs) and, last, the verdict on the paper's
claims (claims.py) when the
study has lw runs. The provenance of the runs (provenance.py) comes right after the tables, and a
warning under the title when the runs were made by different code or machines."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..rundir import atomic_write_bytes
from .budget import budget_part
from .catalog import build_catalog
from .claims import LW, evaluate, verdict_part
from .answer import answer, answer_part
from .collect import Collected, collect, collect_runs, find_run_folders, is_study_folder
from .compare import runs_part
from .curves import make_curves
from .html import render
from .part import Part, part_markdown
from .plots import make_plots
from .provenance import StudyProvenance, provenance_part, summarize as summarize_provenance
from .results_csv import results_csv
from .settings import settings_of, settings_part
from .tables import Tables, compute, to_markdown
from .tree import tree_part
from .tuned import tuned_part
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


def gather(paths: str | Path | list, out: str | Path | None = None) -> tuple[Collected, Path]:
    """(the runs, the folder the report goes to). One study folder: its runs, the report into it.
    Anything else: the run folders found (collect.find_run_folders), the report into `out`,
    by default a `report` folder next to them (in their common parent)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if len(paths) == 1 and is_study_folder(paths[0]) and (out is None or Path(out) == Path(paths[0])):
        return collect(paths[0]), Path(paths[0])
    folders = find_run_folders(paths)
    if out is None:
        import os
        common = Path(os.path.commonpath([os.path.abspath(f) for f in folders]))
        out = (common.parent if (common / "config.json").exists() else common) / "report"
    out = Path(out)
    if (out / "config.json").exists():
        raise UserError(f"--out {out}: is a run folder; give a folder for the report")
    return collect_runs(folders, out), out


def make_report(root: str | Path | list, out: str | Path | None = None) -> Report:
    col, root = gather(root, out)
    root.mkdir(parents=True, exist_ok=True)
    tables = compute(col)
    name = ((col.study or {}).get("definition") or {}).get("name") or root.name
    title = (f"{len(col.runs)} runs compared" if col.loose else f"Study {name}") + ": reinitialization results"
    plots = make_plots(col, root / "plots")
    curves = make_curves(col, root / "plots")
    head = [p for p in (answer_part(answer(tables)), settings_part(settings_of(col)),
                        runs_part(col) if col.loose else None) if p is not None]
    rel = [(p.relative_to(root).as_posix(), cap) for p, cap in plots]
    md = to_markdown(tables, title, rel, head=[part_markdown(p, root) for p in head])
    data = load_values(col)
    catalog = build_catalog()
    why = compute_why(col, data, catalog)
    parts: list[Part] = [Part("Training curves", "", plots=curves)] if curves else []
    why_plots: list[Path] = []
    if why.topics:
        from .why_plots import make_why_plots
        figs = make_why_plots(why, col.runs, root / "plots")
        why_plots = [p for fs in figs.values() for p, _ in fs]
        parts += why_parts(why, figs)
    # issue 11: budget frontier, tuned comparison and decision tree, each where the study has what it needs
    regime_parts = [p for p in (budget_part(col, root / "plots"), tuned_part(col), tree_part(col, root / "plots")) if p]
    parts += regime_parts
    claims = evaluate(col, data, catalog) if any(r.method == LW for r in col.runs) else None
    if claims is not None:
        parts.append(verdict_part(claims, has_long=any(r.method == "long" and r.status == "finished"
                                                       for r in col.runs)))
    prov = summarize_provenance(col)
    prov_part = provenance_part(prov)
    if prov_part is not None:  # after the tables and curves, before the why parts: the verdict stays last
        parts.insert(1 if curves else 0, prov_part)
    md = md.rstrip("\n") + "\n\n" + "\n".join(part_markdown(p, root) for p in parts) if parts else md
    if prov.mixed:  # and on top, right under the title
        first, _, rest = md.partition("\n")
        md = f"{first}\n\n> **{prov.warning()}**\n{rest}"
    meta = []
    defn = (col.study or {}).get("definition") or {}
    if defn.get("description"):
        meta.append(defn["description"])
    files = [root / "results.csv", root / "summary.md", root / "report.html"]
    atomic_write_bytes(files[0], results_csv(col).encode())
    atomic_write_bytes(files[1], md.encode())
    atomic_write_bytes(files[2], render(tables, title, plots, meta, parts, warnings=[prov.warning()] if prov.mixed
                                        else [], head=head).encode())
    regime_plots = [p for part in regime_parts for p, _ in part.plots]
    return Report(md, tables, files + [p for p, _ in plots + curves] + why_plots + regime_plots, why, claims, prov)
