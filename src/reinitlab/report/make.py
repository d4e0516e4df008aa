"""`make_report(dir)`: read the run folders, write results.csv, summary.md, plots/*.png and one
self-contained report.html into the study folder, and return the Markdown for the terminal.
`make_report([runA, runB, ...], out)`: the same for loose run folders (several `train` outputs, a
folder holding them, quoted globs), with a table of the runs side by side.

The report answers first: the answer in sentences (answer.py), the settings (settings.py), for
loose runs the runs compared (compare.py), then the summary tables and plots. After them come the
registered report parts (part.py), in their order: the training curves (curves.py), the provenance
of the runs (provenance.py), the "why" parts (why.py: one per topic the analyses declare, where the
runs have its numbers), the budget frontier, tuned comparison and decision tree (budget.py,
tuned.py, tree.py: each where the study has what it needs) and, last, the verdict on the source
paper's claims (paper/claims.py) when the runs include lw. A warning goes under the title when the
runs were made by different code or machines."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..util.errors import UserError
from ..util.files import atomic_write_bytes
from .answer import answer, answer_part
from .catalog import build_catalog
from .collect import Collected, collect, collect_runs, find_run_folders, is_study_folder
from .compare import runs_part
from .html import render
from .part import REPORT_PARTS, Part, ReportContext, part_markdown
from .plots import make_plots
from .provenance import StudyProvenance
from .provenance import summarize as summarize_provenance
from .results_csv import results_csv
from .settings import settings_of, settings_part
from .tables import Tables, compute, to_markdown
from .values import load as load_values
from .why import Why


@dataclass
class Report:
    markdown: str
    tables: Tables
    files: list[Path]
    why: Why | None = None
    claims: list | None = None  # claims.Claim, when the study has lw runs
    provenance: StudyProvenance | None = None
    answer: str = ""  # the Answer section's Markdown (with the mixed-runs warning, if any); "" without one


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
    answered = answer_part(answer(tables))
    head = [p for p in (answered, settings_part(settings_of(col)), runs_part(col) if col.loose else None)
            if p is not None]
    rel = [(p.relative_to(root).as_posix(), cap) for p, cap in plots]
    md = to_markdown(tables, title, rel, head=[part_markdown(p, root) for p in head])
    ctx = ReportContext(col, root, root / "plots", tables, load_values(col), build_catalog())
    parts: list[Part] = []
    for maker in sorted(REPORT_PARTS.values(), key=lambda m: m.order):
        parts += maker.make(ctx)
    prov = ctx.found.get("provenance") or summarize_provenance(col)
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
    part_plots = [p for part in parts for p, _ in part.plots]
    short = part_markdown(answered, root).rstrip("\n") if answered else ""
    if short and prov.mixed:
        short = f"> **{prov.warning()}**\n\n{short}"
    return Report(md, tables, files + [p for p, _ in plots] + part_plots, ctx.found.get("why"), ctx.found.get("claims"),
                  prov, short)
