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
runs were made by different code or machines, and when run folders were left out (`skip_bad`).

The report folder holds the report alone, written fresh: figures of an earlier report that this one
did not draw are removed. A folder given for loose runs that holds anything else is refused."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..util.errors import UserError
from ..util.files import atomic_write_bytes, writable_problem
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


REPORT_FILES = ("results.csv", "summary.md", "report.html")
PLOTS = "plots"


def gather(paths: str | Path | list, out: str | Path | None = None, skip_bad: bool = False
           ) -> tuple[Collected, Path]:
    """(the runs, the folder the report goes to). One study folder: its runs, the report into it.
    Anything else: the run folders found (collect.find_run_folders), the report into `out`,
    by default a `report` folder next to them (in their common parent). `skip_bad`: leave out run
    folders that cannot be read and conflicting copies of a run, instead of refusing them."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if len(paths) == 1 and is_study_folder(paths[0]) and (out is None or Path(out) == Path(paths[0])):
        return collect(paths[0], skip_bad), Path(paths[0])
    folders = find_run_folders(paths)
    if out is None:
        import os
        common = Path(os.path.commonpath([os.path.abspath(f) for f in folders]))
        out = (common.parent if (common / "config.json").exists() else common) / "report"
    out = Path(out)
    if (out / "config.json").exists():
        raise UserError(f"--out {out}: is a run folder; give a folder for the report")
    foreign = _not_report(out)
    if foreign:
        raise UserError(f"--out {out}: holds {foreign}, which is not part of a reinitlab report; give an empty or "
                        "new folder, or an earlier report's folder (its files are replaced)")
    return collect_runs(folders, out, skip_bad), out


def _not_report(folder: Path) -> str | None:
    """The first entry of `folder` that a report does not write (None: empty, missing, or a report)."""
    if not folder.is_dir():
        return None
    for f in sorted(folder.iterdir()):
        if f.name == PLOTS and f.is_dir():
            inner = next((g for g in sorted(f.iterdir()) if not g.is_file()), None)
            if inner is not None:
                return str(inner)
        elif f.name not in REPORT_FILES and not f.name.startswith("."):
            return str(f)
    return None


def _drop_stale(root: Path, written: list[Path]) -> None:
    """Remove the figures of an earlier report that this one did not draw: a report shows only what
    it computed (the atomic writes' temp files of a killed report go too)."""
    keep = {p.resolve() for p in written}
    plots = root / PLOTS
    for f in plots.iterdir() if plots.is_dir() else []:
        if f.is_file() and f.resolve() not in keep:
            f.unlink()


def make_report(root: str | Path | list, out: str | Path | None = None, skip_bad: bool = False) -> Report:
    col, root = gather(root, out, skip_bad)
    problem = writable_problem(root)
    if problem:
        raise UserError(f"{root}: cannot write the report there: {problem}")
    root.mkdir(parents=True, exist_ok=True)
    tables = compute(col)
    name = ((col.study or {}).get("definition") or {}).get("name") or root.name
    title = (f"{len(col.runs)} runs compared" if col.loose else f"Study {name}") + ": reinitialization results"
    plots = make_plots(col, root / "plots")
    answered = answer_part(answer(tables, col))
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
    warnings_ = ([prov.warning()] if prov.mixed else []) + ([skipped_warning(col)] if col.skipped else [])
    for w in reversed(warnings_):  # and on top, right under the title
        first, _, rest = md.partition("\n")
        md = f"{first}\n\n> **{w}**\n{rest}"
    meta = []
    defn = (col.study or {}).get("definition") or {}
    if defn.get("description"):
        meta.append(defn["description"])
    files = [root / "results.csv", root / "summary.md", root / "report.html"]
    atomic_write_bytes(files[0], results_csv(col).encode())
    atomic_write_bytes(files[1], md.encode())
    atomic_write_bytes(files[2], render(tables, title, plots, meta, parts, warnings=warnings_, head=head).encode())
    part_plots = [p for part in parts for p, _ in part.plots]
    written = files + [p for p, _ in plots] + part_plots
    _drop_stale(root, written)
    short = part_markdown(answered, root).rstrip("\n") if answered else ""
    for w in reversed(warnings_):
        short = f"> **{w}**\n\n{short}" if short else short
    return Report(md, tables, written, ctx.found.get("why"), ctx.found.get("claims"), prov, short)


def skipped_warning(col: Collected) -> str:
    """What the report leaves out or counts once, and why, in one paragraph (a conflict, which
    leaves out two folders, is said once)."""
    folders = {folder for folder, _ in col.skipped}
    whys = dict.fromkeys(why if folder in why else f"{folder}: {why}" for folder, why in col.skipped)
    return f"{len(folders)} run folder(s) left out or counted once: " + "; ".join(whys) + "."
