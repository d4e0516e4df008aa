"""Plugins: methods, datasets, architectures and analyses that other installed packages register
through entry points. The registry imports them after its own modules (so their entries come after
the built-in ones), names a plugin that fails to load in one warning line and leaves it out whole,
and the rest keeps working. End to end: a real package, pip-installed into a --target folder on
PYTHONPATH, used by `reinitlab list`, `train`, `analyze`, `study`, `report` and the registry-wide
property test."""
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from reinitlab.util.errors import ReinitlabWarning
from reinitlab.util.registry import Registry

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def fake_entry_points(monkeypatch, group: str, entries: dict[str, str]) -> None:
    eps = [importlib.metadata.EntryPoint(name, value, group) for name, value in entries.items()]
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        return [e for e in eps if e.group == kw.get("group")] if "group" in kw else real(**kw)
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def write_module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("plug_")]:
        del sys.modules[name]


def test_plugin_entries_come_after_the_built_in_ones(modules, monkeypatch):
    builtin = modules / "plug_builtin"
    builtin.mkdir()
    (builtin / "__init__.py").write_text("")
    write_module(builtin, "red", "from plug_reg import COLOURS\nCOLOURS.add('red', 1)\n")
    write_module(modules, "plug_reg", """
        from reinitlab.util.registry import Registry
        COLOURS = Registry("colour", packages=("plug_builtin",), entry_points="test.colours")
    """)
    write_module(modules, "plug_a", "from plug_reg import COLOURS\nCOLOURS.add('green', 2)\n")
    write_module(modules, "plug_b", "from plug_reg import COLOURS\nCOLOURS.add('blue', 3)\nCOLOURS.add('cyan', 4)\n")
    fake_entry_points(monkeypatch, "test.colours", {"b": "plug_b", "a": "plug_a"})
    import plug_a  # noqa: F401 -- imported before the registry looks: its entry still comes after 'red'
    import plug_reg
    assert list(plug_reg.COLOURS) == ["red", "green", "blue", "cyan"]
    assert plug_reg.COLOURS.plugin_of("blue") == "plug_b" and plug_reg.COLOURS.plugin_of("red") is None


def test_a_broken_plugin_is_named_in_one_warning_and_left_out_whole(modules, monkeypatch):
    write_module(modules, "plug_reg2", """
        from reinitlab.util.registry import Registry
        THINGS = Registry("thing", entry_points="test.things")
    """)
    write_module(modules, "plug_good", "from plug_reg2 import THINGS\nTHINGS.add('good', 1)\n")
    # loaded in entry-name order: a_good, b_bad, c_dup. b_bad registers one entry, then fails: the half-registered entry must not stay
    write_module(modules, "plug_bad", "from plug_reg2 import THINGS\nTHINGS.add('half', 2)\nraise RuntimeError('boom')\n")
    write_module(modules, "plug_dup", "from plug_reg2 import THINGS\nTHINGS.add('good', 3)\n")  # a name taken
    fake_entry_points(monkeypatch, "test.things", {"a_good": "plug_good", "b_bad": "plug_bad", "c_dup": "plug_dup"})
    import plug_reg2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dict(plug_reg2.THINGS) == {"good": 1}
    lines = [str(w.message) for w in caught if issubclass(w.category, ReinitlabWarning)]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "plugin 'b_bad' (plug_bad" in lines[0] and "RuntimeError: boom" in lines[0] and "left out" in lines[0]
    assert "plugin 'c_dup' (plug_dup" in lines[1] and "already registered" in lines[1]


def test_a_registry_without_plugins_reads_no_entry_points(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: pytest.fail("entry points read"))
    r = Registry("x")
    r.add("a", 1)
    assert list(r) == ["a"]


