"""Write the parts of the documentation that are made from the registries, so the docs cannot say
something the code does not: the methods table, each method's description and options, the fidelity
table (each method's `fidelity` attribute), the architectures, the datasets, the study presets and
the analyses.

A generated part sits in its page between two markers,

    <!-- generated: NAME (scripts/gen_docs.py) -->
    ...
    <!-- end generated: NAME -->

and everything outside the markers is written by hand. Run it after changing a method, a preset,
an architecture, a dataset or an analysis:

    .venv/bin/python scripts/gen_docs.py           # rewrite the generated parts in docs/
    .venv/bin/python scripts/gen_docs.py --check   # only say which pages are stale (exit 1)

tests/test_docs.py runs the check, so a registry change without its docs fails the suite.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Callable

DOCS = Path(__file__).resolve().parents[1] / "docs"
BEGIN = "<!-- generated: {name} (scripts/gen_docs.py) -->"
END = "<!-- end generated: {name} -->"


def plain(text: str) -> str:
    """Text written for a terminal as Markdown: outside code spans `*` escaped (the docstrings and
    summaries write products as r*K, which Markdown would read as emphasis) and `<` too (a path like
    images/<class>/ would be read as an HTML tag)."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else p.replace("*", "\\*").replace("<", "&lt;") for p in parts)


def cell(text: str) -> str:
    """Text for a Markdown table cell: one line, `*` and pipes escaped."""
    return plain(" ".join(str(text).split())).replace("|", "\\|")


def code(text: str) -> str:
    return f"`{text}`" if text else "—"


def prose(doc: str) -> str:
    """A docstring as Markdown: dedented, `*` escaped."""
    return plain(inspect.cleandoc(doc))


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def anchor(name: str) -> str:
    """The id MkDocs gives the heading "`name`" (the toc extension's slug)."""
    return re.sub(r"[^\w-]", "", name.lower())


# ---- methods -------------------------------------------------------------------------------------
def method_doc(cls) -> str:
    """The class's own docstring, else its module's (one method per file)."""
    own = cls.__dict__.get("__doc__")
    return own or sys.modules[cls.__module__].__doc__ or cls.summary


