"""One study folder, one experiment: runs made by other code or on another kind of machine are
refused in one line before anything is written, accepted with --allow-mixed and then flagged in the
report; speed-only differences never count; folders without provenance.json are read as before;
a partial run begun differently is trained again from the start; lost tasks are resubmitted a
bounded number of times; a claim that cannot be written fails the run, not the worker."""
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import reliability_common as rc

from reinitlab.cli import main
from reinitlab.study import Store, load_definition, run_study
from reinitlab.study.display import Display
from reinitlab.study.expand import expand
from reinitlab.study.runner import MAX_LOST, StudyResult, _schedule
from reinitlab.study.store import RunStatus
from reinitlab.study.worker import Outcome, Task, run_task
from reinitlab.train.provenance import source_hash
from reinitlab.util.errors import UserError

TINY = """
name = "mix"
datasets = ["{dataset}"]
archs = ["cnn"]
methods = ["baseline", "lw"]
train_sizes = [100]
label_noise = [0.0]
seeds = [0]
width = 0.25
epochs = 1
rounds = 1
threads = 1
"""
LW = "cnn/n100/noise0/lw/seed0"
OLD_COMMIT = "4dddb07" + "0" * 33


@pytest.fixture(autouse=True)
def fake_estimate(monkeypatch):
    """The plan's estimate is not what these tests check: no probe of this machine."""
    import reinitlab.bench.throughput as tp
    monkeypatch.setattr(tp, "estimate_seconds", lambda cfg: 1.0)


@pytest.fixture
def toml(tmp_path, tmp_path_factory):
    return rc.study_file(tmp_path, rc.small_npz(rc.shared(tmp_path_factory)), TINY)


def lw_folder(out: Path) -> Path:
    return next((out / "runs").glob(f"*/{LW}"))


def edit_provenance(folder: Path, **config) -> None:
    """What another code version would have written: other settings, another source, another commit."""
    p = folder / "provenance.json"
    doc = json.loads(p.read_text())
    doc["result"]["config"].update(config)
    doc["result"]["source_hash"] = "0" * 16
    doc["info"]["commit"] = OLD_COMMIT
    p.write_text(json.dumps(doc))


def snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".lock"}


