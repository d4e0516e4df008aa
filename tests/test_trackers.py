"""Experiment trackers: a run mirrored into TensorBoard, MLflow and W&B (offline), read back with each
library's own reader; no number of the run changes; a resumed run shows every epoch once; a failing
tracker warns once and the run goes on; tracker settings may change on resume and in studies;
`reinitlab export` of finished folders."""
import importlib.util
import json
import struct
import subprocess
import sys
import time
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_bundle

from reinitlab import TrainConfig, run
from reinitlab.cli import main
from reinitlab.trackers import TRACKERS, TrackerHook, TrackerWarning
from reinitlab.trackers.base import TrackedRun, locate, study_of
from reinitlab.trackers.tensorboard import TensorBoardWriter, run_logdir
from reinitlab.train.config import Tracker
from reinitlab.train.rundir import RESUMABLE_DIFFERENCES, open_run
from reinitlab.util.errors import UserError
from reinitlab.util.files import read_json, read_jsonl

TINY = dict(method="lw", width=0.25, epochs=2, rounds=1, batch_size=16, eval_batch_size=64, threads=1)

def _missing(package):
    return pytest.mark.skipif(importlib.util.find_spec(package) is None,
                              reason=f"{package} is not installed (pip install 'reinitlab[{package}]')")


needs_tb, needs_mlflow, needs_wandb = _missing("tensorboard"), _missing("mlflow"), _missing("wandb")


def timeless(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def numbers(result):
    """result.json without its clock readings."""
    clock = ("seconds", "train_images_per_second", "diagnostics_seconds")
    out = {k: v for k, v in result.items() if k not in clock}
    out["per_round"] = [{k: v for k, v in r.items() if k not in clock} for r in result["per_round"]]
    return out


# ---- readers: each library's own ---------------------------------------------------------------
def tb_run(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def tb_scalars(ea, tag):
    return [(e.step, e.value) for e in ea.Scalars(tag)]


def tb_texts(ea, tag):
    from tensorboard.util import tensor_util
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode()) for e in ea.Tensors(f"{tag}/text_summary")]


def tb_hparams(ea):
    from tensorboard.plugins.hparams import plugin_data_pb2
    content = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ssi = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: (v.string_value if v.HasField("string_value") else v.number_value) for k, v in ssi.hparams.items()}


def mlflow_runs(store, experiment="reinitlab"):
    from reinitlab.trackers.mlflow import client_for
    client = client_for(store)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])  # active runs only: replaced ones are deleted


def wandb_records(run_file):
    """The records of a W&B offline run file (run-<id>.wandb): LevelDB's log framing (a 7-byte
    W&B header, 32 KiB blocks of chunks with a 7-byte header: crc, length, type) around W&B's own
    protobuf Record. wandb ships no reader of these files any more, so the framing is read here and
    each record is parsed by wandb's own protobuf class."""
    from wandb.proto import wandb_internal_pb2 as pb
    data = Path(run_file).read_bytes()
    if len(data) < 7:
        return []
    assert data[:4] == b":W&B"
    chunks, pos, pending, block = [], 7, b"", 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            chunks.append(pending + chunk)
    records = []
    for raw in chunks:
        r = pb.Record()
        r.ParseFromString(raw)
        records.append(r)
    return records


def wandb_history(records):
    return [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]


def epoch_curve(rows, key):
    return [(r["epoch_total"], r[key]) for r in rows]


def curve(pairs):
    """(steps, values) of [(step, value), ...]."""
    return [s for s, _ in pairs], [v for _, v in pairs]


def like(pairs):
    """The same steps, and values as close as TensorBoard's float32 keeps them."""
    steps, values = curve(pairs)
    return steps, pytest.approx(values, rel=1e-6)


# ---- the settings --------------------------------------------------------------------------------
def test_tracker_names_are_the_settings_values_and_observer_settings_are_resumable():
    assert ["none", *TRACKERS] == list(typing.get_args(Tracker))
    assert {"tracker", "tracker_dir"} <= RESUMABLE_DIFFERENCES
    with pytest.raises(UserError, match="tracker='tb' is not valid: expected one of 'none', 'tensorboard'"):
        TrainConfig.from_dict({"tracker": "tb"})


