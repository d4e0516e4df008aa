"""Methods that act inside a round (every N steps, every N epochs, a loss term) or keep state (w0, a
rewind snapshot, SWR's weight ages) resume to bit-identical metrics after a crash anywhere."""
import json
import subprocess
import sys

import pytest
import torch
from conftest import killed_at_checkpoint, train_killed_after

from reinitlab import TrainConfig, run
from reinitlab.core.method import METHODS, Method, parse_spec
from reinitlab.core.reinit import Reinitializer
from reinitlab.train.engine import Engine
from reinitlab.train.loop import run_keeping_engine
from reinitlab.train.resolve import prepare
from reinitlab.util.files import read_jsonl

TINY = dict(width=0.25, epochs=3, rounds=1, batch_size=16, eval_batch_size=64, threads=1)
IN_ROUND = ["swr:every=1,rate=0.02,maturity=2", "redo:tau=1.0,every=2", "sp:every_epochs=1", "l2init:lam=0.01",
            "swr:every=2,rate=0.05,maturity=1,score=utility", "cbp:replacement_rate=0.05,maturity=2",
            "snr:tau_init=16,adapt_every=3", "hare:momentum=0.9,every_epochs=1", "fc:every=3",
            "sp:every_epochs=1,step=0.1", "cbp:replacement_rate=0.05,maturity=2,utility=adaptable_contribution"]
STATEFUL = ["rewind:rewind_epoch=2", "ke:redraw=init", "lw:redraw=rewind,rewind_epoch=2", "fc:redraw=peer"]


def timeless(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


class Crash(Exception):
    pass


def test_every_method_that_acts_in_rounds_or_watches_training_is_resumed_here():
    """A method that may act inside a round (step_event, epoch_event, loss_term) or watches training
    (attach) keeps state a kill must not lose: a spec of it belongs in IN_ROUND, so the crash test below
    covers every such method, including one registered later."""
    hooks = ("step_event", "epoch_event", "loss_term", "attach")
    acting = {name for name, cls in METHODS.items() if any(getattr(cls, h) is not getattr(Method, h) for h in hooks)}
    assert acting - {parse_spec(s)[0] for s in IN_ROUND} == set()
    assert {"cbp", "snr", "hare", "fc"} <= acting


def test_in_round_methods_do_act(bundle):
    for spec in IN_ROUND[:3]:
        result, eng = run_keeping_engine(TrainConfig(method=spec, **TINY), out=None, progress=False, bundle=bundle)
        log = eng.reinit.in_round_log
        assert result["status"] == "finished"
        assert [r["round"] for r in log] == [0, 1], spec
        assert all(r["events"] > 0 and r["replaced_elements"] >= 0 for r in log), spec
    baseline, _ = run_keeping_engine(TrainConfig(method="l2init:lam=0", **TINY), out=None, progress=False, bundle=bundle)
    penalized, _ = run_keeping_engine(TrainConfig(method="l2init:lam=0.5", **TINY), out=None, progress=False, bundle=bundle)
    assert baseline["per_round"][0]["train_loss"] != penalized["per_round"][0]["train_loss"]


@pytest.mark.parametrize("spec", IN_ROUND + STATEFUL)
def test_crash_mid_epoch_resumes_to_the_same_metrics(tmp_path, bundle, monkeypatch, spec):
    """The crash comes after a few optimizer steps of the second epoch of round 1, i.e. after in-round
    events changed weights and method state that no checkpoint holds yet."""
    cfg = TrainConfig(method=spec, augment="crop", **TINY)
    ref = run(cfg, tmp_path / "ref", progress=False, bundle=bundle)
    steps = Engine(prepare(cfg, bundle)).schedule.steps
    crash_at = steps * (cfg.epochs + 1) + 2  # round 0's epochs, one epoch of round 1, two steps more
    original = Reinitializer.after_step
    calls = {"n": 0}

    def crashing(self, *a, **k):
        calls["n"] += 1
        out = original(self, *a, **k)
        if calls["n"] == crash_at:
            raise Crash
        return out

    monkeypatch.setattr(Reinitializer, "after_step", crashing)
    with pytest.raises(Crash):
        run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    assert (tmp_path / "run/ckpt.pt").exists() and not (tmp_path / "run/result.json").exists()
    monkeypatch.setattr(Reinitializer, "after_step", original)
    resumed = run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    assert timeless(read_jsonl(tmp_path / "run/metrics.jsonl")) == timeless(read_jsonl(tmp_path / "ref/metrics.jsonl"))
    for key in ("test_acc", "val_acc", "train_acc", "epochs_total"):
        assert resumed[key] == ref[key], key
    a = torch.load(tmp_path / "ref/model.pt", weights_only=True)  # run folders hold data only
    b = torch.load(tmp_path / "run/model.pt", weights_only=True)  # run folders hold data only
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["reinit"]["in_round_log"] == b["reinit"]["in_round_log"]


@pytest.mark.parametrize("spec", ["swr:every=1,rate=0.02,maturity=2", "rewind:rewind_epoch=1"])
def test_crash_at_a_round_boundary_resumes_to_the_same_metrics(tmp_path, bundle, monkeypatch, spec):
    cfg = TrainConfig(method=spec, **TINY)
    ref = run(cfg, tmp_path / "ref", progress=False, bundle=bundle)
    # killed with round 0 done and checkpointed, round 1 not started
    train_killed_after(cfg.epochs, cfg, tmp_path / "run", monkeypatch, bundle=bundle)
    resumed = run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    assert timeless(read_jsonl(tmp_path / "run/metrics.jsonl")) == timeless(read_jsonl(tmp_path / "ref/metrics.jsonl"))
    assert resumed["test_acc"] == ref["test_acc"]


@pytest.mark.slow
def test_sigkill_of_a_run_with_in_round_events_then_same_command_finishes_identically(tmp_path):
    args = [sys.executable, "-m", "reinitlab", "train", "--dataset", "fashion-mnist-small", "--arch", "cnn",
            "--method", "swr:every=1,rate=0.01,maturity=5", "--train-size", "200", "--epochs", "3",
            "--rounds", "1", "--width", "0.25", "--set", "threads=1", "--quiet"]
    subprocess.run(args + ["--out", str(tmp_path / "ref")], check=True, timeout=300)
    killed_at_checkpoint(args, tmp_path / "run", 4)
    metrics = tmp_path / "run/metrics.jsonl"
    assert len(read_jsonl(metrics)) == 4 and not (tmp_path / "run/result.json").exists()
    subprocess.run(args + ["--out", str(tmp_path / "run")], check=True, timeout=300)
    ref = json.loads((tmp_path / "ref/result.json").read_text())
    got = json.loads((tmp_path / "run/result.json").read_text())
    assert (got["test_acc"], got["val_acc"], got["epochs_total"]) == (ref["test_acc"], ref["val_acc"], ref["epochs_total"])
    assert timeless(read_jsonl(metrics)) == timeless(read_jsonl(tmp_path / "ref/metrics.jsonl"))
