"""A study's `analyses`: run on every finished run by the worker right after training, never redone,
added without retraining when a finished run lacks them (analyses added later, or the study killed
between result.json and analysis.json), and a failing analysis recorded without failing its run.
The plan's estimate includes the analyses' measured cost."""
import json
import signal
import time
from pathlib import Path

import pytest
from test_study_run import fake_estimate, journal, result_files, small_npz, start_study, subprocess_env, tiny_toml  # noqa: F401

from reinitlab.cli import main
from reinitlab.study import Store, expand, load_definition
from reinitlab.study.lock import is_held
from reinitlab.study.runner import write_definition
from reinitlab.study.worker import Task, run_task
from reinitlab.util.errors import UserError


def analysis_toml(folder: Path, dataset: str, analyses: list[str]) -> Path:
    p = tiny_toml(folder, dataset)
    p.write_text(p.read_text() + f"analyses = {json.dumps(analyses)}\n")
    return p


def analysis_events(out) -> list[dict]:
    return [r for r in journal(out) if r["event"] == "analysis"]


def analysis_files(out) -> dict[str, int]:
    return {str(p.parent.relative_to(Path(out) / "runs")): p.stat().st_mtime_ns
            for p in (Path(out) / "runs").rglob("analysis.json")}


@pytest.fixture
def fake_analysis_cost(monkeypatch):
    import reinitlab.study.analysis_cost as ac
    monkeypatch.setattr(ac, "analysis_seconds", lambda cfg, names: ({n: 1.5 for n in names}, 0.5))


def test_unknown_analysis_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"analyses: unknown analysis 'margin' \(did you mean 'margins'\?\); valid: margins, norms"):
        load_definition(str(analysis_toml(tmp_path, "fashion-mnist-small", ["margin"])))


def test_plan_includes_the_analyses_cost(tmp_path, capsys, fake_analysis_cost):
    toml = analysis_toml(tmp_path, "fashion-mnist-small", ["margins", "norms"])
    assert main(["study", str(toml), "--out", str(tmp_path / "out"), "--workers", "1", "--dry-run"]) == 0
    err = capsys.readouterr().err
    # fake training estimate: baseline 10 s, lw 20 s (test_study_run.fake_estimate), + 3 s of analyses each,
    # 2 seeds: 72 s of runs on one worker after its 4 s start
    assert "estimated wall time: 1m 16s (1m 12s of single-run time" in err
    assert "analyses per finished run: margins, norms (~3.0s per run, measured here" in err


def test_analysis_cost_is_measured_then_read_from_the_cache(tmp_path, monkeypatch, small_npz):  # noqa: F811
    import reinitlab.study.analysis_cost as ac
    from reinitlab.train.config import TrainConfig
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path))
    monkeypatch.setattr(ac, "_memo", {})
    cfg = TrainConfig.from_dict({"dataset": small_npz, "width": 0.25, "train_size": 100, "threads": 1})
    per, load_s = ac.analysis_seconds(cfg, ["margins", "memorization"])
    assert set(per) == {"margins", "memorization"} and all(v > 0 for v in per.values()) and load_s > 0
    assert (tmp_path / "probes.json").exists()
    monkeypatch.setattr(ac, "_memo", {})  # a new process: only the file cache is left
    monkeypatch.setattr(ac, "_measure", lambda *a, **k: pytest.fail("measured again despite the cache"))
    again, _ = ac.analysis_seconds(cfg, ["margins", "memorization"])
    assert again == per


def test_a_failing_analysis_is_recorded_and_its_run_stays_finished(tmp_path, monkeypatch, small_npz):  # noqa: F811
    from reinitlab.analyses import ANALYSES
    defn = load_definition(str(analysis_toml(tmp_path, small_npz, ["margins", "norms"])), ["seeds=[0]",
                                                                                           "methods=[baseline]"])
    runs, budgets = expand(defn)
    store = Store(tmp_path / "out")
    store.check_writable()
    write_definition(store, defn, runs, budgets, ["test"])
    task = Task(str(store.root), runs[0].to_dict(), {"threads": 1}, list(defn.analyses))

    def boom(*a, **k):
        raise RuntimeError("norms exploded")
    monkeypatch.setattr(ANALYSES["norms"], "run", boom)
    out = run_task(task)
    assert out.status == "finished" and out.analysis_failed and "ANALYSIS FAILED norms: RuntimeError" in out.analysis
    folder = store.run_dir(runs[0].id)
    err = json.loads((folder / "analysis_error.json").read_text())
    assert err["attempt"] == 1 and "norms exploded" in err["analyses"]["norms"]["reason"]
    assert "Traceback" in err["analyses"]["norms"]["traceback"]
    assert list(json.loads((folder / "analysis.json").read_text())["analyses"]) == ["margins"]  # the other one kept
    assert store.state(runs[0].id).status == "finished" and store.analyses_missing(runs[0].id, defn.analyses) == ["norms"]
    result_mtime = (folder / "result.json").stat().st_mtime_ns

    monkeypatch.undo()
    out = run_task(task)  # the next start: the run is not retrained, the missing analysis is added
    assert out.status == "analysed" and not out.analysis_failed and out.analysis == "analyses done: norms"
    assert (folder / "result.json").stat().st_mtime_ns == result_mtime
    assert not (folder / "analysis_error.json").exists()
    assert list(json.loads((folder / "analysis.json").read_text())["analyses"]) == ["margins", "norms"]
    assert run_task(task).status == "done_before"  # complete now: nothing to do


