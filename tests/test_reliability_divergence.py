"""Divergence: NaN or inf in the loss or the weights stops that run with status `diverged` and its
round and epoch, also when the run is killed right after and resumed; in a study the other runs go
on, and the report counts and lists the diverged runs instead of averaging over them."""
import math
import re

import pytest
import reliability_common as rc
import torch
from conftest import synthetic_bundle

from reinitlab import TrainConfig, run
from reinitlab.util import files
from reinitlab.train.engine import Engine

TINY = dict(width=0.25, batch_size=16, eval_batch_size=64, threads=1)


class Kill(BaseException):
    """What SIGKILL does to the process, as far as the run folder can tell: it stops mid-way."""


def kill_before(monkeypatch, name):
    real = files.atomic_write_bytes

    def write(path, data):
        if path.name == name:
            raise Kill
        return real(path, data)
    monkeypatch.setattr(files, "atomic_write_bytes", write)


@pytest.mark.parametrize("method,epochs,rounds", [("fc", 2, 1), ("fc", 1, 1), ("baseline", 1, 1)])
def test_divergence_survives_a_kill_before_the_result_is_written(tmp_path, monkeypatch, method, epochs, rounds):
    """Killed after the diverged epoch's bookkeeping but before result.json: the next start must
    reach the same verdict, not train on from NaN weights (or call a NaN run finished)."""
    bundle = synthetic_bundle()
    cfg = TrainConfig(method=method, lr=1e30, epochs=epochs, rounds=rounds, **TINY)
    ref = run(cfg, tmp_path / "ref", progress=False, bundle=bundle)
    assert ref["status"] == "diverged" and ref["diverged_at"] == {"round": 0, "epoch": 1}
    assert ref["test_acc"] is None and ref["per_round"] == []

    kill_before(monkeypatch, "model.pt")
    with pytest.raises(Kill):
        run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    monkeypatch.undo()
    assert not (tmp_path / "run/result.json").exists()
    again = run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    assert (again["status"], again.get("diverged_at"), again["epochs_total"]) == \
        (ref["status"], ref["diverged_at"], ref["epochs_total"])
    rows = files.read_jsonl(tmp_path / "run/metrics.jsonl")
    assert [(r["round"], r["epoch"]) for r in rows] == [(0, 1)]


@pytest.mark.parametrize("killed", [False, True])
def test_inf_in_the_weights_with_a_finite_loss_stops_the_run(tmp_path, monkeypatch, killed):
    """The loss of the epoch is finite, a weight is not: diverged at that round and epoch; the
    finished round before it is kept in per_round, with its accuracies, but the run claims none of
    them as its own. Killed before result.json, the run resumes from the last finite checkpoint and
    diverges the same way."""
    bundle = synthetic_bundle()
    real = Engine.train_epoch

    def poisoned(self, opt, round_, epoch, *a, **k):
        out = real(self, opt, round_, epoch, *a, **k)
        if (round_, epoch) == (1, 1):
            with torch.no_grad():
                next(self.model.parameters()).view(-1)[0] = math.inf
        return out
    cfg = TrainConfig(method="fc", epochs=2, rounds=2, **TINY)
    monkeypatch.setattr(Engine, "train_epoch", poisoned)
    if killed:
        with monkeypatch.context() as m:
            kill_before(m, "model.pt")
            with pytest.raises(Kill):
                run(cfg, tmp_path / "run", progress=False, bundle=bundle)
        ck = torch.load(tmp_path / "run/ckpt.pt", weights_only=False)
        assert ck["epochs_total"] == 3 and all(torch.isfinite(v).all() for v in ck["model"].values())
    r = run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    assert r["status"] == "diverged" and r["diverged_at"] == {"round": 1, "epoch": 2}
    assert [p["round"] for p in r["per_round"]] == [0] and r["epochs_total"] == 4
    assert r["per_round"][0]["test_acc"] is not None
    assert (r["test_acc"], r["val_acc"], r["train_acc"]) == (None, None, None)  # not round 0's
    rows = files.read_jsonl(tmp_path / "run/metrics.jsonl")
    assert math.isfinite(rows[-1]["train_loss"]) and "test_acc" not in rows[-1]
    assert not (tmp_path / "run/ckpt.pt").exists()


def table(markdown: str, title: str) -> list[dict]:
    """The rows of the Markdown table under `## title`, as dicts by column name."""
    section = markdown.split(f"## {title}\n")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    return [dict(zip(split(lines[0]), split(line), strict=True)) for line in lines[2:]]


@pytest.mark.slow
def test_study_goes_on_and_the_report_lists_diverged_runs(tmp_path, tmp_path_factory):
    """fc gets lr=1e30 (a study's settings are shared, so it is set per run by the test harness):
    both fc runs diverge; baseline and lw finish with the same numbers as in the reference study."""
    ref_out, ref_rows, ref_runs = rc.reference(tmp_path_factory)
    base = rc.shared(tmp_path_factory)
    toml = rc.study_file(tmp_path, rc.small_npz(base))
    out = tmp_path / "out"
    proc = rc.start(toml, out, base / "cache", {"lr": {"fc": 1e30}})
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log[-3000:]  # diverged is an outcome, not a failure
    assert "4 finished, 2 diverged, 0 failed of 6 runs" in log
    assert len(re.findall(r"diverged \S+/fc/seed\d.*diverged at \{'round': 0, 'epoch': 1\}", log)) == 2

    rows = {r["run"]: r for r in rc.report_csv(out)}
    ref = {r["run"]: r for r in rc.without_timing(ref_rows)}
    for rid, row in rows.items():
        if "/fc/" in rid:
            assert row["status"] == "diverged" and row["test_acc"] == ""
            assert (row["diverged_round"], row["diverged_epoch"]) == ("0", "1") and row["lr"] == "1e+30"
        else:  # the other runs are untouched by their neighbours' divergence
            assert {k: v for k, v in row.items() if k not in rc.TIMING} == ref[rid]
    summary = (out / "summary.md").read_text()
    assert "6 runs: 4 finished, 2 diverged." in summary
    # the fc cell averages nothing and says why; baseline's mean is over its two finished seeds
    # one row per method; the study has one combination, so one column
    cells = {r["method"]: r["all runs"] for r in table(summary, "Test accuracy (%)")}
    assert cells["fc"] == "— [2 diverged]"
    accs = [float(r["test_acc"]) for r in rows.values() if "/baseline/" in r["run"]]
    assert cells["baseline"].startswith(f"{100 * sum(accs) / 2:.2f} ± ") and cells["baseline"].endswith("(2)")
    paired = {r["method"]: r["all runs"] for r in table(summary, "Paired difference vs baseline (points)")}
    assert "fc" not in paired and paired["lw"].endswith("(2)")  # no pair with a diverged run
    listed = table(summary, "Failed and diverged runs")
    assert sorted(r["run"].split("/")[-2] for r in listed) == ["fc", "fc"]
    assert {r["reason"] for r in listed} == {"non-finite loss or weights at round 0, epoch 1"}
    ends = [r for r in rc.journal(out) if r["event"] == "end"]
    assert sorted(r["status"] for r in ends) == ["diverged"] * 2 + ["finished"] * 4
