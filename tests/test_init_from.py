"""`init_from`: a run whose round 0 starts from another run's final weights (or a state_dict file).
The weights must fit (one line otherwise, nothing written), their hash is part of the resolved config
and so of provenance.json (a study cannot count runs made from other weights without being told to
mix), LW's frozen standardizations come along, and a killed run resumes bit-identical."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import synthetic_bundle, train_killed_after

from reinitlab import TrainConfig, run
from reinitlab.train.engine import Engine
from reinitlab.train.init_from import weights_hash
from reinitlab.train.resolve import prepare
from reinitlab.util.errors import UserError

TINY = dict(width=0.25, epochs=2, rounds=1, batch_size=16, eval_batch_size=64, threads=1, round_log=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    torch.set_num_threads(1)
    b = synthetic_bundle()
    run(TrainConfig(method="baseline", **TINY), root / "base", progress=False, bundle=b)
    run(TrainConfig(method="lw", **TINY), root / "lw", progress=False, bundle=b)
    return root


def saved_model(folder):
    return torch.load(folder / "model.pt", weights_only=True)["model"]


def test_round_0_starts_from_the_source_runs_final_weights(sources, tmp_path):
    b = synthetic_bundle()
    cfg = TrainConfig(method="fc", init_from=str(sources / "base"), **TINY)
    eng = Engine(prepare(cfg, b))
    want = saved_model(sources / "base")
    got = eng.model.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    # the distance analysis measures from this start too
    assert all(torch.equal(v, want[k]) for k, v in eng.initial_state().items())
    result = run(cfg, tmp_path / "fc", progress=False, bundle=b)
    assert result["status"] == "finished"
    config = json.loads((tmp_path / "fc" / "config.json").read_text())
    assert config["init_from"] == str(sources / "base") and config["init_from_sha256"] == weights_hash(want)
    recorded = json.loads((tmp_path / "fc" / "provenance.json").read_text())["result"]["config"]
    assert recorded["init_from_sha256"] == weights_hash(want)
    # a state_dict file with the same weights is the same start, with the same hash
    torch.save(want, tmp_path / "w.pt")
    same = prepare(TrainConfig(method="fc", init_from=str(tmp_path / "w.pt"), **TINY), b).cfg
    assert same.init_from_sha256 == config["init_from_sha256"]


def test_lws_standardizations_come_along_and_a_killed_run_resumes_bit_identical(sources, tmp_path, monkeypatch):
    b = synthetic_bundle()
    cfg = TrainConfig(method="lw", init_from=str(sources / "lw"), **TINY)
    eng = Engine(prepare(cfg, b))
    assert eng.reinit.standardized == {"block2": 32}  # the source's, frozen: LW does not estimate it again
    whole = run(cfg, tmp_path / "whole", progress=False, bundle=b)
    train_killed_after(3, cfg, tmp_path / "killed", monkeypatch, bundle=b)  # inside round 1, after the reset
    resumed = run(cfg, tmp_path / "killed", progress=False, bundle=b)
    assert resumed["test_acc"] == whole["test_acc"] and resumed["per_round"][1]["reset"] == whole["per_round"][1]["reset"]
    a, c = saved_model(tmp_path / "whole"), saved_model(tmp_path / "killed")
    assert all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("change,message", [
    (dict(arch="vgg"), "that run trained arch=cnn, this run has arch=vgg"),
    (dict(width=0.5), "that run trained width=0.25, this run has width=0.5"),
])
def test_another_architecture_or_width_is_refused_in_one_line(sources, tmp_path, change, message):
    cfg = TrainConfig(method="fc", init_from=str(sources / "base"), **{**TINY, **change})
    with pytest.raises(UserError, match=message) as e:
        run(cfg, tmp_path / "out", progress=False, bundle=synthetic_bundle())
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_other_classes_and_bad_paths_are_refused(sources, tmp_path):
    b3 = synthetic_bundle(classes=3)
    with pytest.raises(UserError, match="the weights are for 4 classes, this run's data has 3"):
        prepare(TrainConfig(init_from=str(sources / "base"), **TINY), b3)
    torch.save(saved_model(sources / "base"), tmp_path / "w.pt")
    with pytest.raises(UserError, match="the weights are for 4 classes"):
        prepare(TrainConfig(init_from=str(tmp_path / "w.pt"), **TINY), b3)
    b = synthetic_bundle()
    with pytest.raises(UserError, match="no such file or folder"):
        prepare(TrainConfig(init_from=str(tmp_path / "nope"), **TINY), b)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="an unfinished run"):
        prepare(TrainConfig(init_from=str(tmp_path / "half"), **TINY), b)
    (tmp_path / "junk.pt").write_text("not torch")
    with pytest.raises(UserError, match="not a readable torch state_dict file"):
        prepare(TrainConfig(init_from=str(tmp_path / "junk.pt"), **TINY), b)
    with pytest.raises(UserError, match="pinned"):
        prepare(TrainConfig(init_from=str(sources / "base"), init_from_sha256="0" * 16, **TINY), b)


def test_a_run_from_weights_that_changed_since_is_not_resumed(sources, tmp_path):
    b = synthetic_bundle()
    src = tmp_path / "w.pt"
    torch.save(saved_model(sources / "base"), src)
    cfg = TrainConfig(method="fc", init_from=str(src), **TINY)
    run(cfg, tmp_path / "run", progress=False, bundle=b)
    torch.save(saved_model(sources / "lw"), src)  # LW's weights now: another start (and extra buffers)
    with pytest.raises(UserError, match="holds a run with init_from_sha256="):
        run(cfg, tmp_path / "run", progress=False, bundle=b)


STUDY = """
name = "from-a-run"
datasets = ["npz:{data}"]
archs = ["cnn"]
methods = ["fc"]
train_sizes = [40]
seeds = [0]
width = 0.25
epochs = 1
rounds = 1
batch_size = 16
init_from = "{source}"
"""


@pytest.mark.slow  # three commands in subprocesses
def test_a_study_refuses_to_count_runs_made_from_other_weights(tmp_path):
    g = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=g.integers(0, 255, (60, 12, 12), dtype=np.uint8), y_train=np.arange(60) % 3,
             x_test=g.integers(0, 255, (30, 12, 12), dtype=np.uint8), y_test=np.arange(30) % 3)
    data, source = tmp_path / "d.npz", tmp_path / "source"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "reinitlab", *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path, timeout=600)

    def train_source(seed):
        p = cli("train", "--dataset", f"npz:{data}", "--method", "baseline", "--epochs", "1", "--width", "0.25",
                "--seed", seed, "--set", "batch_size=16", "--quiet", "--out", source)
        assert p.returncode == 0, p.stderr[-2000:]
    train_source(0)
    (tmp_path / "s.toml").write_text(STUDY.format(data=data, source=source))
    first = cli("study", "s.toml", "--out", "study", "--workers", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    import shutil
    shutil.rmtree(source)
    train_source(1)  # the source run trained again, differently
    again = cli("study", "s.toml", "--out", "study", "--workers", "1")
    assert again.returncode == 2 and "init_from_sha256=" in again.stderr and "--allow-mixed" in again.stderr, again.stderr