@pytest.mark.slow
def test_analyses_run_once_per_run_and_are_added_later_without_retraining(tmp_path, capsys, small_npz,  # noqa: F811
                                                                          fake_analysis_cost):
    toml = analysis_toml(tmp_path, small_npz, ["margins", "norms"])
    out = tmp_path / "out"
    one_seed = ["--set", "seeds=[0]"]
    assert main(["study", str(toml), "--out", str(out), "--workers", "2", *one_seed]) == 0
    err = capsys.readouterr().err
    assert "2 finished, 0 diverged, 0 failed of 2 runs" in err and err.count("analyses done: margins,norms") == 2
    for p in (out / "runs").rglob("analysis.json"):
        doc = json.loads(p.read_text())
        assert list(doc["analyses"]) == ["margins", "norms"] and "margins.q50" in doc["numbers"]
        assert doc["run"]["method"] in ("baseline", "lw")
    assert len(analysis_files(out)) == 2 and len(analysis_events(out)) == 2
    before, results = analysis_files(out), result_files(out)

    assert main(["study", str(toml), "--out", str(out), *one_seed]) == 0  # nothing to do: nothing redone
    assert "to run now: 0" in capsys.readouterr().err
    assert analysis_files(out) == before and len(analysis_events(out)) == 2

    # an analysis added to the study: computed on the finished runs, nothing retrained, margins kept
    margins = {k: json.loads((out / "runs" / k / "analysis.json").read_text())["analyses"]["margins"] for k in before}
    assert main(["study", str(toml), "--out", str(out), *one_seed, "--workers", "2",
                 "--set", 'analyses=["margins","norms","memorization"]']) == 0
    err = capsys.readouterr().err
    assert "2 finished run(s) lack them and are analysed now without training" in err
    assert err.count("analyses done: memorization") == 2 and "0 trained now" in err
    assert result_files(out) == results
    assert not [r for r in journal(out) if r["event"] == "start" and r["t"] > max(before.values()) / 1e9]
    for k in before:
        doc = json.loads((out / "runs" / k / "analysis.json").read_text())
        assert list(doc["analyses"]) == ["margins", "norms", "memorization"]
        assert doc["analyses"]["margins"] == margins[k]


@pytest.mark.slow
def test_a_kill_between_result_and_analysis_is_healed_on_the_next_start(tmp_path, small_npz, subprocess_env):  # noqa: F811
    # killed (the study with its worker) as it is about to write the run's first analysis.json: after
    # its result.json, before any analysis is stored, however fast this CPU computes them
    names = ["margins", "norms", "bound", "flatness"]
    toml = analysis_toml(tmp_path, small_npz, names)
    out = tmp_path / "out"
    args = ["--workers", "1", "--set", "seeds=[0]", "--set", "methods=[baseline]", "--set", "threads=1"]
    proc = start_study(subprocess_env, toml, out, *args,
                       faults={"kill": {"file": "analysis.json", "nth": 1, "phase": "before"}})
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == -signal.SIGKILL, log[-3000:]
    for _ in range(600):  # the worker got the same SIGKILL; its claim is free once it has exited
        if not any(is_held(p) for p in (out / "runs").rglob("*.lock")):
            break
        time.sleep(0.05)
    caught = next(p.parent for p in (out / "runs").rglob("result.json"))
    assert not (caught / "analysis.json").exists()
    results = result_files(out)

    again = start_study(subprocess_env, toml, out, *args)
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0, log[-3000:]
    rid = str(caught.relative_to(out / "runs"))
    assert f"analysed {rid} (trained before)" in log
    doc = json.loads((caught / "analysis.json").read_text())
    assert list(doc["analyses"]) == names
    after = result_files(out)
    assert {k: after[k] for k in results} == results  # the caught run was not retrained
    assert len(after) == 1 and len(analysis_files(out)) == 1
    events = [r["event"] for r in journal(out)]
    # trained once, analysed once (the kill may also have come before the journal's "end" line)
    assert events in (["start", "end", "analysis"], ["start", "analysis"]), events
