"""Run claims: one lock file per run, held with an exclusive `flock` for as long as the run trains.

Why flock and not just O_EXCL lock files: the kernel drops an flock the moment its holder dies,
SIGKILL and power-off of a worker included, so a dead worker's claim is recovered by the next
claimant without guessing from pids (which get reused) or ages (which misjudge long runs). The lock
file itself says who holds it (pid, host, start time) for `status` displays and error messages;
a file left behind by a killed holder is stale by construction: nobody holds its flock.

Protocol (safe against the unlink race of flock files):
  acquire: open(O_CREAT) -> flock(LOCK_EX|LOCK_NB) -> check the path still names the inode we
           locked (a releasing holder may have unlinked it in between; if so, retry) -> write owner.
  release: unlink the path while still holding the lock -> close.
A waiter that locked an unlinked inode sees the mismatch and retries on the new file.

Works on local filesystems and on NFS (Linux maps flock to NFS byte-range locks). A filesystem
without locks is refused with a clear message rather than run unsafely.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..util.errors import UserError


class LockUnsupported(UserError):
    pass


class FileLock:
    """An exclusive, non-blocking claim on `path`. `acquire()` returns False if another live
    process holds it. Not reentrant; one object per claim."""

    def __init__(self, path: Path, purpose: str = ""):
        self.path = Path(path)
        self.purpose = purpose
        self.fd: int | None = None
        self.recovered: dict | None = None  # owner info of a dead holder whose lock we took over

    def acquire(self) -> bool:
        if self.fd is not None:
            raise RuntimeError(f"{self.path}: already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise LockUnsupported(f"{self.path.parent}: this filesystem does not support file locks "
                                          "(flock); put the study folder on a local disk or NFS") from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder unlinked it between our open and flock
                os.close(fd)
                continue
            previous = _read_owner(fd)
            self.recovered = previous or None  # a leftover owner record means its holder died
            try:
                _write_owner(fd, self.purpose)
            except OSError as e:  # a full disk: no claim, and no flock left held by a lost descriptor
                os.close(fd)
                raise OSError(e.errno, e.strerror or str(e), str(self.path)) from e
            self.fd = fd
            return True
        raise RuntimeError(f"{self.path}: could not lock after 100 tries (the file keeps being replaced)")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def acquire_blocking(path: Path, purpose: str = "", timeout: float = 60.0) -> FileLock:
    """For short critical sections (writing study.json): wait for the holder to finish."""
    lock = FileLock(path, purpose)
    deadline = time.monotonic() + timeout
    while not lock.acquire():
        if time.monotonic() > deadline:
            owner = owner_of(path)
            raise UserError(f"{path}: still locked after {timeout:.0f} s by {describe(owner)}")
        time.sleep(0.05)
    return lock


def is_held(path: Path) -> bool:
    """True while a live process holds the lock (a probe: it takes and drops the flock at once,
    never unlinking, so it cannot disturb a claimant)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def owner_of(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}


def describe(owner: dict) -> str:
    if not owner:
        return "another process"
    when = time.strftime("%H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"pid {owner.get('pid')} on {owner.get('host')} (since {when})"


def _read_owner(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    try:
        return json.loads(data) if data.strip() else {}
    except ValueError:
        return {}


def _write_owner(fd: int, purpose: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "purpose": purpose}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
