"""Half-written and damaged run folders: a truncated or garbled checkpoint, a torn or foreign
result.json, temp files left by a kill, a missing config.json, metrics ahead of the checkpoint.
In a study each is detected and the run resumed or redone, to the same numbers as an undisturbed
run, and never read as finished; `reinitlab train` refuses the damaged file in one line, exit 2."""
import json
import os

import pytest
import reliability_common as rc
from conftest import train_killed_after

from reinitlab import TrainConfig
from reinitlab.cli import main
from reinitlab.report.collect import collect
from reinitlab.study import expand, load_definition
from reinitlab.study.runner import write_definition
from reinitlab.study.store import Store
from reinitlab.study.worker import Task, run_task
from reinitlab.util.files import read_jsonl


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return rc.small_npz(rc.shared(tmp_path_factory))


def make_store(folder, dataset):
    toml = rc.study_file(folder, dataset)
    defn = load_definition(str(toml), ["methods=[lw]", "seeds=[0]"])
    runs, budgets = expand(defn)
    store = Store(folder / "study")
    write_definition(store, defn, runs, budgets, command=[])
    return store, Task(str(store.root), runs[0].to_dict(), {"threads": 1})


def fingerprint(d):
    return rc.timeless(read_jsonl(d / "metrics.jsonl")), rc.timeless(json.loads((d / "result.json").read_text()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dataset):
    store, task = make_store(tmp_path_factory.mktemp("damage-ref"), dataset)
    assert run_task(task).status == "finished"
    return fingerprint(store.run_dir(task.run_id))


def interrupted(store, task, monkeypatch, after_epochs=2):
    """A run stopped after `after_epochs` epochs (of 4), as a kill leaves it: ckpt.pt, no result."""
    cfg = TrainConfig.from_dict({**task.spec["config"], **task.speed})
    train_killed_after(after_epochs, cfg, store.run_dir(task.run_id), monkeypatch)
    d = store.run_dir(task.run_id)
    assert (d / "ckpt.pt").exists() and not (d / "result.json").exists()
    return d


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def garble(path):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


# damage to an interrupted run: (what is done to the folder, how the next attempt must start)
PARTIAL = {
    "ckpt.pt truncated": (lambda d: truncate(d / "ckpt.pt"), "restart"),
    "ckpt.pt emptied": (lambda d: truncate(d / "ckpt.pt", 0), "restart"),
    "ckpt.pt garbled": (lambda d: garble(d / "ckpt.pt"), "restart"),
    "temp files of killed writes": (lambda d: [(d / f".{n}.x1y2.tmp").write_bytes(b"\0" * 99)
                                               for n in ("ckpt.pt", "result.json", "model.pt")], "resume"),
    "config.json removed": (lambda d: (d / "config.json").unlink(), "new"),
    "metrics line torn": (lambda d: open(d / "metrics.jsonl", "a").write('{"round": 1, "epo'), "resume"),
    "metrics ahead of the checkpoint": (
        lambda d: open(d / "metrics.jsonl", "a").write(json.dumps({**read_jsonl(d / "metrics.jsonl")[-1],
                                                                   "epoch_total": 3, "epoch": 1}) + "\n"),
        "resume"),
}


@pytest.mark.parametrize("damage", list(PARTIAL))
def test_damaged_interrupted_run_is_resumed_or_redone_in_a_study(tmp_path, dataset, reference, monkeypatch, damage):
    store, task = make_store(tmp_path, dataset)
    d = interrupted(store, task, monkeypatch)
    hurt, how = PARTIAL[damage]
    hurt(d)
    assert not store.state(task.run_id).done
    outcome = run_task(task)
    assert (outcome.status, outcome.how) == ("finished", how), outcome
    assert fingerprint(d) == reference
    assert not list(d.glob(".*.tmp"))
    if how == "restart":  # the unreadable checkpoint is kept aside for a look, not deleted
        assert len(list(d.glob("ckpt.pt.unreadable-*"))) == 1


# damage to a finished run's result.json: never read as finished, redone
RESULTS = {
    "result.json truncated": lambda p: truncate(p),
    "result.json emptied": lambda p: p.write_text(""),
    "result.json not an object": lambda p: p.write_text("[1, 2]\n"),
    "result.json without a final status": lambda p: p.write_text('{"status": "running", "test_acc": 0.99}\n'),
}


@pytest.mark.parametrize("damage", list(RESULTS))
def test_damaged_result_is_never_read_as_finished(tmp_path, dataset, reference, damage):
    store, task = make_store(tmp_path, dataset)
    assert run_task(task).status == "finished"
    d = store.run_dir(task.run_id)
    RESULTS[damage](d / "result.json")
    assert store.state(task.run_id).status == "partial"
    (rec,) = collect(store.root).runs
    assert rec.status == "partial" and rec.test_acc is None  # the report neither counts nor averages it
    outcome = run_task(task)
    assert outcome.status == "finished" and outcome.how in ("resume", "restart"), outcome
    assert fingerprint(d) == reference
    assert len(list(d.glob("result.json.unreadable-*"))) == 1


def train_args(dataset, out):
    return ["train", "--dataset", dataset, "--train-size", "100", "--epochs", "2", "--rounds", "1", "--width", "0.25",
            "--method", "lw", "--set", "threads=1", "--set", "batch_size=16", "--quiet", "--out", str(out)]


def snapshot(d):
    return {p.name: p.read_bytes() for p in d.iterdir()}


@pytest.mark.parametrize("damage", ["ckpt.pt truncated", "ckpt.pt garbled", "ckpt.pt emptied"])
def test_train_refuses_a_damaged_checkpoint_in_one_line(tmp_path, dataset, reference, monkeypatch, capsys, damage):
    store, task = make_store(tmp_path, dataset)
    d = interrupted(store, task, monkeypatch)
    PARTIAL[damage][0](d)
    before = snapshot(d)
    assert main(train_args(dataset, d)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{d / 'ckpt.pt'}: " in err and "delete it" in err
    assert snapshot(d) == before  # nothing touched: the user decides
    (d / "ckpt.pt").unlink()  # as the message says: the run then trains again from the start
    assert main(train_args(dataset, d)) == 0
    assert fingerprint(d) == reference


@pytest.mark.parametrize("damage", list(RESULTS))
def test_train_refuses_a_damaged_result_in_one_line(tmp_path, dataset, capsys, damage):
    out = tmp_path / "run"
    assert main(train_args(dataset, out)) == 0
    capsys.readouterr()
    RESULTS[damage](out / "result.json")
    before = snapshot(out)
    assert main(train_args(dataset, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{out / 'result.json'}: " in err
    assert snapshot(out) == before


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path, dataset, monkeypatch, capsys):
    """A checkpoint that loads but does not fit the model (code changed between starts)."""
    import torch
    store, task = make_store(tmp_path, dataset)
    d = interrupted(store, task, monkeypatch)
    ck = torch.load(d / "ckpt.pt", weights_only=False)
    ck["model"] = {k + "_renamed": v for k, v in ck["model"].items()}
    torch.save(ck, d / "ckpt.pt")
    assert main(train_args(dataset, d)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{d / 'ckpt.pt'}: " in err
    outcome = run_task(task)  # in a study: recorded as failed with the same message, the study goes on
    assert outcome.status == "failed" and "ckpt.pt" in outcome.reason
    assert json.loads((d / "error.json").read_text())["reason"].startswith("UserError: ")
    assert os.path.exists(d / "ckpt.pt")
