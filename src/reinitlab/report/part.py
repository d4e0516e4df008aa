"""A part of the report after the summary tables (the training curves, the "why" topics, the claims
verdict, ...): a heading, an introduction, tables and figures, rendered the same way to Markdown
(here) and HTML (html.py).

Parts are found, not listed: a module registers a function of the report's context with
`@report_part(name, order)`, and the report shows every registered part whose function returns
something, in order. Adding a part is adding its file (in report/, or a plugin's).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..util.registry import Registry
from .tables import markdown_table

# (title, explanation, header, rows): the shape tables.sections uses for the summary tables
Table = tuple[str, str, list[str], list[list[str]]]


@dataclass
class Part:
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    plots: list[tuple[Path, str]] = field(default_factory=list)  # (png path, caption)
    lines: list[str] = field(default_factory=list)  # bullet points shown after the intro (Markdown **bold**)


def part_markdown(part: Part, root: Path) -> str:
    """Figures link to the PNGs relative to the study folder `root` (summary.md lives there)."""
    out = [f"## {part.title}", ""]
    if part.intro:
        out += [part.intro, ""]
    if part.lines:
        out += [f"- {line}" for line in part.lines] + [""]
    for title, expl, header, rows in part.tables:
        out += [f"### {title}", ""] + ([expl, ""] if expl else []) + [markdown_table(header, rows), ""]
    for path, caption in part.plots:
        out += [f"![{caption}]({Path(os.path.relpath(path, root)).as_posix()})", ""]
    return "\n".join(out)


@dataclass
class ReportContext:
    """What a part may read: the collected runs, the summary tables, every run's numbers (values.py)
    and the metric catalog; where the report and its plots go. `found` keeps what a part computed
    for the caller of make_report (the "why" statistics, the claims)."""

    col: Any  # collect.Collected
    root: Path
    plots: Path
    tables: Any  # tables.Tables
    data: dict
    catalog: Any  # catalog.Catalog
    found: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PartMaker:
    name: str
    order: int  # parts are shown by increasing order: curves 10, provenance 15, why 20, ..., claims 90
    make: Callable[[ReportContext], list[Part]]


REPORT_PARTS: Registry[PartMaker] = Registry("report part", packages=("reinitlab.report", "reinitlab.paper.claims"))


def report_part(name: str, order: int):
    """Register `fn(ctx) -> list[Part] | Part | None` as the report part `name`."""
    def deco(fn):
        def make(ctx: ReportContext) -> list[Part]:
            got = fn(ctx)
            return [] if got is None else [got] if isinstance(got, Part) else list(got)
        REPORT_PARTS.add(name, PartMaker(name, order, make))
        return fn
    return deco