@pytest.mark.slow  # a fresh interpreter importing torch
def test_training_imports_no_tracker_library():
    code = ("import sys, reinitlab.train; print([m for m in sys.modules if m.split('.')[0] in "
            "('mlflow', 'wandb', 'tensorboard') or m.startswith('torch.utils.tensorboard')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_run_folder_accepts_another_tracker_on_resume(tmp_path):
    cfg = TrainConfig(**TINY)
    (tmp_path / "r").mkdir()
    (tmp_path / "r/config.json").write_text(json.dumps(cfg.to_dict()))
    assert open_run(tmp_path / "r", cfg.replace(tracker="mlflow", tracker_dir=str(tmp_path / "m"))) == "resume"
    with pytest.raises(UserError, match="holds a run with lr"):
        open_run(tmp_path / "r", cfg.replace(lr=0.1))


def test_where_the_store_goes(tmp_path):
    """Beside a single run folder; in the study folder for a study's run, named by its run id, in
    an experiment named after the study; tracker_dir wins."""
    single = tmp_path / "runs/lw"
    assert locate("tensorboard", None, single) == (tmp_path / "runs/tensorboard", "lw", "reinitlab")
    assert locate("wandb", None, single)[0] == tmp_path / "runs"  # W&B adds its own wandb/
    study = tmp_path / "st"
    rid = "synthetic/cnn/n64/noise0/lw/seed0"
    (study / "runs" / rid).mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"definition": {"name": "tiny"}}))
    assert study_of(study / "runs" / rid) == study.resolve()
    assert locate("mlflow", None, study / "runs" / rid) == (study.resolve() / "mlflow", rid, "tiny")
    assert locate("mlflow", str(tmp_path / "elsewhere"), study / "runs" / rid)[0] == tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="needs tracker_dir"):
        locate("tensorboard", None, None)


# ---- TensorBoard ---------------------------------------------------------------------------------
@needs_tb
def test_tensorboard_mirrors_the_run_and_changes_no_number(tmp_path):
    bundle = synthetic_bundle()
    plain = run(TrainConfig(**TINY), tmp_path / "plain", progress=False, bundle=bundle)
    result = run(TrainConfig(**TINY, tracker="tensorboard"), tmp_path / "lw", progress=False, bundle=bundle)
    rows = read_jsonl(tmp_path / "lw/metrics.jsonl")
    assert timeless(rows) == timeless(read_jsonl(tmp_path / "plain/metrics.jsonl"))
    assert numbers(result) == numbers(plain)

    ea = tb_run(tmp_path / "tensorboard/lw")
    assert curve(tb_scalars(ea, "train/loss")) == like(epoch_curve(rows, "train_loss"))
    assert curve(tb_scalars(ea, "val/acc")) == like(epoch_curve(rows, "val_acc"))
    assert curve(tb_scalars(ea, "lr")) == like(epoch_curve(rows, "lr"))
    assert [s for s, _ in tb_scalars(ea, "norm/head")] == [1, 2, 3, 4]  # the diagnostics hook ran first
    assert curve(tb_scalars(ea, "round/test_acc")) == like(
        [(r["epochs_total"], r["test_acc"]) for r in result["per_round"]])
    assert curve(tb_scalars(ea, "result/test_acc")) == like([(4, result["test_acc"])])
    assert "diagnostics/margin_q50" in ea.Tags()["scalars"]
    (step, text), = tb_texts(ea, "reset")
    assert step == 3 and text.startswith("round 1: ") and "redrawn: " in text
    assert tb_texts(ea, "status") == [(4, "finished")]
    hp = tb_hparams(ea)
    assert hp["method"] == "lw" and hp["lr"] == pytest.approx(0.05) and hp["tracker"] == "tensorboard"
    assert hp["method_options.rescale"] in (0.0, 1.0)  # nested method options, flattened
    assert json.loads(tb_texts(ea, "config")[0][1].replace("\n    ", "\n"))["seed"] == 0


class Kill(Exception):
    pass