def test_runs_of_other_code_are_refused_in_one_line_then_accepted_and_flagged(toml, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_study(load_definition(str(toml)), out, workers=1).finished == 2
    edit_provenance(lw_folder(out), warmup=0.02)
    before = snapshot(out)
    capsys.readouterr()

    args = ["study", str(toml), "--out", str(out), "--workers", "1", "--set", "methods=[baseline,lw,fc]"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"reinitlab: {lw_folder(out)} was trained with warmup=0.02, this code resolves warmup=0.05 "
                   "(also differs: source_hash); use another --out, or --allow-mixed"]
    assert snapshot(out) == before  # nothing written: no study.json, no journal line, no fc run

    assert main(args + ["--allow-mixed"]) == 0
    err = capsys.readouterr().err
    assert "mixed (--allow-mixed): 1 run(s) were made differently" in err and "warmup=0.02, now warmup=0.05" in err
    assert "3 finished, 0 diverged, 0 failed of 3 runs; 1 trained now" in err

    from reinitlab.report.make import make_report
    rep = make_report(out)
    p = rep.provenance
    assert p.mixed and p.varying == ["warmup", "source_hash"]
    assert [len(g.runs) for g in p.groups] == [2, 1] and p.differing() == [lw_folder(out).relative_to(out / "runs")
                                                                            .as_posix()]
    summary = (out / "summary.md").read_text()
    assert summary.splitlines()[2].startswith("> **Mixed provenance: the runs were made in 2 different ways")
    assert "| 2 | 1 | 0.02 | 0000000000000000 | 4dddb0700000 |" in summary
    assert "warmup 0.02 (group 1: 0.05); source 0000000000000000 (group 1: " + source_hash() in summary
    assert 'class="warn">Mixed provenance' in (out / "report.html").read_text()


def test_speed_only_and_old_folders_pass_and_a_partial_run_begun_differently_starts_over(toml, tmp_path, capsys):
    out = tmp_path / "out"
    defn = load_definition(str(toml))
    assert run_study(defn, out, workers=1).finished == 2
    lw = lw_folder(out)
    base = next(p for p in (out / "runs").rglob("provenance.json") if "baseline" in str(p))
    # old provenance files may carry speed-only settings in the compared part: they never count
    doc = json.loads(base.read_text())
    doc["result"]["config"].update(threads=7, eval_batch_size=3, compile=True)
    base.write_text(json.dumps(doc))
    # a folder written before provenance.json existed is read as before, with a note
    kept = (lw / "provenance.json").read_bytes()
    (lw / "provenance.json").unlink()
    stream = io.StringIO()
    r = run_study(defn, out, workers=1, stream=stream)
    assert r.finished == 2 and r.ran == 0
    assert "note: 1 run folder(s) have no provenance.json" in stream.getvalue()
    from reinitlab.report.make import make_report
    rep = make_report(out)
    assert not rep.provenance.mixed and rep.provenance.legacy == [lw.relative_to(out / "runs").as_posix()]
    assert "1 run(s) have no provenance.json" in (out / "summary.md").read_text()

    # the lw run becomes a partial run begun by other code (warmup 0.02)
    (lw / "provenance.json").write_bytes(kept)
    edit_provenance(lw, warmup=0.02)
    for f in ("result.json", "model.pt"):
        (lw / f).unlink()
    with pytest.raises(UserError, match="lw/seed0 was trained with warmup=0.02, this code resolves warmup=0.05"):
        run_study(defn, out, workers=1)
    r = run_study(defn, out, workers=1, allow_mixed=True)
    assert r.finished == 2 and r.ran == 1
    start = [row for row in Store(out).read_journal() if row["event"] == "start" and row["run"].endswith(LW)][-1]
    assert start["how"] == "new" and start["discarded"].startswith("warmup=0.02 (now warmup=0.05)")
    assert json.loads((lw / "provenance.json").read_text())["result"]["config"]["warmup"] == 0.05
    assert not make_report(out).provenance.mixed  # trained again: one code version again


def test_a_worker_on_another_kind_of_machine_refuses_the_run(toml, tmp_path):
    out = tmp_path / "out"
    defn = load_definition(str(toml), ["methods=[baseline]"])
    Store(out).check_writable()
    (out / "study.json").write_text("{}")  # the folder workers look for
    spec = expand(defn)[0][0]
    import torch
    mine = torch.backends.cpu.get_cpu_capability()
    o = run_task(Task(str(out), spec.to_dict(), {"threads": 1}, [], {"device": "cpu", "cpu_capability": "X" + mine}))
    assert o.status == "failed"
    assert f"has cpu_capability={mine}, the study's runs are made with cpu_capability=X{mine}" in o.reason
    assert json.loads((Store(out).run_dir(spec.id) / "error.json").read_text())["reason"] == o.reason
    assert not (Store(out).run_dir(spec.id) / "config.json").exists()  # refused before training


class LosingBackend:
    """Every task comes back lost, as from a node that dies each time (a backend's contract only)."""

    slots = 1

    def __init__(self, losses: int):
        self.losses, self.pending = losses, []

    def idle(self):
        return 1 - len(self.pending)

    def submit(self, task: Task):
        self.pending.append(task)

    def poll(self, timeout):
        if not self.pending:
            return []
        task = self.pending.pop()
        if self.losses:
            self.losses -= 1
            return [("outcome", Outcome(task.run_id, "lost", reason="NodeDiedError: node gone", worker="w"))]
        return [("outcome", Outcome(task.run_id, "finished", test_acc=0.5))]


@pytest.mark.parametrize("losses", [1, MAX_LOST + 1])
def test_a_lost_task_is_journaled_and_resubmitted_a_bounded_number_of_times(toml, tmp_path, losses):
    store = Store(tmp_path / "out")
    store.check_writable()
    spec = expand(load_definition(str(toml), ["methods=[baseline]"]))[0][0]
    result = StudyResult(total=1)
    _schedule(store, LosingBackend(losses), [spec], {}, {spec.id: RunStatus("pending")}, {}, result,
              Display(io.StringIO()), False)
    lost = [r for r in store.read_journal() if r["event"] == "lost"]
    assert [r["again"] for r in lost] == [True] * min(losses, MAX_LOST) + [False] * (losses > MAX_LOST)
    assert len(result.lost) == losses and result.retried == min(losses, MAX_LOST)
    if losses > MAX_LOST:  # then it is a failure, retried on the next start
        assert result.failed == [(spec.id, f"NodeDiedError: node gone ({losses} times in this start)")]
        assert "node gone" in json.loads((store.run_dir(spec.id) / "error.json").read_text())["reason"]
    else:
        assert not result.failed and result.ran == 1


@pytest.mark.slow
def test_a_changed_default_in_the_code_is_refused_then_accepted_and_flagged(toml, tmp_path, tmp_path_factory):
    """A study, then the code's default warmup changed (a copy of the
    source tree with 0.05 -> 0.1), fc added to the methods, the same command again."""
    src = Path(__file__).resolve().parents[1] / "src"
    alt = tmp_path / "changed" / "src"
    shutil.copytree(src, alt, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = alt / "reinitlab" / "train" / "config.py"
    cfg.write_text(cfg.read_text().replace("warmup: float = 0.05", "warmup: float = 0.1"))
    cache = rc.shared(tmp_path_factory) / "cache"
    out = tmp_path / "out"

    def study(tree: Path, *extra):
        env = {**rc.env(cache), "PYTHONPATH": str(tree)}
        return subprocess.run([sys.executable, "-m", "reinitlab", "study", str(toml), "--out", str(out),
                               "--workers", "1", *extra], capture_output=True, text=True, env=env, timeout=300)

    first = study(src)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(out)
    refused = study(alt, "--set", "methods=[baseline,lw,fc]")
    assert refused.returncode == 2 and refused.stdout == ""
    line = refused.stderr.strip()
    assert "\n" not in line and line.endswith("baseline/seed0 was trained with warmup=0.05, this code resolves "
                                              "warmup=0.1 (also differs: source_hash); 1 more run(s) differ; use "
                                              "another --out, or --allow-mixed"), line
    assert snapshot(out) == before
    mixed = study(alt, "--set", "methods=[baseline,lw,fc]", "--allow-mixed")
    assert mixed.returncode == 0, mixed.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "reinitlab", "report", str(out), "--quiet"], capture_output=True,
                            text=True, env={**rc.env(cache), "PYTHONPATH": str(src)}, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    assert "(warmup, source_hash differ); 1 run(s) outside the largest group" in summary
    assert "/fc/seed0 | 2 | warmup 0.1 (group 1: 0.05)" in summary
    assert os.path.exists(out / "report.html")


def test_a_claim_that_cannot_be_written_fails_the_run_not_the_worker(toml, tmp_path, monkeypatch):
    """A full disk when the claim file is written (seen in the disk-full study once provenance.json
    took its share of the space): the run is reported failed with the file named, the worker goes
    on, and no lock is left held by the lost descriptor."""
    import errno

    from reinitlab.study import lock as lockmod
    from reinitlab.study.lock import is_held
    out = tmp_path / "out"
    Store(out).check_writable()
    (out / "study.json").write_text("{}")
    spec = expand(load_definition(str(toml), ["methods=[baseline]"]))[0][0]

    def full(fd, purpose):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(lockmod, "_write_owner", full)
    o = run_task(Task(str(out), spec.to_dict(), {"threads": 1}))
    assert o.status == "failed"
    assert o.reason == f"OSError: [Errno 28] No space left on device: '{Store(out).lock_path(spec.id)}'"
    assert not is_held(Store(out).lock_path(spec.id))
