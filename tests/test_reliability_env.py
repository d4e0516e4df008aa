"""Environment faults in studies: an output folder the user cannot write, a disk that fills up during
a checkpoint (a real small tmpfs where this machine lets us mount one, and a failing writer), a
run folder that turns read-only. Each gives a clear error; the previous checkpoint stays valid;
the study records the failure and goes on (or refuses before writing anything), and the next
start resumes to the same numbers."""
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import reliability_common as rc
import torch

from reinitlab.util import files
from reinitlab.study import expand, load_definition
from reinitlab.study.runner import write_definition
from reinitlab.study.store import Store
from reinitlab.study.worker import Task, record_lost, run_task
from reinitlab.util.files import checkpoint_problem


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.slow
def test_study_into_a_folder_the_user_cannot_write_is_refused_before_anything(tmp_path_factory):
    """As an unprivileged user (rc.unprivileged)."""
    shared = rc.shared(tmp_path_factory)
    rc.reference(tmp_path_factory)  # warms the throughput probe cache copied below
    base = Path(tempfile.mkdtemp(prefix="reinitlab-ro-"))
    try:
        base.chmod(0o755)
        shutil.copy(shared / "small.npz", base / "small.npz")
        (base / "small.npz").chmod(0o644)
        shutil.copytree(shared / "cache", base / "cache", ignore=shutil.ignore_patterns("tensors"))
        os.system(f"chmod -R a+rwX {base / 'cache'}")
        toml = rc.study_file(base, f"npz:{base / 'small.npz'}")
        toml.chmod(0o644)
        ro = base / "ro"
        ro.mkdir()
        # a study someone else started here: complete folder, but not writable by this user
        theirs = base / "theirs"
        shutil.copytree(shared / "reference", theirs)
        os.system(f"chmod -R a+rX,a-w {theirs}")  # nobody may write, its owner neither
        ro.chmod(0o555)
        before = tree(theirs)
        env = {**rc.env(base / "cache"), "HOME": str(base), "MPLCONFIGDIR": str(base)}
        prefix = rc.unprivileged()
        for out, message in ((ro / "new", "cannot create the folder (Permission denied)"),
                             (theirs, "not writable")):
            proc = subprocess.run(prefix + [sys.executable, "-m", "reinitlab", "study", str(toml), "--out", str(out),
                                            *rc.WORKERS], capture_output=True, text=True, env=env, timeout=300)
            assert proc.returncode == 2, proc.stderr
            last = proc.stderr.strip().splitlines()[-1]
            assert last == f"reinitlab: --out {out}: {message}" and "Traceback" not in proc.stderr
        assert os.listdir(ro) == [] and tree(theirs) == before
    finally:
        os.system(f"chmod -R u+rwX {base}")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def one_run(tmp_path, tmp_path_factory):
    """A study folder with one lw run, for the worker's own code path in this process."""
    toml = rc.study_file(tmp_path, rc.small_npz(rc.shared(tmp_path_factory)))
    defn = load_definition(str(toml), ["methods=[lw]", "seeds=[0]"])
    runs, budgets = expand(defn)
    store = Store(tmp_path / "study")
    write_definition(store, defn, runs, budgets, command=[])
    return store, Task(str(store.root), runs[0].to_dict(), {"threads": 1})


