"""The results store's mechanisms: run locks (exclusive across processes, recovered when the holder
dies), run states read from folders, cleanup before an attempt, the journal, and the refusal to mix
two different studies in one folder."""
import json
import multiprocessing as mp
import os
import signal
import time

import pytest

from reinitlab.study import load_definition
from reinitlab.study.expand import expand
from reinitlab.study.lock import FileLock, is_held, owner_of
from reinitlab.study.runner import check_compatible, write_definition
from reinitlab.study.store import Store
from reinitlab.util.errors import UserError


def _hold(path, ready, release):
    lock = FileLock(path, "test holder")
    assert lock.acquire()
    ready.set()
    release.wait(30)
    lock.release()


def _hold_forever(path, ready):
    lock = FileLock(path, "doomed holder")
    assert lock.acquire()
    ready.set()
    time.sleep(60)


def _count(path, counter, n):
    for _ in range(n):
        lock = FileLock(path)
        while not lock.acquire():
            time.sleep(0.001)
        value = int(counter.read_text())  # a read-modify-write that loses updates without the lock
        counter.write_text(str(value + 1))
        lock.release()


def test_lock_is_exclusive_across_processes_and_released(tmp_path):
    ctx = mp.get_context("fork")  # the children only touch files: fork is instant
    path = tmp_path / "run.lock"
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(path, ready, release))
    p.start()
    assert ready.wait(30)
    mine = FileLock(path)
    assert not mine.acquire()
    assert is_held(path)
    assert owner_of(path)["pid"] == p.pid and owner_of(path)["purpose"] == "test holder"
    release.set()
    p.join(30)
    assert not path.exists()  # released cleanly: the file goes away
    assert mine.acquire() and mine.recovered is None
    mine.release()


def test_lock_of_a_killed_holder_is_recovered(tmp_path):
    ctx = mp.get_context("fork")  # the children only touch files: fork is instant
    path = tmp_path / "run.lock"
    ready = ctx.Event()
    p = ctx.Process(target=_hold_forever, args=(path, ready))
    p.start()
    assert ready.wait(30)
    assert not FileLock(path).acquire()
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    assert path.exists() and not is_held(path)  # left behind, but nobody holds it
    lock = FileLock(path)
    assert lock.acquire()
    assert lock.recovered["pid"] == p.pid  # we know whose claim we took over
    assert owner_of(path)["pid"] == os.getpid()
    lock.release()


def test_lock_gives_mutual_exclusion_under_contention(tmp_path):
    ctx = mp.get_context("fork")  # the children only touch files: fork is instant
    counter = tmp_path / "counter"
    counter.write_text("0")
    procs = [ctx.Process(target=_count, args=(tmp_path / "c.lock", counter, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert counter.read_text() == "120"


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)


def test_states_from_folders(tmp_path):
    s = Store(tmp_path)
    write(s.run_dir("a") / "result.json", {"status": "finished", "test_acc": 0.5})
    write(s.run_dir("b") / "result.json", {"status": "diverged"})
    write(s.run_dir("c") / "error.json", {"status": "failed", "reason": "x", "attempt": 2})
    write(s.run_dir("d") / "config.json", {})
    write(s.run_dir("e") / "result.json", '{"status": "fini')  # torn: never finished
    write(s.run_dir("e") / "config.json", {})
    assert [s.state(r).status for r in "abcdef"] == ["finished", "diverged", "failed", "partial", "partial", "pending"]
    assert s.state("a").done and s.state("b").done and not s.state("c").done
    assert s.attempts("c") == 2 and s.attempts("d") == 0


def test_clean_for_attempt(tmp_path):
    s = Store(tmp_path)
    d = s.run_dir("x")
    write(d / "config.json", {})
    import torch
    torch.save({"pos": {}}, d / "ckpt.pt")  # a complete checkpoint: resumed (a torn one is set aside)
    write(d / ".ckpt.pt.abc.tmp", "half")
    write(d / "error.json", {"reason": "old"})
    write(d / "result.json", "{torn")
    assert s.clean_for_attempt("x") == "resume"
    names = sorted(p.name for p in d.iterdir())
    assert names[:2] == ["ckpt.pt", "config.json"] and names[2].startswith("result.json.unreadable-")
    assert len(names) == 3

    debris = s.run_dir("y")  # killed before config.json was written: `train` would refuse it
    write(debris / ".config.json.q.tmp", "{")
    write(debris / "error.json", {"reason": "old"})
    assert s.clean_for_attempt("y") == "new" and list(debris.iterdir()) == []
    assert s.clean_for_attempt("never-started") == "new"


def test_record_failure_and_journal(tmp_path):
    s = Store(tmp_path)
    try:
        raise ValueError("bad data")
    except ValueError as e:
        err = s.record_failure("r", e, attempt=1)
    assert err["reason"] == "ValueError: bad data" and "Traceback" in err["traceback"]
    assert s.state("r").status == "failed"
    s.log("start", "r", how="new")
    s.log("end", "r", status="finished")
    with open(s.journal, "a") as f:
        f.write('{"event": "start", "ru')  # a line torn by a kill
    rows = s.read_journal()
    assert [r["event"] for r in rows] == ["start", "end"] and rows[0]["pid"] == os.getpid()


def test_a_folder_holds_one_study(tmp_path):
    s = Store(tmp_path)
    tiny = ["datasets=[fashion-mnist-small]", "train_sizes=[100]", "seeds=[0]", "epochs=1", "width=0.25"]
    defn = load_definition("quick", tiny)
    runs, budgets = expand(defn)
    write_definition(s, defn, runs, budgets, ["test"])
    study = json.loads(s.study_file.read_text())
    assert study["definition"]["name"] == "quick" and study["runs"] == len(runs) == 6
    assert study["budgets"]["cnn"]["long_epochs"] == 4 * 1
    assert len(json.loads(s.runs_file.read_text())["runs"]) == 6
    other_seeds = [t if t != "seeds=[0]" else "seeds=[0,1,2]" for t in tiny]  # a key given twice is refused
    check_compatible(s, load_definition("quick", other_seeds + ["threads=2"]))  # axes, speed: fine
    with pytest.raises(UserError, match="holds study 'quick' with epochs=1, not 2"):
        check_compatible(s, load_definition("quick", tiny[:-2] + ["epochs=2", "width=0.25"]))
    with pytest.raises(UserError, match="lr"):
        check_compatible(s, load_definition("quick", tiny + ["lr=0.1"]))


def test_a_folder_with_other_content_is_refused(tmp_path):
    s = Store(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty .*notes.txt.* holds no study"):
        check_compatible(s, load_definition("quick"))
    (tmp_path / "notes.txt").unlink()
    (tmp_path / ".study.lock").write_text("")  # debris of a start killed before its first write
    check_compatible(s, load_definition("quick"))
