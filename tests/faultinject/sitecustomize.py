"""Fault injection for the reliability tests, loaded into every Python process of a study (the study
process and its spawned workers) by putting this folder on PYTHONPATH. Does nothing unless
REINITLAB_FAULTS holds a JSON object with any of:

  "kill":    {"file": "ckpt.pt", "nth": 2, "phase": "before" | "tmp" | "after"}
             on the nth atomic write of a file of that name, SIGKILL the whole process group (the
             study and all its workers) before anything is written, after a torn temp file (half
             the bytes) was left, or after the rename
             with "per_run": true, the nth write into one run folder: the first run to reach
             its own nth write dies there, whichever order the workers write in
  "counters": "/path/dir"   count those writes across every process that shares this folder (the
             study and its workers, which then die at the nth write of the whole study, whichever
             process makes it); without it each process counts its own
  "pause":   {"file": "ckpt.pt", "nth": 1, "run": "lw/seed1", "after": "/path/f0", "flag": "/path/f1"}
             (or a list of them) right after the nth write of that file into a run folder whose
             path contains `run` (any, if not given), counted only once the file `after` exists (if
             given), once in all processes: write this process's pid and the path into `flag`, then wait until
             the file `flag`.go exists (the test decides what happens meanwhile: a kill of this
             process or of its study, another study starting, ...)
  "enospc":  {"file": "ckpt.pt", "nth": 2}
             that write fails like a full disk after writing half the bytes into the temp file
  "lr":      {"fc": 1e30}   runs of that method get this learning rate (a real divergence)
  "raise":   {"train_size": 200}  runs whose config has all these values raise RuntimeError as they
             start (a run's own failure that no check before the study could see)
  "nolock":  true           run claims never exclude anyone (to show the tests notice double training)
  "witness": "/path/log.jsonl"  one line per training epoch begun and ended: pid, run folder, round,
             epoch, times (an independent record of who trained what, and when)
  "epoch_sleep": 0.5   with "witness": sleep this long before every training epoch of a run folder
             (slows the runs of one process, e.g. one Ray node, so a test catches them midway)

Nothing here edits the project's files: it wraps functions at import time in the test processes.
"""
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import time

_SPEC = json.loads(os.environ.get("REINITLAB_FAULTS") or "{}")
_counts: dict = {}


def _die() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)
    time.sleep(60)


def _count(name: str) -> int:
    """This write's number among the writes of files called `name`: in this process, or in every
    process sharing the "counters" folder (a counter file per name, incremented under flock)."""
    folder = _SPEC.get("counters")
    if not folder:
        _counts[name] = n = _counts.get(name, 0) + 1
        return n
    import fcntl
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, name), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        n = int(os.read(fd, 32) or b"0") + 1
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(n).encode())
        return n
    finally:
        os.close(fd)


def _pause(path, name: str) -> None:
    """The "pause" faults (one spec or a list): each once in all processes, after its nth matching
    write (counted like the kills), and only once its "after" flag exists, if it names one."""
    specs = _SPEC.get("pause") or []
    for i, spec in enumerate([specs] if isinstance(specs, dict) else specs):
        if spec.get("file") != name or spec.get("run", "") not in str(path):
            continue
        if spec.get("after") and not os.path.exists(spec["after"]):
            continue
        if _count(f"pause{i}") != spec.get("nth", 1):
            continue
        try:
            fd = os.open(spec["flag"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue  # another process paused here already
        os.write(fd, f"{os.getpid()}\n{path}".encode())
        os.close(fd)
        while not os.path.exists(spec["flag"] + ".go"):
            time.sleep(0.02)


def _patch_rundir(mod) -> None:
    import errno
    import hashlib
    import tempfile
    from pathlib import Path
    real = mod.atomic_write_bytes

    def atomic_write_bytes(path, data):
        name = Path(path).name
        kill, full = _SPEC.get("kill") or {}, _SPEC.get("enospc") or {}
        key = name
        if kill.get("per_run") and kill.get("file") == name:  # a counter per run folder
            key = f"{name}.{hashlib.sha1(str(Path(path).resolve().parent).encode()).hexdigest()[:16]}"
        n = _count(key) if name in (kill.get("file"), full.get("file")) or _SPEC.get("counters") else 0
        if kill.get("file") == name and kill.get("nth") == n:
            if kill["phase"] == "before":
                _die()
            if kill["phase"] == "tmp":
                fd, _ = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{name}.", suffix=".tmp")
                os.write(fd, data[: len(data) // 2])
                os.fsync(fd)
                _die()
            real(path, data)
            _die()
        if full.get("file") == name and full.get("nth") == n:
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{name}.", suffix=".tmp")
            os.write(fd, data[: len(data) // 2])
            os.close(fd)
            os.unlink(tmp)  # what atomic_write_bytes does when write() fails
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)
        _pause(path, name)

    mod.atomic_write_bytes = atomic_write_bytes


def _patch_train(mod) -> None:
    lrs, fail = _SPEC.get("lr") or {}, _SPEC.get("raise")
    if lrs or fail:
        real_prepare = mod.prepare

        def prepare(cfg, bundle=None):
            if fail and all(getattr(cfg, k) == v for k, v in fail.items()):
                raise RuntimeError(f"injected failure of the runs with {fail}")
            if cfg.method in lrs:
                cfg = cfg.replace(lr=float(lrs[cfg.method]))
            return real_prepare(cfg, bundle)
        mod.prepare = prepare
    witness = _SPEC.get("witness")
    if witness:
        real_epoch = mod.Engine.train_epoch
        real_execute = mod.run_keeping_engine

        def execute(cfg, out=None, *a, **k):
            mod._witness_out = str(out) if out is not None else None
            try:
                return real_execute(cfg, out, *a, **k)
            finally:
                mod._witness_out = None

        def log(row):
            fd = os.open(witness, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, (json.dumps(row) + "\n").encode())
            finally:
                os.close(fd)

        def train_epoch(self, opt, round_, epoch, *a, **k):
            run = getattr(mod, "_witness_out", None)
            if run is None:  # not a run folder's training (the throughput probe): not witnessed
                return real_epoch(self, opt, round_, epoch, *a, **k)
            row = {"pid": os.getpid(), "run": run, "round": round_, "epoch": epoch}
            log({**row, "event": "begin", "t": time.time()})
            time.sleep(float(_SPEC.get("epoch_sleep", 0)))
            out = real_epoch(self, opt, round_, epoch, *a, **k)
            log({**row, "event": "end", "t": time.time()})
            return out
        mod.run_keeping_engine = execute
        mod.Engine.train_epoch = train_epoch


def _patch_lock(mod) -> None:
    if _SPEC.get("nolock"):
        mod.fcntl = type("NoFlock", (), {"flock": staticmethod(lambda fd, op: None), "LOCK_EX": 0, "LOCK_NB": 0,
                                         "LOCK_SH": 0})


_PATCHES = {"reinitlab.util.files": _patch_rundir, "reinitlab.train.loop": _patch_train,
            "reinitlab.study.lock": _patch_lock}


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a module right after it is first executed."""

    def find_spec(self, name, path=None, target=None):
        if name not in _PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            _PATCHES[name](module)
        spec.loader.exec_module = exec_module
        return spec


if _SPEC:
    sys.meta_path.insert(0, _Finder())