def full_disk(monkeypatch, nth: dict[str, int]):
    """Writes of these files fail like a full disk from their nth write on (after half the bytes)."""
    real, seen = files.atomic_write_bytes, {}

    def write(path, data):
        seen[path.name] = seen.get(path.name, 0) + 1
        if path.name in nth and seen[path.name] >= nth[path.name]:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.write(fd, data[: len(data) // 2])
            os.close(fd)
            os.unlink(tmp)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)
    monkeypatch.setattr(files, "atomic_write_bytes", write)


@pytest.mark.parametrize("also_error_json", [False, True])
def test_disk_full_at_a_checkpoint_in_a_study_worker(one_run, monkeypatch, also_error_json):
    """The second checkpoint cannot be written: the run fails with the file named, the first
    checkpoint stays valid; when error.json cannot be written either, the worker still returns the
    reason instead of dying. The next attempt resumes from the first checkpoint."""
    store, task = one_run
    full_disk(monkeypatch, {"ckpt.pt": 2, "error.json": 1} if also_error_json else {"ckpt.pt": 2})
    d = store.run_dir(task.run_id)
    outcome = run_task(task)
    assert outcome.status == "failed"
    assert f"No space left on device: '{d / 'ckpt.pt'}'" in outcome.reason
    assert ("not recorded in the study folder" in outcome.reason) == also_error_json
    assert (d / "error.json").exists() != also_error_json
    assert checkpoint_problem(d / "ckpt.pt") is None
    assert torch.load(d / "ckpt.pt", weights_only=False)["epochs_total"] == 1
    assert not list(d.glob(".*.tmp"))
    monkeypatch.undo()
    again = run_task(task)
    assert (again.status, again.how) == ("finished", "resume")


def test_disk_full_while_appending_metrics_names_the_file(one_run, monkeypatch):
    store, task = one_run
    real_open = open

    def full(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        if "a" in mode:
            def write(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            f.write = write
        return f
    monkeypatch.setattr(files, "open", full, raising=False)
    outcome = run_task(task)
    d = store.run_dir(task.run_id)
    assert outcome.status == "failed" and f"No space left on device: '{d / 'metrics.jsonl'}'" in outcome.reason


def mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only even for root (a read-only bind mount); skips where mounts are not
    allowed. Undone at the end."""
    mounted = []

    def make(path: Path):
        if not (mount("--bind", str(path), str(path)) and (mounted.append(path) or True)
                and mount("-o", "remount,ro,bind", str(path))):
            pytest.skip("cannot bind-mount read-only here (needs root / CAP_SYS_ADMIN)")
    yield make
    for p in reversed(mounted):
        subprocess.run(["umount", str(p)], capture_output=True)


def test_run_folder_turned_read_only_fails_that_run_only(one_run, read_only, monkeypatch):
    store, task = one_run
    d = store.run_dir(task.run_id)
    d.mkdir(parents=True)
    (d / "error.json").write_text('{"attempt": 1, "reason": "earlier"}')
    read_only(d)
    outcome = run_task(task)  # before: the worker died with a traceback, then the study crashed
    assert outcome.status == "failed" and "Read-only file system" in outcome.reason
    assert "not recorded in the study folder" in outcome.reason
    assert record_lost(task.study_dir, task.run_id, "worker died") is False  # the study process lives on


@pytest.mark.slow
def test_disk_full_in_a_study_then_resume(tmp_path, tmp_path_factory):
    """A tmpfs that holds the study's own files and two checkpoints, not a third (where mounting is
    not allowed, or RELIABILITY_NO_TMPFS=1: every worker's second checkpoint write fails like a full
    disk instead): every run that needs more space fails with the file named, none leaves a torn
    file, the study goes on and ends with exit 1; once there is room the same command resumes them
    from their last checkpoints to the reference numbers."""
    ref_out, ref_rows, ref_runs = rc.reference(tmp_path_factory)
    base = rc.shared(tmp_path_factory)
    model = max(p.stat().st_size for p in ref_out.rglob("model.pt"))  # a checkpoint: about twice that
    disk = tmp_path / "disk"
    disk.mkdir()
    tmpfs = os.environ.get("RELIABILITY_NO_TMPFS") != "1" and \
        mount("-t", "tmpfs", "-o", f"size={(5 * model) // 1024 + 80}k", "tmpfs", str(disk))
    faults = None if tmpfs else {"enospc": {"file": "ckpt.pt", "nth": 2}}
    try:
        toml = rc.study_file(tmp_path, rc.small_npz(base))
        out = disk / "out"
        proc = rc.start(toml, out, base / "cache", faults)
        log = rc.wait_group_gone(proc, out)
        assert proc.returncode == 1, log[-3000:]
        assert "Traceback" not in log
        assert log.strip().splitlines()[-1].startswith("reinitlab: ") and "run(s) failed" in log
        failed = {rid: json.loads((d / "error.json").read_text()) for rid, d in rc.run_dirs(out).items()
                  if (d / "error.json").exists()}
        assert failed, log[-3000:]
        for err in failed.values():  # the file that did not fit is named: a checkpoint, mostly
            assert "No space left on device: '" + str(out) in err["reason"], err["reason"]
        assert any("ckpt.pt" in err["reason"] for err in failed.values())
        checkpoints = [d / "ckpt.pt" for d in rc.run_dirs(out).values() if (d / "ckpt.pt").exists()]
        assert checkpoints and all(checkpoint_problem(c) is None for c in checkpoints)
        assert not list(out.rglob(".*.tmp"))

        if tmpfs:
            assert mount("-o", f"remount,size={(40 * model) // 1024 + 1024}k", str(disk))
        proc = rc.start(toml, out, base / "cache")
        log = rc.wait_group_gone(proc, out)
        assert proc.returncode == 0, log[-3000:]
        assert rc.fingerprint(out) == ref_runs
        resumed = [r for r in rc.journal(out) if r["event"] == "start" and r["how"] == "resume"]
        assert len(resumed) == len(checkpoints)  # from the checkpoints the full disk left intact
    finally:
        if tmpfs:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_disk_full_while_writing_the_journal_names_the_file(tmp_path, monkeypatch):
    import types

    import reinitlab.study.store as store_module

    def write(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(store_module, "os", types.SimpleNamespace(**{**vars(os), "write": write}))
    store = Store(tmp_path)
    with pytest.raises(OSError) as e:
        store.log("start", "some/run")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(store.journal)
