"""A part of the report after the summary tables (the "why" topics, the claims verdict): a heading,
an introduction, tables and figures, rendered the same way to Markdown (here) and HTML (html.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
