"""docs/own-stack.md's examples run as written: the Lightning example (with fewer rounds, epochs and
images) trains LW on its own LightningModule, and the one-file method passes the registry-wide
property test."""
import re
from pathlib import Path

import pytest

import test_methods_registry as registry_test
from reinitlab.core.method import METHODS

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-stack.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_lightning_example_trains_lw_on_a_users_module(tmp_path, monkeypatch, capsys):
    pytest.importorskip("lightning")
    code = blocks("python")[0]
    assert sum(1 for line in code.splitlines() if line.strip()) <= 23  # about 20 lines: short enough to copy
    small = code.replace("ROUNDS, EPOCHS = 2, 5", "ROUNDS, EPOCHS = 2, 1").replace("512", "128")
    assert small.count("ROUNDS, EPOCHS = 2, 1") == 1 and small.count("128") == 2
    monkeypatch.chdir(tmp_path)  # Lightning writes its logs and checkpoints under the working folder
    namespace = {}
    exec(compile(small, str(DOC), "exec"), namespace)
    lw = namespace["lw"]
    assert [r["round"] for r in lw.history] == [1, 2]
    assert lw.history[0]["event"] == "keep stem..block1, reset block2..head"
    assert lw.history[-1]["standardized"] == ["block1", "block2"]
    assert "keep stem..block1" in capsys.readouterr().out


@pytest.fixture
def doc_method():
    code = blocks("python")[1]
    namespace = {"__name__": "doc_method"}
    exec(compile(code, str(DOC), "exec"), namespace)
    try:
        yield namespace["HeadWeights"]
    finally:  # out of the registry again: other tests see the built-in methods only
        METHODS._items.pop("headweights", None)
        METHODS._origin.pop("headweights", None)


@pytest.mark.parametrize("options", [{}, {"keep_bias": False}, {"scale": 0.5}, {"redraw": "init"}])
def test_the_one_file_method_keeps_the_reset_rules(doc_method, options):
    assert METHODS["headweights"] is doc_method
    for arch in registry_test.MODELS:
        registry_test.test_every_parameter_ends_as_its_reset_event_says("headweights", options, arch)