def killed_at_third_checkpoint(cfg, out, bundle, monkeypatch):
    """Train `cfg` into `out` until its third checkpoint would be written: the run dies there, after
    epoch 3 was recorded (and mirrored) but before it is checkpointed."""
    import reinitlab.train.loop as train_mod
    original, calls = train_mod.write_checkpoint, {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Kill
        return original(*a, **k)

    monkeypatch.setattr(train_mod, "write_checkpoint", dying)
    with pytest.raises(Kill):
        run(cfg, out, progress=False, bundle=bundle)
    monkeypatch.setattr(train_mod, "write_checkpoint", original)


@needs_tb
@pytest.mark.parametrize("first", ["tensorboard", "none"])
def test_a_resumed_run_shows_every_epoch_once(tmp_path, monkeypatch, first):
    """Killed after epoch 3 was mirrored but before its checkpoint (so the resumed run trains it
    again), or first trained without a tracker: the tracker's run is rebuilt from the folder and
    equals the uninterrupted run's curve, each epoch once."""
    bundle = synthetic_bundle()
    ref = run(TrainConfig(**TINY), tmp_path / "ref", progress=False, bundle=bundle)
    killed_at_third_checkpoint(TrainConfig(**TINY, tracker=first), tmp_path / "lw", bundle, monkeypatch)
    if first == "tensorboard":
        assert [s for s, _ in tb_scalars(tb_run(tmp_path / "tensorboard/lw"), "train/loss")] == [1, 2, 3]
    resumed = run(TrainConfig(**TINY, tracker="tensorboard"), tmp_path / "lw", progress=False, bundle=bundle)
    assert resumed["test_acc"] == ref["test_acc"]
    ea = tb_run(tmp_path / "tensorboard/lw")
    assert curve(tb_scalars(ea, "train/loss")) == like(epoch_curve(read_jsonl(tmp_path / "ref/metrics.jsonl"),
                                                                     "train_loss"))
    assert [s for s, _ in tb_texts(ea, "reset")] == [3]
    assert [s for s, _ in tb_scalars(ea, "round/test_acc")] == [2, 4]
    assert len(list((tmp_path / "tensorboard/lw").glob("events.out.tfevents.*"))) == 1


@needs_tb
def test_two_run_folders_of_one_name_keep_their_own_directories(tmp_path):
    """`--out a/lw` and `--out b/lw` into one tracker_dir: the second does not replace the first."""
    runs = [TrackedRun(name="lw", store=tmp_path / "tb", experiment="x", key=k, params={"lr": 0.1}, tags={})
            for k in ("a" * 16, "b" * 16)]
    for r in runs:
        w = TensorBoardWriter()
        w.open(r)
        w.scalars(1, {"train/loss": 1.0})
        w.close({"status": "finished", "epochs_total": 1})
    assert run_logdir(runs[0]) == tmp_path / "tb/lw" and run_logdir(runs[1]) == tmp_path / "tb/lw-bbbbbbbb"
    assert tb_scalars(tb_run(tmp_path / "tb/lw"), "train/loss") == [(1, 1.0)]
    assert tb_scalars(tb_run(tmp_path / "tb/lw-bbbbbbbb"), "train/loss") == [(1, 1.0)]


# ---- failures --------------------------------------------------------------------------------------
class RaisingWriter(TensorBoardWriter):
    def scalars(self, step, values):
        raise RuntimeError("disk on fire")


@needs_tb
@pytest.mark.parametrize("how", ["raising", "not installed", "unwritable"])
def test_a_failing_tracker_warns_once_and_the_run_goes_on(tmp_path, monkeypatch, how):
    bundle = synthetic_bundle()
    plain = run(TrainConfig(**TINY), tmp_path / "plain", progress=False, bundle=bundle)
    cfg = TrainConfig(**TINY, tracker="tensorboard")
    if how == "raising":
        monkeypatch.setattr(TRACKERS["tensorboard"], "hook", classmethod(lambda cls, name: TrackerHook(name, RaisingWriter)))
        expected = "RuntimeError: disk on fire"
    elif how == "not installed":
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
        expected = "the tensorboard package is not installed (pip install 'reinitlab[tensorboard]')"
    else:
        (tmp_path / "file").write_text("not a folder")
        cfg = cfg.replace(tracker_dir=str(tmp_path / "file"))
        expected = "NotADirectoryError"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(cfg, tmp_path / "lw", progress=False, bundle=bundle)
    mine = [w for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(mine) == 1, [str(w.message) for w in mine]
    assert expected in str(mine[0].message) and "the run goes on without it" in str(mine[0].message)
    assert result["status"] == "finished" and result["test_acc"] == plain["test_acc"]
    assert timeless(read_jsonl(tmp_path / "lw/metrics.jsonl")) == timeless(read_jsonl(tmp_path / "plain/metrics.jsonl"))


@needs_tb
def test_without_a_run_folder_the_tracker_needs_tracker_dir(tmp_path):
    bundle = synthetic_bundle()
    with pytest.warns(TrackerWarning, match="needs tracker_dir"):
        run(TrainConfig(**TINY, tracker="tensorboard"), None, progress=False, bundle=bundle)
    run(TrainConfig(**TINY, tracker="tensorboard", tracker_dir=str(tmp_path / "tb")), None, progress=False,
        bundle=bundle)
    assert [s for s, _ in tb_scalars(tb_run(tmp_path / "tb/run"), "train/loss")] == [1, 2, 3, 4]


# ---- MLflow ---------------------------------------------------------------------------------------------
@needs_mlflow
@pytest.mark.slow  # importing mlflow and creating its SQLite tables: ~30 s on this machine
def test_mlflow_mirrors_the_run_and_a_resume_replaces_it(tmp_path, monkeypatch):
    bundle = synthetic_bundle()
    plain = run(TrainConfig(**TINY), tmp_path / "plain", progress=False, bundle=bundle)
    cfg = TrainConfig(**TINY, tracker="mlflow")
    killed_at_third_checkpoint(cfg, tmp_path / "lw", bundle, monkeypatch)
    result = run(cfg, tmp_path / "lw", progress=False, bundle=bundle)
    rows = read_jsonl(tmp_path / "lw/metrics.jsonl")
    assert numbers(result) == numbers(plain) and timeless(rows) == timeless(read_jsonl(tmp_path / "plain/metrics.jsonl"))

    client, runs = mlflow_runs(tmp_path / "mlflow")
    (r,) = runs  # the killed attempt's run was replaced
    assert r.info.status == "FINISHED" and r.info.run_name == "lw"
    assert r.data.params["method"] == "lw" and float(r.data.params["lr"]) == 0.05
    assert r.data.params["tracker"] == "mlflow" and "method_options.rescale" in r.data.params
    assert r.data.tags["dataset"] == "synthetic" and r.data.tags["seed"] == "0"
    assert r.data.tags["reinitlab.run_dir"] == str((tmp_path / "lw").resolve())
    history = client.get_metric_history(r.info.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == epoch_curve(rows, "train_loss")  # float64: exact
    assert sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id, "round/test_acc")) == \
        [(rec["epochs_total"], rec["test_acc"]) for rec in result["per_round"]]
    assert r.data.metrics["result/test_acc"] == pytest.approx(result["test_acc"])
    assert r.data.tags["reset.step3"].startswith("round 1: ") and r.data.tags["status"] == "finished"
    local = Path(client.download_artifacts(r.info.run_id, "result.json", str(tmp_path / "dl")))
    assert json.loads(local.read_text())["test_acc"] == result["test_acc"]


# ---- W&B --------------------------------------------------------------------------------------------------
@needs_wandb
@pytest.mark.slow  # wandb starts its service process
def test_wandb_offline_run_holds_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")  # offline all the same: reinitlab never uses the network
    bundle = synthetic_bundle()
    plain = run(TrainConfig(**TINY), tmp_path / "plain", progress=False, bundle=bundle)
    result = run(TrainConfig(**TINY, tracker="wandb"), tmp_path / "lw", progress=False, bundle=bundle)
    rows = read_jsonl(tmp_path / "lw/metrics.jsonl")
    assert numbers(result) == numbers(plain) and timeless(rows) == timeless(read_jsonl(tmp_path / "plain/metrics.jsonl"))
    (d,) = (tmp_path / "wandb").glob("offline-run-*")
    # wandb's service process writes the file and may still be at it when finish() returns; it is
    # complete once it holds the exit record (or when this process exits and tears the service down)
    deadline = time.time() + 60
    while True:
        records = wandb_records(next(d.glob("run-*.wandb")))
        if "exit" in [r.WhichOneof("record_type") for r in records] or time.time() > deadline:
            break
        time.sleep(0.2)
    assert "exit" in [r.WhichOneof("record_type") for r in records]
    (run_rec,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {u.key: json.loads(u.value_json) for u in run_rec.config.update}
    assert run_rec.project == "reinitlab" and run_rec.display_name == "lw"
    assert config["method"] == "lw" and config["lr"] == 0.05 and config["method_options"]["rescale"] in (True, False)
    history = wandb_history(records)
    epochs = [(h["epoch_total"], h["train/loss"]) for h in history if "train/loss" in h]
    assert epochs == epoch_curve(rows, "train_loss")  # JSON keeps float64 exactly
    assert [h["reset"] for h in history if "reset" in h][0].startswith("round 1: ")
    assert [h["result/test_acc"] for h in history if "result/test_acc" in h] == pytest.approx([result["test_acc"]])
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({(u.key or "/".join(u.nested_key)): json.loads(u.value_json) for u in r.summary.update})
    assert summary["status"] == "finished" and summary["test_acc"] == pytest.approx(result["test_acc"])


# ---- export ---------------------------------------------------------------------------------------------
@needs_tb
def test_export_writes_each_finished_folder_once_and_refuses_bad_input(tmp_path, capsys):
    bundle = synthetic_bundle()
    results = {m: run(TrainConfig(**{**TINY, "method": m}), tmp_path / "runs" / m, progress=False, bundle=bundle)
               for m in ("lw", "baseline")}
    unfinished = tmp_path / "runs/killed"
    unfinished.mkdir()
    for f in ("config.json", "split.json"):
        (unfinished / f).write_text((tmp_path / "runs/lw" / f).read_text())
    for _ in range(2):  # twice: the second export replaces the first
        assert main(["export", "tensorboard", str(tmp_path / "runs"), "--to", str(tmp_path / "tb")]) == 0
    out = capsys.readouterr().out
    assert f"2 run(s) -> {tmp_path / 'tb'}  (1 unfinished run folder(s) left out)" in out
    assert f"open with: tensorboard --logdir {tmp_path / 'tb'}" in out
    for m, res in results.items():
        ea = tb_run(tmp_path / "tb" / m)
        rows = read_jsonl(tmp_path / "runs" / m / "metrics.jsonl")
        assert curve(tb_scalars(ea, "train/acc")) == like(epoch_curve(rows, "train_acc"))
        assert curve(tb_scalars(ea, "result/test_acc")) == like([(res["epochs_total"], res["test_acc"])])
        assert tb_hparams(ea)["method"] == m
    assert [s for s, _ in tb_texts(tb_run(tmp_path / "tb/lw"), "reset")] == [3]
    assert not (tmp_path / "tb/killed").exists()

    for argv, msg in [(["export", "tb", str(tmp_path / "runs")], "unknown choice 'tb'"),
                      (["export", "tensorboard", str(tmp_path / "nope")], "not a folder"),
                      (["export", "tensorboard", str(unfinished)], "none of its 1 run folder(s) has ended")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1


@needs_tb
def test_export_without_the_library_is_one_line(tmp_path, monkeypatch, capsys):
    run(TrainConfig(**TINY), tmp_path / "lw", progress=False, bundle=synthetic_bundle())
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["export", "tensorboard", str(tmp_path / "lw"), "--to", str(tmp_path / "tb")]) == 2
    assert "pip install 'reinitlab[tensorboard]'" in capsys.readouterr().err


# ---- a study --------------------------------------------------------------------------------------------
@needs_tb
@needs_mlflow
@pytest.mark.slow
def test_a_study_tracks_its_runs_may_change_tracker_and_exports_with_its_axes(tmp_path, monkeypatch, capsys):
    import reinitlab.bench.throughput as tp
    monkeypatch.setattr(tp, "estimate_seconds", lambda cfg: 1.0)
    b = synthetic_bundle(n_train=64, n_test=32)
    np.savez(tmp_path / "d.npz", x_train=b.x_train.numpy()[:, 0], y_train=b.y_train.numpy(),
             x_test=b.x_test.numpy()[:, 0], y_test=b.y_test.numpy())
    toml = tmp_path / "s.toml"
    toml.write_text(f'name = "trk"\ndatasets = ["npz:{tmp_path / "d.npz"}"]\narchs = ["cnn"]\n'
                    'methods = ["baseline", "lw"]\ntrain_sizes = [40]\nlabel_noise = [0.0]\nseeds = [0]\n'
                    'width = 0.25\nepochs = 1\nrounds = 1\nbatch_size = 16\n')
    out = tmp_path / "study"
    assert main(["study", str(toml), "--out", str(out), "--workers", "1", "--set", "tracker=tensorboard"]) == 0
    ids = [r["id"] for r in read_json(out / "runs.json")["runs"]]
    assert len(ids) == 2
    for rid in ids:
        ea = tb_run(out / "tensorboard" / rid)
        rows = read_jsonl(out / "runs" / rid / "metrics.jsonl")
        assert curve(tb_scalars(ea, "train/loss")) == like(epoch_curve(rows, "train_loss"))
    # another tracker (or none) is not another study
    assert main(["study", str(toml), "--out", str(out), "--set", "tracker=mlflow"]) == 0
    assert "already finished 2" in capsys.readouterr().err

    assert main(["export", "mlflow", str(out)]) == 0
    client, runs = mlflow_runs(out / "mlflow", experiment="trk")
    assert sorted(r.info.run_name for r in runs) == sorted(ids)
    for r in runs:
        method = r.info.run_name.split("/")[-2]
        assert r.data.tags["method"] == method and r.data.tags["arch"] == "cnn" and r.data.tags["train_size"] == "40"
        assert r.data.params["method"] == method
    # lw's options are settings that differ between this study's runs (baseline has none): tags of lw
    assert [r.data.tags.get("method_options.order") for r in sorted(runs, key=lambda r: r.info.run_name)] == \
        [None, "bottom_up"]
