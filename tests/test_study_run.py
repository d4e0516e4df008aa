"""Studies end to end through the real command: a tiny study runs, is not redone, records a failing
run and goes on, survives SIGKILL of the study process, cooperates with a second study process on
the same folder, runs on a local Ray instance, and prints its plan with an estimate."""
import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for

from reinitlab.bench.throughput import estimate_seconds as real_estimate_seconds
from reinitlab.cli import main
from reinitlab.study import Store, load_definition, run_study
from reinitlab.study.lock import is_held
from reinitlab.study.runner import cores

FAULTS = Path(__file__).resolve().parent / "faultinject"

TINY = """
name = "tiny"
datasets = ["{dataset}"]
archs = ["cnn"]
methods = ["baseline", "lw"]
train_sizes = [100]
label_noise = [0.0]
seeds = [0, 1]
width = 0.25
epochs = 1
rounds = 1
"""


def tiny_toml(folder: Path, dataset: str = "fashion-mnist-small") -> Path:
    p = folder / "tiny.toml"
    p.write_text(TINY.replace("{dataset}", dataset))
    return p


@pytest.fixture
def tiny(tmp_path):
    return tiny_toml(tmp_path)


@pytest.fixture(scope="session")
def small_npz(tmp_path_factory) -> str:
    """300 training and 200 test images of fashion-mnist-small as `npz:PATH`: the subprocess tests
    run many runs, and evaluating the full 10,000-image test set every round would dominate them."""
    import numpy as np

    from reinitlab.data import load_dataset
    b = load_dataset("fashion-mnist-small")
    keep_train = np.concatenate([np.nonzero(b.y_train.numpy() == c)[0][:30] for c in range(10)])
    keep_test = np.concatenate([np.nonzero(b.y_test.numpy() == c)[0][:20] for c in range(10)])
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x_train=b.x_train.numpy()[keep_train, 0], y_train=b.y_train.numpy()[keep_train],
             x_test=b.x_test.numpy()[keep_test, 0], y_test=b.y_test.numpy()[keep_test])
    return f"npz:{path}"


@pytest.fixture
def tiny_small(tmp_path, small_npz):
    return tiny_toml(tmp_path, small_npz)


@pytest.fixture(autouse=True)
def fake_estimate(monkeypatch):
    """In-process studies: a known estimate instead of probing this machine (10 s per epoch)."""
    import reinitlab.bench.throughput as tp
    seen = []

    def estimate_seconds(cfg):
        seen.append(cfg)
        epochs = cfg.epochs if cfg.method == "baseline" else (cfg.rounds + 1) * cfg.epochs
        return 10.0 * epochs
    monkeypatch.setattr(tp, "estimate_seconds", estimate_seconds)
    return seen


