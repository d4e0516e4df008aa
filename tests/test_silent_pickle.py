"""Run folders hold data, never code. model.pt and ckpt.pt are written in a form
that torch.load(weights_only=True) reads, and read that way everywhere; a file with a pickled payload
added (what anyone who can write a shared folder could plant) is refused by analyze, report, export,
a resumed train, a resumed study and the study's start check, and the payload never runs (it would
create a file; the tests assert the file is absent)."""
import json
import shutil

import pytest
import torch
import reliability_common as rc
from conftest import train_killed_after

from reinitlab import TrainConfig
from reinitlab.cli import main
from reinitlab.study import Store
from reinitlab.study.definition import load_definition
from reinitlab.study.runner import run_study
from reinitlab.util.errors import UserError
from reinitlab.util.files import atomic_torch_save, read_torch

MARKER = "payload-ran"
CFG = dict(dataset="fashion-mnist-small", train_size=100, width=0.25, epochs=2, rounds=1, batch_size=16, threads=1,
           round_log=False, method="lw")


class Payload:
    """Unpickled, it opens (creates) a file: proof that the pickle ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def plant(path, marker):
    """The file as reinitlab wrote it, with a payload added under a key of its own."""
    saved = torch.load(path, weights_only=True)
    saved["note"] = Payload(marker)
    torch.save(saved, path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A finished run and a run killed after its first epoch (ckpt.pt, no result)."""
    base = tmp_path_factory.mktemp("pickle")
    from reinitlab import run
    run(TrainConfig(**CFG), base / "finished", progress=False)
    mp = pytest.MonkeyPatch()
    try:
        train_killed_after(1, TrainConfig(**CFG), base / "partial", mp)
    finally:
        mp.undo()
    return base


@pytest.fixture
def planted(tmp_path, folders):
    marker = tmp_path / MARKER
    for name in ("finished", "partial"):
        shutil.copytree(folders / name, tmp_path / name)
    plant(tmp_path / "finished" / "model.pt", marker)
    plant(tmp_path / "partial" / "ckpt.pt", marker)
    return tmp_path, marker


def test_what_reinitlab_writes_reads_as_data_only(folders):
    for f in (folders / "finished/model.pt", folders / "partial/ckpt.pt"):
        saved = torch.load(f, weights_only=True)
        assert "reinit" in saved and "model" in saved
    with pytest.raises(TypeError, match="a data-only reader refuses"):
        atomic_torch_save(folders / "x.pt", {"state": Payload(folders / MARKER)})
    assert not (folders / "x.pt").exists() and not (folders / MARKER).exists()


def test_the_planted_payload_is_real(planted):
    """The guard of every test below: unpickled the usual way, the planted file runs its payload."""
    tmp, marker = planted
    torch.load(tmp / "finished/model.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("argv,named", [
    (["analyze", "{t}/finished", "--only", "norms"], "finished/model.pt"),
    (["report", "{t}/finished", "--out", "{t}/rep"], "finished/model.pt"),
    (["report", "{t}/partial", "--out", "{t}/rep"], "partial/ckpt.pt"),
    (["plot", "{t}/finished", "--out", "{t}/c.png"], "finished/model.pt"),
    (["export", "tensorboard", "{t}/finished", "--to", "{t}/tb"], "finished/model.pt"),
    (["export", "tensorboard", "{t}/partial", "--to", "{t}/tb"], "partial/ckpt.pt"),
    (["train", "--dataset", "fashion-mnist-small", "--train-size", "100", "--width", "0.25", "--epochs", "2",
      "--rounds", "1", "--method", "lw", "--set", "batch_size=16", "--set", "threads=1", "--set", "round_log=false",
      "--quiet", "--out", "{t}/partial"], "partial/ckpt.pt"),
])
def test_every_command_refuses_a_planted_file_without_running_it(planted, capsys, argv, named):
    tmp, marker = planted
    before = {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()}
    assert main([a.replace("{t}", str(tmp)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"reinitlab: {tmp}/{named}: ") and "holds code, not only data" in err
    assert not marker.exists()
    assert {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()} == before  # no file written or changed


def test_the_data_only_load_refuses_what_the_static_look_misses(planted, monkeypatch):
    """Second line of defence: were the static look fooled, torch.load(weights_only=True) still
    refuses the file, in the run loader and on resume, and nothing runs."""
    import reinitlab.train.checkpoint as checkpoint
    import reinitlab.train.engine as engine
    import reinitlab.util.files as files
    tmp, marker = planted
    for module in (files, engine, checkpoint):
        monkeypatch.setattr(module, "torch_file_problem", lambda path: None, raising=False)
    monkeypatch.setattr(files, "code_problem", lambda path: None)
    with pytest.raises(UserError, match="model.pt: unreadable .*Weights only load failed"):
        read_torch(tmp / "finished/model.pt")
    with pytest.raises(UserError, match="model.pt: unreadable"):
        engine.load_run(tmp / "finished")
    from reinitlab import run
    with pytest.raises(UserError, match="ckpt.pt: cannot resume from this checkpoint"):
        run(TrainConfig(**CFG), tmp / "partial", progress=False)
    assert not marker.exists()


STUDY = """
name = "pickle"
datasets = ["{dataset}"]
archs = ["cnn"]
methods = ["lw"]
train_sizes = [100]
label_noise = [0.0]
seeds = [0, 1]
width = 0.25
epochs = 2
rounds = 1
batch_size = 16
round_log = false
precision = "fp32"
"""


@pytest.mark.slow  # three study starts (~80 s on 2 cores)
def test_a_study_refuses_a_planted_file_before_it_starts_and_a_worker_refuses_to_load_one(tmp_path, monkeypatch):
    dataset = rc.small_npz(tmp_path)
    defn = load_definition(str(rc.study_file(tmp_path, dataset, STUDY)))
    out = tmp_path / "study"
    marker = tmp_path / MARKER
    result = run_study(defn, out, workers=1, stream=open("/dev/null", "w"))
    assert result.finished == 2
    store = Store(out)
    runs = sorted(p.parent for p in (out / "runs").rglob("result.json"))
    plant(runs[0] / "model.pt", marker)
    journal = (out / "journal.jsonl").read_text()
    with pytest.raises(UserError, match=f"{runs[0]}/model.pt: holds code, not only data.*delete the run folder"):
        run_study(defn, out, workers=1, stream=open("/dev/null", "w"))
    assert (out / "journal.jsonl").read_text() == journal and not marker.exists()
    # a partial run with a planted checkpoint: refused at the start too
    shutil.rmtree(runs[0])
    cfg = TrainConfig.from_dict(json.loads((runs[1] / "config.json").read_text()))
    shutil.rmtree(runs[1])
    train_killed_after(1, cfg, runs[1], monkeypatch)
    plant(runs[1] / "ckpt.pt", marker)
    with pytest.raises(UserError, match=f"{runs[1]}/ckpt.pt: holds code.*delete it to train the run again"):
        run_study(defn, out, workers=1, stream=open("/dev/null", "w"))
    assert not marker.exists()
    # a worker that meets one (planted after the start's check) refuses to load it: the run fails
    monkeypatch.setattr(Store, "first_code_file", lambda self, ids: None)
    result = run_study(defn, out, workers=1, stream=open("/dev/null", "w"))
    assert [rid for rid, _ in result.failed] == [runs[1].relative_to(out / "runs").as_posix()]
    assert "ckpt.pt: cannot resume from this checkpoint: holds code" in result.failed[0][1]
    assert not marker.exists() and store.state(runs[0].relative_to(out / "runs").as_posix()).status == "finished"
