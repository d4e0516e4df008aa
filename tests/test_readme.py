"""The README and the documentation pages say what the code does: their examples run as written,
their outputs are what the code prints, their commands parse, their links lead somewhere, and the
README stays a front page."""
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import torch

from reinitlab.core.method import METHODS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README] + sorted(DOCS.glob("*.md"))


def example(name: str, page: Path = README) -> str:
    match = re.search(rf"<!-- example: {name}.*?-->\s*```python\n(.*?)```", page.read_text(), re.S)
    assert match, f"{page.name}: example {name!r} not found"
    return match.group(1)


def output(name: str, page: Path = README) -> str:
    match = re.search(rf"<!-- output: {name} -->\s*```\n(.*?)```", page.read_text(), re.S)
    assert match, f"{page.name}: output {name!r} not found"
    return match.group(1)


def run_example(code: str, source: str) -> tuple[dict, str]:
    torch.manual_seed(0)
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, source, "exec"), scope)
    return scope, out.getvalue()


# ---- the front page ------------------------------------------------------------------------------
def test_the_readme_is_a_front_page_with_the_own_loop_example_in_its_first_screens():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200
    start = next(i for i, line in enumerate(lines) if line.startswith("<!-- example: own-loop"))
    assert start < 100  # a newcomer reaches it in the first screenful or two
    contents = next(line for line in lines if line.startswith("**Contents:**"))
    headings = [line[3:] for line in lines if line.startswith("## ")]
    linked = re.findall(r"\]\(#([^)]+)\)", " ".join(lines[lines.index(contents):lines.index(contents) + 4]))
    assert linked == [re.sub(r"[^\w -]", "", h).lower().replace(" ", "-") for h in headings]


@pytest.mark.parametrize("page", [README, DOCS / "models.md"], ids=lambda p: p.name)
def test_own_loop_example_runs_and_resets(page):
    scope, printed = run_example(example("own-loop", page), page.name)
    reinit = scope["reinit"]
    assert reinit.groups.names == ["stem", "block1", "head"]
    assert reinit.history[0]["standardized"] == ["block1"]
    assert reinit.history[0]["redrawn_fraction"]["head"] == 1.0
    assert reinit.history[0]["redrawn_fraction"]["stem"] == 0.0
    assert "'round': 1" in printed


def test_the_two_copies_of_the_own_loop_example_are_one():
    assert example("own-loop", README) == example("own-loop", DOCS / "models.md")


def test_the_own_loop_pattern_serves_every_registered_method():
    """The loop is complete: every method trains through it, the in-round ones act in it (swr's step
    events, sp's epoch events), rewind finds the snapshot end_epoch took, l2init's penalty is used."""
    code = example("own-loop")
    assert code.count('"lw"') == 1
    # the in-round methods with settings that act within the example's 16 steps per round
    acting = ["swr:maturity=4", "redo:every=3,tau=1", "sp:every_epochs=1"]
    for spec in list(METHODS) + acting:
        scope, _ = run_example(code.replace('"lw"', repr(spec)), f"README own-loop with {spec}")
        reinit = scope["reinit"]
        assert len(reinit.history) == reinit.rounds, spec
        if spec in acting:
            assert sum(r["events"] for r in reinit.in_round_log) > 0, spec
        if reinit.method.has_loss_term:
            assert "extra" in scope and scope["extra"] is not None, spec


def test_the_reinitializer_docstring_shows_the_readme_pattern():
    """One pattern, written twice (the docstring for readers of the code): the same calls with the
    same arguments."""
    import reinitlab.core.reinit as module
    calls = r"reinit\.(reset|loss_term|after_step|end_epoch)\(([^)]*)\)"
    assert re.findall(calls, module.__doc__) == re.findall(calls, example("own-loop"))


# ---- the documentation pages ---------------------------------------------------------------------
def test_own_groups_example_prints_the_table_shown():
    page = DOCS / "models.md"
    scope, printed = run_example(example("own-groups", page), page.name)
    assert printed == output("own-groups", page)
    groups = scope["groups"]
    assert groups.names == ["stem", "body", "head"] and groups.group_of()["scale"] == "head"


def test_toml_study_example_loads_and_expands(tmp_path):
    from reinitlab.study import expand, load_definition
    match = re.search(r"A study file is TOML.*?```toml\n(.*?)```", (DOCS / "studies.md").read_text(), re.S)
    assert match, "docs/studies.md: the study TOML example not found"
    path = tmp_path / "example.toml"
    path.write_text(match.group(1))
    defn = load_definition(str(path))
    runs, budgets = expand(defn)
    sizes = 1
    for axis in (defn.datasets, defn.archs, defn.methods, defn.train_sizes, defn.label_noise, defn.seeds):
        sizes *= len(axis)
    assert len(runs) == sizes > 0


def _alternatives(command: str) -> list[str]:
    """A usage line's concrete forms: [optional parts] included, a|b|c tried one by one."""
    command = re.sub(r"\[([^\]]*)\]", r"\1", command).replace("...", "x")
    forms = [[]]
    for token in shlex.split(command):
        options = token.split("|") if "|" in token and "=" not in token else [token]
        forms = [f + [o] for f in forms for o in options]
    return [" ".join(shlex.quote(t) for t in f) for f in forms]


def page_commands(page: Path) -> list[str]:
    """Every `reinitlab ...` command of a page: the lines of its shell blocks and its inline code."""
    text = page.read_text()
    found = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang in ("python", "toml"):
            continue
        for line in body.splitlines():
            found += [part.strip() for part in line.split(" #")[0].split("&&")]
    found += re.findall(r"`([^`\n]*reinitlab [^`\n]*)`", re.sub(r"```.*?```", "", text, flags=re.S))
    commands = []
    for cmd in found:
        m = re.match(r"^(?:\.venv/bin/)?reinitlab\s+(.*)$", cmd.strip())
        if m:
            commands += _alternatives(m.group(1))
    return commands


def test_every_command_of_the_readme_and_the_docs_parses(capsys):
    from reinitlab.cli import build_parser
    from reinitlab.util.errors import UserError
    commands = {page.name: page_commands(page) for page in PAGES}
    assert any(c.startswith("train ") for c in commands["README.md"])
    assert sum(map(len, commands.values())) > 30
    for name, cmds in commands.items():
        for cmd in cmds:
            try:
                build_parser().parse_args(shlex.split(cmd))
            except UserError as e:
                raise AssertionError(f"{name}: `reinitlab {cmd}`: {e}") from None
            except SystemExit as e:  # --help, --version
                assert e.code == 0, f"{name}: {cmd}"
    capsys.readouterr()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_of_the_repository(page):
    """A clone has only the repository: a link out of it (the specification once pointed to
    ../shared/SPEC.md) is a dead link for every user. (`make docs` also checks the docs' anchors.)"""
    links = [t for t in re.findall(r"\]\(([^)#\s]+)", page.read_text()) if "://" not in t]
    for target in links:
        path = (page.parent / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{page.name}: {target}"