@pytest.fixture(scope="session")
def subprocess_env(tmp_path_factory, small_npz):
    """Study subprocesses plan with the real throughput model. Its probe cache goes to a session
    folder, warmed here once, so each subprocess reads the probe instead of measuring it again."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cache = tmp_path_factory.mktemp("reinitlab-cache")
    env["REINITLAB_DATA"] = str(cache)
    old = os.environ.get("REINITLAB_DATA")
    os.environ["REINITLAB_DATA"] = str(cache)
    try:
        defn = load_definition(str(tiny_toml(tmp_path_factory.mktemp("warm"), small_npz)))
        from reinitlab.study import expand
        run = expand(defn)[0][0]
        for workers in (1, 2):  # the thread counts the subprocess tests use
            real_estimate_seconds(run.train_config(threads=max(1, cores() // workers)))
    finally:
        if old is None:
            del os.environ["REINITLAB_DATA"]
        else:
            os.environ["REINITLAB_DATA"] = old
    return env


def journal(out) -> list[dict]:
    return Store(out).read_journal()


def ends(out, status="finished") -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in journal(out):
        if row["event"] == "end" and row["status"] == status:
            counts[row["run"]] = counts.get(row["run"], 0) + 1
    return counts


def result_files(out) -> dict[str, float]:
    return {str(p.parent.relative_to(Path(out) / "runs")): p.stat().st_mtime_ns
            for p in (Path(out) / "runs").rglob("result.json")}


def test_plan_is_printed_with_the_estimate_and_dry_run_writes_nothing(tiny, tmp_path, capsys, fake_estimate):
    out = tmp_path / "out"
    assert main(["study", str(tiny), "--out", str(out), "--workers", "2", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "study tiny: 4 runs (1 dataset x 1 arch x 1 size x 1 noise level x 2 methods x 2 seeds)" in err
    assert "budget cnn: R=1 rounds after round 0, E=1 epochs each: reinit methods and long train 2 epochs" in err
    assert f"2 local worker processes x {max(1, cores() // 2)} torch thread" in err
    # lw 20 s, baseline 10 s; 2 workers start at 4 s, 1.15x slower side by side, longest first per seed:
    # w1: lw0 4 -> 27, w2: base0 4 -> 15.5, lw1 15.5 -> 38.5, base1 27 -> 38.5
    assert "estimated wall time: 38s (1m 00s of single-run time" in err
    assert {c.threads for c in fake_estimate} == {max(1, cores() // 2)}
    assert not out.exists()


@pytest.mark.slow
def test_tiny_study_end_to_end_then_nothing_is_redone(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", str(tiny), "--out", str(out), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "study tiny: 4 finished, 0 diverged, 0 failed of 4 runs; 4 trained now" in err
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert [r["id"] for r in runs] == [f"fashion-mnist-small/cnn/n100/noise0/{m}/seed{s}"
                                       for s in (0, 1) for m in ("baseline", "lw")]
    study = json.loads((out / "study.json").read_text())
    assert study["definition"]["settings"] == {"width": 0.25, "epochs": 1, "rounds": 1}
    for r in runs:
        folder = out / "runs" / r["id"]
        assert json.loads((folder / "result.json").read_text())["status"] == "finished"
        assert (folder / "model.pt").exists() and not (folder / "ckpt.pt").exists()
        assert json.loads((folder / "config.json").read_text())["threads"] == max(1, cores() // 2)
        assert not Path(str(folder) + ".lock").exists()
    before, n_events = result_files(out), len(journal(out))

    assert main(["study", str(tiny), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "already finished 4" in err and "to run now: 0" in err and "0 trained now" in err
    assert result_files(out) == before and len(journal(out)) == n_events

    assert main(["report", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "| method | all runs |" in summary and "Every run: fashion-mnist-small, cnn, 100 examples" in summary
    assert "## Answer" in summary and "(2 seeds)" in summary


@pytest.mark.slow
def test_failed_run_is_recorded_and_the_study_goes_on(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    # every input is checked before a study starts (a train size beyond the pool is refused there),
    # so the failing run's failure is injected into the spawned worker: it raises as it starts
    faults = Path(__file__).resolve().parent / "faultinject"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(faults), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("REINITLAB_FAULTS", json.dumps({"raise": {"train_size": 200}}))
    args = ["study", str(tiny), "--out", str(out), "--workers", "1", "--set", "train_sizes=[100,200]",
            "--set", "methods=[baseline]", "--set", "seeds=[0]"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "FAILED fashion-mnist-small/cnn/n200/noise0/baseline/seed0: RuntimeError: injected failure" in err
    assert "1 run(s) failed" in err
    ok, bad = out / "runs/fashion-mnist-small/cnn/n100/noise0/baseline/seed0", \
        out / "runs/fashion-mnist-small/cnn/n200/noise0/baseline/seed0"
    assert (ok / "result.json").exists()
    error = json.loads((bad / "error.json").read_text())
    assert error["attempt"] == 1 and "injected failure" in error["reason"]
    assert "Traceback" in error["traceback"]

    assert main(args + ["--keep-failed"]) == 1  # not retried
    assert "to run now: 0" in capsys.readouterr().err
    assert main(args) == 1  # retried, fails again
    assert json.loads((bad / "error.json").read_text())["attempt"] == 2
    assert ends(out) == {"fashion-mnist-small/cnn/n100/noise0/baseline/seed0": 1}


def start_study(env, toml, out, *extra, faults=None):
    """`reinitlab study` as a subprocess; with `faults` (tests/faultinject) in a session of its own,
    since a fault's kill takes its whole process group."""
    if faults:
        env = {**env, "PYTHONPATH": str(FAULTS) + os.pathsep + env.get("PYTHONPATH", ""),
               "REINITLAB_FAULTS": json.dumps(faults)}
    return subprocess.Popen([sys.executable, "-m", "reinitlab", "study", str(toml), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=bool(faults))


def paused_at(flag: Path, proc) -> tuple[int, Path]:
    """Wait until a "pause" fault fired: the paused process's pid and the file it had just written."""
    wait_for(flag.exists, proc, f"the pause {flag.name}", timeout=240)
    time.sleep(0.05)  # the flag is created, then its two lines are written
    pid, path = flag.read_text().split("\n")
    return int(pid), Path(path)


@pytest.mark.parametrize("machine_cores", [2, 4])
def test_the_thread_count_does_not_depend_on_the_runs_left(monkeypatch, machine_cores):
    """A restarted study with fewer runs left than workers starts fewer workers, but each keeps the
    threads of the workers asked for: on the CPU the thread count changes a run's last bits, and a
    restarted study must give the numbers of an uninterrupted one (one run left once got every core)."""
    from reinitlab.study import runner
    from reinitlab.train.config import TrainConfig
    monkeypatch.setattr(runner, "cores", lambda: machine_cores)
    settings = TrainConfig(device="cpu")
    for workers, expected in ((2, machine_cores // 2), (None, 1)):
        threads = {runner._resources("local", None, workers, settings, n_todo, dry_run=True).speed["threads"]
                   for n_todo in (0, 1, 2, 6)}
        assert threads == {expected}, workers
    assert runner._resources("local", None, 2, settings, 1, dry_run=True).slots == 1


@pytest.mark.slow
def test_sigkill_midway_then_rerun_finishes_every_run_once(tiny_small, tmp_path, subprocess_env):
    out = tmp_path / "out"
    args = ["--workers", "2", "--set", "epochs=4"]
    # one worker pauses right after the study's first result.json, the other right after its next
    # checkpoint: one run finished and one midway, whatever the speed of this CPU
    done, midway = tmp_path / "done", tmp_path / "midway"
    proc = start_study(subprocess_env, tiny_small, out, *args, faults={
        "counters": str(tmp_path / "counters"),
        "pause": [{"file": "result.json", "nth": 1, "flag": str(done)},
                  {"file": "ckpt.pt", "nth": 1, "after": str(done), "flag": str(midway)}]})
    paused_at(done, proc)
    paused_at(midway, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the study process only: its workers must follow it
    proc.wait()
    finished_before = result_files(out)
    locks = list((out / "runs").rglob("*.lock"))
    assert locks, "a run was midway: its claim file must be left behind"
    t = time.time()
    while any(is_held(p) for p in locks) and time.time() - t < 20:
        time.sleep(0.1)
    assert not any(is_held(p) for p in locks), "a worker outlived the killed study process"

    again = start_study(subprocess_env, tiny_small, out, *args)
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0, log[-3000:]
    assert f"already finished {len(finished_before)}" in log
    after = result_files(out)
    assert len(after) == 4
    assert {k: after[k] for k in finished_before} == finished_before  # no finished run retrained
    finished_once = ends(out)
    assert set(finished_once.values()) == {1}  # no run trained to the end twice
    # a run without its journal line was killed between writing result.json and logging: it was
    # finished before the kill, and its result was kept
    assert set(after) - set(finished_once) <= set(finished_before)
    starts = [r for r in journal(out) if r["event"] == "start"]
    resumed = [r for r in starts if r["how"] == "resume"]
    assert resumed, "the run killed midway resumed from its checkpoint"
    # its claim file named the killed worker; the new claimant took the lock over from that pid
    assert all(isinstance(r["recovered_from"], int) and r["recovered_from"] != r["pid"] for r in resumed)


@pytest.mark.slow
def test_two_study_processes_on_one_folder_never_train_a_run_twice(tiny_small, tmp_path, subprocess_env):
    """Both processes train, deterministically: the first is paused inside its first run (its claim
    held) while the second starts, trains the other three and waits on the held one; then the first
    goes on, and each finds the other's runs finished. Racing two free processes could let the
    first train all four before the second had imported torch (CI once saw exactly that)."""
    out = tmp_path / "out"
    args = ["--workers", "1", "--set", "epochs=2"]
    flag = tmp_path / "paused"
    a = start_study(subprocess_env, tiny_small, out, *args, faults={"pause": {"file": "ckpt.pt", "nth": 1,
                                                                              "flag": str(flag)}})
    paused_at(flag, a)  # the worker training a's first run, right after its first checkpoint; its claim stays held
    first = next(r for r in journal(out) if r["event"] == "start")
    try:
        b = start_study(subprocess_env, tiny_small, out, *args)
        wait_for(lambda: len(result_files(out)) == 3 or None, b, "the second process trained the other three",
                 timeout=240)
        assert first["run"] not in {r["run"] for r in journal(out) if r["pid"] != first["pid"]}
    finally:
        Path(str(flag) + ".go").touch()
    logs = [p.communicate(timeout=300)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, logs
    rows = journal(out)
    runs = {r["run"] for r in rows}
    assert len(runs) == 4 and len(result_files(out)) == 4
    for run in runs:
        events = [r for r in rows if r["run"] == run]
        assert [e["event"] for e in events] == ["start", "end"], events  # one claim, one training
    trained_by = collections.Counter(r["pid"] for r in rows if r["event"] == "end")
    assert trained_by[first["pid"]] == 1 and sum(trained_by.values()) == 4 and len(trained_by) == 2
    assert "held elsewhere" in logs[1] and "finished elsewhere" in logs[0], logs


@pytest.mark.slow
def test_ray_backend_on_a_local_instance(tiny_small, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'reinitlab[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        defn = load_definition(str(tiny_small), ["seeds=[0]"])
        result = run_study(defn, tmp_path / "out", backend="ray", workers=2)
    finally:
        ray.shutdown()
    assert result.ok and result.finished == 2 and result.ran == 2
    runs = json.loads((tmp_path / "out/runs.json").read_text())["runs"]
    assert [r["id"].split("/")[-2:] for r in runs] == [["baseline", "seed0"], ["lw", "seed0"]]
    for r in runs:
        folder = tmp_path / "out/runs" / r["id"]
        assert json.loads((folder / "result.json").read_text())["status"] == "finished"
        assert json.loads((folder / "config.json").read_text())["threads"] == 1
    assert {r["host"] for r in journal(tmp_path / "out")} and len(ends(tmp_path / "out")) == 2


@pytest.mark.slow
def test_a_worker_killed_midway_is_recorded_and_replaced(tiny_small, tmp_path, subprocess_env):
    """What the OOM killer does to one worker: its run is recorded as failed with the reason, a new
    worker takes its place, and the other runs still finish."""
    out = tmp_path / "out"
    flag = tmp_path / "paused"
    proc = start_study(subprocess_env, tiny_small, out, "--workers", "1", "--set", "epochs=3", "--set", "seeds=[0]",
                       faults={"pause": {"file": "ckpt.pt", "nth": 1, "flag": str(flag)}})
    pid, ckpt = paused_at(flag, proc)
    victim = (ckpt.parent, pid)
    os.kill(pid, signal.SIGKILL)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, log[-3000:]
    folder, pid = victim
    error = json.loads((folder / "error.json").read_text())
    assert "worker process died (exit code -9, killed by a signal" in error["reason"]
    assert "FAILED" in log and "1 run(s) failed" in log
    assert len(result_files(out)) == 1  # the other run finished on the replacement worker
    assert len({r["pid"] for r in journal(out) if r["event"] == "start"}) == 2
