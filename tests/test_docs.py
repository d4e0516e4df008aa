"""One source of truth: what the documentation says about methods, architectures, datasets, presets
and analyses is generated from their registries (scripts/gen_docs.py) and must be current; the
specification lists the registered methods and is cited by section name; the site's navigation
names every page that exists."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from reinitlab.core.method import METHODS, Fidelity

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gen_docs", None)


def test_the_generated_parts_of_the_docs_are_current(gen_docs):
    assert gen_docs.stale_pages(write=False) == [], "run .venv/bin/python scripts/gen_docs.py"


def test_a_registry_change_makes_its_page_stale_and_the_script_rewrites_it(gen_docs, tmp_path):
    for page in {where for where, _ in gen_docs.PARTS.values()}:
        (tmp_path / page).write_text((DOCS / page).read_text())
    lw = METHODS["lw"]
    changed = type("LW", (lw,), {"__doc__": "A changed description.", "fidelity": lw.fidelity + (
        Fidelity("a new default", "the peer's rule", "`new=true`"),)})
    with METHODS.overriding("lw", changed):
        assert gen_docs.stale_pages(tmp_path, write=True) == ["methods.md"]
        text = (tmp_path / "methods.md").read_text()
        assert "A changed description." in text and "| `lw` | a new default | the peer's rule | `new=true` |" in text
        assert gen_docs.stale_pages(tmp_path) == []
    assert gen_docs.stale_pages(tmp_path) == ["methods.md"]


def test_every_method_has_its_section_its_options_and_its_fidelity_rows_in_the_docs():
    text = (DOCS / "methods.md").read_text()
    for name, cls in METHODS.items():
        assert f"\n### `{name}`\n" in text, name
        for option in cls.option_names():
            section = text[text.index(f"\n### `{name}`\n"):].split("\n### ")[1]
            assert f"| `{option}` |" in section, (name, option)
        for f in cls.fidelity:
            assert f.peer.replace("|", "\\|") in text, (name, f.peer)


def test_a_method_that_follows_a_peer_says_how_it_differs():
    """The peer-faithful methods carry the rows of the fidelity table; the ones no peer's code was
    compared with are named as such in the table instead."""
    follows_peer = {"lw", "ke", "welsr", "llf", "sp", "fire", "redo", "dash", "l2init"}
    assert all(METHODS[m].fidelity for m in follows_peer)
    assert all(isinstance(f, Fidelity) and f.ours and f.peer and f.how for m in METHODS for f in METHODS[m].fidelity)


def test_the_specification_lists_exactly_the_registered_methods():
    spec = (DOCS / "SPEC.md").read_text()
    section = spec[spec.index("\n## Methods\n"):].split("\n## ")[1]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    assert [re.match(r"\| `([^`]+)`", line).group(1) for line in table] == list(METHODS)


def test_the_specification_is_cited_by_section_name_never_by_number():
    spec = (DOCS / "SPEC.md").read_text()
    assert not re.search(r"^## \d", spec, re.M)
    sections = re.findall(r"^## (.+)$", spec, re.M)
    cited = re.compile(r"SPEC(?: section)? \d|SPEC,? (?:section )?§?\d")
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *DOCS.glob("*.md"), ROOT / "README.md"]:
        text = path.read_text()
        assert not cited.search(text), f"{path.relative_to(ROOT)}: {cited.search(text).group(0)}"
        for name in re.findall(r"SPEC, ([A-Z][\w' ]+?)(?=[:),.]| hold| \d)", text):
            assert name in sections, f"{path.relative_to(ROOT)} cites SPEC, {name!r}; sections: {sections}"


def test_tests_and_comments_are_named_for_behaviour_not_issue_numbers():
    pattern = re.compile(r"\bissues? \d+|\btest_\w*_new\b|_new\.py$")
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "scripts").iterdir()]:
        assert not pattern.search(path.name), path.name
        if path.suffix in (".py", ".sh"):
            hit = pattern.search(path.read_text())
            assert not hit or path.name == "test_docs.py", f"{path.relative_to(ROOT)}: {hit.group(0)}"


def test_the_site_navigation_names_every_page_and_only_pages_that_exist():
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    named = set(re.findall(r"^\s+- (?:[^:#\n]+: )?([\w.-]+\.md)\s*$", nav, re.M))
    assert named == {p.name for p in DOCS.glob("*.md")}


def test_the_architecture_page_gives_every_folder_the_layer_the_layering_test_enforces():
    from test_layout import LAYERS
    text = (DOCS / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+?) \|", text, re.M)
    documented = {name.strip("`/").removesuffix(".py"): int(layer) for layer, names in rows
                  for name in re.findall(r"`([\w./]+)`", names)}
    enforced = {name: layer for layer, names in LAYERS.items() for name in names
                if (ROOT / "src" / "reinitlab" / name).is_dir() or (ROOT / "src" / "reinitlab" / f"{name}.py").exists()}
    assert documented == enforced
    present = {p.name.removesuffix(".py") for p in (ROOT / "src" / "reinitlab").iterdir()
               if not p.name.startswith("_") and (p.is_dir() and (p / "__init__.py").exists() or p.suffix == ".py")}
    assert present == set(documented)