def value_text(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def option_rows(cls) -> list[list[str]]:
    """(option, default, valid values) of a method's own options, then the shared re-draw options."""
    from reinitlab.core.method import RedrawOptions
    rows = []
    for options, shared in ((cls.Options, False), (RedrawOptions, True)):
        if shared and not cls.redraws:
            continue
        hints = typing.get_type_hints(options)
        for f in dataclasses.fields(options):
            hint = hints[f.name]
            if shared and f.name == "redraw":
                default, hint = ("peer if peer=true, else fresh" if "peer" in cls.option_names() else "fresh"), \
                    typing.get_args(hint)[0]
            elif shared:
                default = "1 (with redraw=rewind)"
            elif f.default in ("", None):
                default = f"<{f.metadata.get('unset', 'auto')}>"
            else:
                default = value_text(f.default)
            rows.append([f"`{f.name}`", code(default), values_text(hint)])
    return rows


def values_text(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return ", ".join(typing.get_args(hint))
    if origin is typing.Union:  # Optional[int]
        return values_text(next(a for a in typing.get_args(hint) if a is not type(None)))
    return {bool: "true, false", int: "an integer", float: "a number", str: "a name"}.get(hint, str(hint))


def methods_table() -> str:
    from reinitlab.core.method import METHODS
    rows = [[f"[`{name}`](#{anchor(name)})", cls.summary, code(cls.options_text()),
             "yes" if cls.redraws else "no"] for name, cls in METHODS.items()]
    return table(["name", "what it does", "options (default)", "takes `redraw`"], rows)


def methods_detail() -> str:
    from reinitlab.core.method import METHODS
    out = []
    for name, cls in METHODS.items():
        out += [f"### `{name}`", "", prose(method_doc(cls)), ""]
        rows = option_rows(cls)
        if rows:
            out += [table(["option", "default", "values"], rows), ""]
        else:
            out += ["No options.", ""]
        if cls.fidelity:
            out += [f"Where `{name}` differs from its peer's code: see the [fidelity table](#fidelity).", ""]
    return "\n".join(out).rstrip("\n")


def fidelity_table() -> str:
    """One row per Fidelity of every resetting method; methods that declare none are named once."""
    from reinitlab.core.method import METHODS
    rows, unchecked = [], []
    for name, cls in METHODS.items():
        if not cls.resets:
            continue
        if not cls.fidelity:
            unchecked.append(f"`{name}`")
        rows += [[f"`{name}`", f.ours, f.peer, f.how] for f in cls.fidelity]
    if unchecked:
        rows.append([", ".join(unchecked), "the rules above", "peer code not compared", "—"])
    return table(["method", "reinitlab's default", "the peer's code", "to get the peer's behaviour"], rows)


# ---- the other registries -------------------------------------------------------------------------
def archs_table() -> str:
    from reinitlab.models import ARCHS
    return table(["name", "what it is"], [[f"`{n}`", info.description] for n, info in ARCHS.items()])


def datasets_table() -> str:
    from reinitlab.data import DATASETS
    rows = []
    for n, info in DATASETS.items():
        sizes = f"{info.train_size:,} / " + (f"{info.val_size:,} / " if info.val_size else "") + f"{info.test_size:,}"
        rows.append([f"`{n}`", info.description, info.layout, sizes, f"{info.resolution} px"])
    return table(["name", "what it is", "files read and split", "train / (val /) test", "default size"], rows)


def presets_table() -> str:
    from reinitlab.study.presets import PRESETS
    rows = []
    for name, fn in PRESETS.items():
        question = inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0]
        rows.append([f"`{name}`", question, f"`{fn.__module__.removeprefix('reinitlab.')}`"])
    return table(["preset", "what it asks", "defined in"], rows)


def analyses_table() -> str:
    from reinitlab.analyses import ANALYSES
    rows = [[f"`{n}`", a.summary, a.topic.title if a.topic else "—"] for n, a in ANALYSES.items()]
    return table(["name", "what it measures", "report section"], rows)


PARTS: dict[str, tuple[str, Callable[[], str]]] = {
    "methods-table": ("methods.md", methods_table),
    "methods-detail": ("methods.md", methods_detail),
    "fidelity": ("methods.md", fidelity_table),
    "archs": ("models.md", archs_table),
    "datasets": ("datasets.md", datasets_table),
    "presets": ("studies.md", presets_table),
    "analyses": ("analyses.md", analyses_table),
}


def updated(text: str, page: str) -> str:
    """`text` (a page) with every generated part it holds rewritten."""
    for name, (where, make) in PARTS.items():
        if where != page:
            continue
        begin, end = BEGIN.format(name=name), END.format(name=name)
        if begin not in text or end not in text:
            raise SystemExit(f"docs/{page}: the markers of the generated part {name!r} are missing "
                             f"(expected {begin} ... {end})")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{make()}\n{end}{tail}"
    return text


def stale_pages(docs: Path = DOCS, write: bool = False) -> list[str]:
    """The pages whose generated parts differ from what the registries give now (rewritten when
    `write`)."""
    stale = []
    for page in sorted({where for where, _ in PARTS.values()}):
        path = docs / page
        text = path.read_text()
        new = updated(text, page)
        if new != text:
            stale.append(page)
            if write:
                path.write_text(new)
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is stale")
    args = ap.parse_args(argv)
    stale = stale_pages(write=not args.check)
    if args.check and stale:
        print("stale generated docs: " + ", ".join(f"docs/{p}" for p in stale)
              + "; run .venv/bin/python scripts/gen_docs.py", file=sys.stderr)
        return 1
    print(("rewrote " + ", ".join(f"docs/{p}" for p in stale)) if stale and not args.check
          else "the generated docs are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
