"""What a fresh machine gets: `make run` installs the package alone (no test extras, no Ray),
`make test` adds the extras, `make docs` the docs extra and builds the site strictly, as CI does; the
license is an SPDX expression (setuptools >= 77 warns on a table)."""
import shutil
import subprocess
from pathlib import Path

import pytest

from reinitlab.util.options import tomllib  # the stdlib's on 3.11+, the tomli package on 3.10

ROOT = Path(__file__).resolve().parents[1]


def planned(target: str, tmp_path) -> str:
    """The commands `make TARGET` would run on a machine without the venv (make -n runs nothing)."""
    r = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_run_installs_the_package_alone_and_make_test_adds_the_extras(tmp_path):
    run = planned("run", tmp_path)
    assert "pip install -q -e ." in run and "reinitlab study quick" in run
    assert ".[test]" not in run and "ray" not in run.lower()
    test = planned("test", tmp_path)
    assert 'pip install -q -e ".[test]"' in test and "pytest" in test
    assert "--answer-only" in run  # make run prints the Answer, not the whole summary


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_docs_installs_the_docs_extra_and_builds_strictly_and_ci_runs_it(tmp_path):
    docs = planned("docs", tmp_path)
    assert 'pip install -q -e ".[docs]"' in docs and "mkdocs build --strict" in docs
    assert "--quiet" not in docs and " -q " not in docs.split("mkdocs build")[1]  # quiet drops the warnings strict counts
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    assert {"mkdocs", "mkdocs-material", "mkdocstrings[python]"} <= {d.split(">")[0].split("=")[0] for d in extra}
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake docs" in ci and ci.index("make docs") < ci.index("make test")


def test_the_license_is_an_spdx_expression():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert not any(c.startswith("License ::") for c in meta["project"].get("classifiers", []))
    assert "setuptools>=77" in meta["build-system"]["requires"]  # the first to read an SPDX string


def test_python_3_10_is_supported_by_every_import_of_toml():
    """pyproject says >= 3.10; tomllib is in the standard library from 3.11 only, so every module and
    test reads TOML through util/options.py, which falls back to tomli (a dependency on 3.10)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["requires-python"] == ">=3.10"
    assert "tomli>=2.0; python_version < '3.11'" in meta["project"]["dependencies"]
    direct = [p.relative_to(ROOT) for folder in ("src", "tests") for p in (ROOT / folder).rglob("*.py")
              if p.name != "options.py" and any(line.strip() in ("import tomllib", "import tomli")
                                                for line in p.read_text().splitlines())]
    assert direct == []