PLUGIN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "reinitlab-blobs"
        version = "0.1"

        [project.entry-points."reinitlab.methods"]
        halfhead = "reinitlab_blobs.method"
        broken = "reinitlab_blobs.broken"

        [project.entry-points."reinitlab.datasets"]
        blobs = "reinitlab_blobs.dataset"

        [project.entry-points."reinitlab.archs"]
        tinynet = "reinitlab_blobs.arch"

        [project.entry-points."reinitlab.analyses"]
        headnorm = "reinitlab_blobs.analysis"

        [tool.setuptools]
        packages = ["reinitlab_blobs"]
    """,
    "reinitlab_blobs/__init__.py": "",
    "reinitlab_blobs/method.py": '''
        """Re-draws the head's weights and keeps its biases: a method in one file."""
        from reinitlab.core.reset import Action, ResetEvent
        from reinitlab.methods import Method, register


        @register
        class HalfHead(Method):
            name = "halfhead"
            summary = "re-draw the head's weights, keep its biases"

            def event(self, ctx):
                head = ctx.groups.params[ctx.groups.head]
                actions = {p: Action(keep=False) for p in head if p.endswith("weight")}
                return ResetEvent(actions, description="head weights re-drawn")
    ''',
    "reinitlab_blobs/broken.py": "raise ImportError('needs a package that is not installed')\n",
    "reinitlab_blobs/dataset.py": '''
        """Four classes of noisy blobs, made in memory."""
        from pathlib import Path

        import torch

        from reinitlab.data import DataBundle, DatasetInfo, Source, register


        def locate(data_dir):
            return Source(root=Path(__file__).parent, files=[], fingerprint="blobs-1")


        def read(source, resolution):
            g = torch.Generator().manual_seed(0)
            protos = torch.rand(4, 1, resolution, resolution, generator=g) * 255

            def make(n):
                y = torch.arange(n) % 4
                x = protos[y] * 0.6 + torch.rand(n, 1, resolution, resolution, generator=g) * 255 * 0.4
                return x.round().to(torch.uint8), y
            (xtr, ytr), (xte, yte) = make(80), make(40)
            return DataBundle(name="blobs", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                              classes=["a", "b", "c", "d"], source={"fingerprint": "blobs-1"})


        register(DatasetInfo(name="blobs", description="noisy blobs (plugin)", num_classes=4, channels=1,
                             resolution=12, train_size=80, test_size=40, locate=locate, read=read, cache=False))
    ''',
    "reinitlab_blobs/arch.py": '''
        import torch.nn as nn

        from reinitlab.models import register
        from reinitlab.models.common import classifier, conv_bn_relu, finish


        @register("tinynet", "two conv layers and a linear head (plugin)")
        def build(in_channels, num_classes, width=1.0, resolution=32):
            c = max(4, int(8 * width))
            model = nn.Sequential()
            model.add_module("stem", nn.Sequential(*conv_bn_relu(in_channels, c)))
            model.add_module("block1", nn.Sequential(*conv_bn_relu(c, c)))
            model.add_module("head", classifier(c, num_classes))
            return finish(model, ["stem", "block1", "head"])
    ''',
    "reinitlab_blobs/analysis.py": '''
        from dataclasses import dataclass

        from reinitlab.analyses.base import Analysis, AnalysisResult, register


        @dataclass
        class Options:
            pass


        @register
        class HeadNorm(Analysis):
            name = "headnorm"
            summary = "the norm of the head's weights (plugin)"
            Options = Options

            def run(self, model, groups, data, options=None):
                params = dict(model.named_parameters())
                norm = sum(float(params[p].detach().norm()) ** 2 for p in groups.params[groups.head]) ** 0.5
                return AnalysisResult(self.name, {"head_norm": norm})

            def plot(self, result, path):
                pass
    ''',
}

STUDY = """
name = "plugged"
datasets = ["blobs"]
archs = ["tinynet"]
methods = ["baseline", "halfhead"]
seeds = [0]
train_sizes = [60]
epochs = 1
rounds = 1
batch_size = 16
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The plugin package built and installed (pip, no network) into a --target folder."""
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "src"
    for rel, text in PLUGIN.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(textwrap.dedent(text).lstrip())
    target = root / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(pkg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(SRC)]), "REINITLAB_DATA": str(root / "cache")}
    return env


def cli(env, *args, cwd=None, ok=True):
    proc = subprocess.run([sys.executable, "-m", "reinitlab", *map(str, args)], env=env, capture_output=True,
                          text=True, cwd=cwd, timeout=600)
    if ok:
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow  # pip builds the package; a few runs and a study in subprocesses
def test_an_installed_plugin_is_used_by_the_cli_a_study_and_the_property_test(installed, tmp_path):
    env = installed
    listed = cli(env, "list", "methods")
    rows = listed.stdout.splitlines()
    assert rows[-1].startswith("halfhead") and rows[-1].endswith("(plugin: reinitlab-blobs 0.1)")
    assert all("plugin" not in r for r in rows[:-1])  # the built-in ones first, unmarked
    broken = [line for line in listed.stderr.splitlines() if "broken" in line]
    assert len(broken) == 1 and broken[0].startswith("reinitlab: warning: plugin 'broken'"), listed.stderr
    assert "ImportError: needs a package that is not installed" in broken[0]
    assert "tinynet" in cli(env, "list", "archs").stdout
    assert "blobs" in cli(env, "list", "datasets").stdout
    assert cli(env, "list", "analyses").stdout.splitlines()[-1].startswith("headnorm")

    run = tmp_path / "run"
    cli(env, "train", "--dataset", "blobs", "--arch", "tinynet", "--method", "halfhead", "--rounds", "1",
        "--epochs", "1", "--set", "batch_size=16", "--quiet", "--out", run)
    result = json.loads((run / "result.json").read_text())
    assert (result["status"], result["method"], result["rounds"]) == ("finished", "halfhead", 1)
    assert result["per_round"][1]["reset"]["event"] == "head weights re-drawn"
    assert json.loads((run / "provenance.json").read_text())["info"]["plugins"] == {
        "method": "reinitlab-blobs 0.1", "arch": "reinitlab-blobs 0.1", "dataset": "reinitlab-blobs 0.1"}
    analyzed = cli(env, "analyze", run, "--only", "headnorm", "--no-plots")
    assert analyzed.stdout.startswith("headnorm")
    numbers = json.loads((run / "analysis.json").read_text())["analyses"]["headnorm"]["numbers"]
    assert numbers["head_norm"] > 0

    study = tmp_path / "plugged.toml"
    study.write_text(STUDY)
    cli(env, "study", study, "--out", tmp_path / "study", "--workers", "1")
    runs = json.loads((tmp_path / "study" / "runs.json").read_text())["runs"]
    assert sorted(r["config"]["method"] for r in runs) == ["baseline", "halfhead"]
    for r in runs:
        done = json.loads((tmp_path / "study" / "runs" / r["id"] / "result.json").read_text())
        assert done["status"] == "finished"
    cli(env, "report", tmp_path / "study")
    assert "halfhead is" in (tmp_path / "study" / "summary.md").read_text()

    # the docs' command: the registry-wide property test covers the plugin's method
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "test_methods_registry.py"),
                           "-k", "halfhead"], env=env, capture_output=True, text=True, cwd=HERE.parent, timeout=600)
    assert proc.returncode == 0 and " passed" in proc.stdout, proc.stdout[-3000:]
    assert "deselected" in proc.stdout
