"""The README's code examples run as written."""
import contextlib
import io
import re
import shlex
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def example(name: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- example: {name}.*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README example {name!r} not found"
    return match.group(1)


def test_own_loop_example_runs_and_resets():
    torch.manual_seed(0)
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example("own-loop"), "README.md", "exec"), scope)
    reinit = scope["reinit"]
    assert reinit.groups.names == ["stem", "block1", "head"]
    assert reinit.history[0]["standardized"] == ["block1"]
    assert reinit.history[0]["redrawn_fraction"]["head"] == 1.0
    assert reinit.history[0]["redrawn_fraction"]["stem"] == 0.0
    assert "'round': 1" in out.getvalue()


def output(name: str) -> str:
    match = re.search(rf"<!-- output: {name} -->\s*```\n(.*?)```", README.read_text(), re.S)
    assert match, f"README output {name!r} not found"
    return match.group(1)


def test_own_groups_example_prints_the_table_shown():
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example("own-groups"), "README.md", "exec"), scope)
    assert out.getvalue() == output("own-groups")
    groups = scope["groups"]
    assert groups.names == ["stem", "body", "head"] and groups.group_of()["scale"] == "head"


def test_toml_study_example_loads_and_expands(tmp_path):
    from reinitlab.study import expand, load_definition
    text = README.read_text()
    match = re.search(r"A study file is TOML.*?```toml\n(.*?)```", text, re.S)
    assert match, "README's study TOML example not found"
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


def readme_commands() -> list[str]:
    """Every `reinitlab ...` command of the README: the lines of its shell blocks and its inline code."""
    text = README.read_text()
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


def test_readme_cli_commands_parse(capsys):
    from reinitlab.cli import build_parser
    from reinitlab.util.errors import UserError
    commands = readme_commands()
    assert len(commands) > 10 and any(c.startswith("train ") for c in commands)
    for cmd in commands:
        try:
            build_parser().parse_args(shlex.split(cmd))
        except UserError as e:
            raise AssertionError(f"README command `reinitlab {cmd}`: {e}") from None
        except SystemExit as e:  # --help, --version
            assert e.code == 0, cmd
    capsys.readouterr()


def test_every_relative_link_of_the_readme_exists_in_the_repository():
    """A clone has only the repository: a link out of it (the specification once pointed to
    ../shared/SPEC.md) is a dead link for every user."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in t]
    assert links, "the README links no file"
    for target in links:
        path = (root / target).resolve()
        assert path.is_relative_to(root) and path.exists(), target
