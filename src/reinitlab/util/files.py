"""Files that survive a kill: atomic writes (temp file, fsync, rename), tolerant readers of JSON and
JSON-lines, the integrity check of a torch checkpoint, the one reader of torch files (data only:
tensors and plain values, never code), whether a folder can be written, and env.json (where a run
trained).

The bottom of the house: the run folder (train/rundir.py), the data cache, the probe cache, the
study store and the report all write through here, and it imports nothing of reinitlab but the
version and the errors.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import UserError  # noqa: F401  (readers' callers catch it from here too)

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers see the old or the new file,
    never a torn one, whatever kills the process."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from co-workers
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not e.filename:  # ENOSPC from write() names no file
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    """torch.save, atomically, of tensors and plain values only: what cannot be read back with
    `read_torch` (a class instance, a numpy scalar) is refused here, naming it, so that no run folder
    ever needs a reader that runs code."""
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(buf)
    if unsafe:
        raise TypeError(f"{path}: would hold {', '.join(sorted(unsafe))}, which a data-only reader refuses; "
                        "save tensors and plain values (numbers, strings, lists, dicts) only")
    atomic_write_bytes(path, buf.getvalue())


def checkpoint_problem(path: Path) -> str | None:
    """Why a torch checkpoint (a zip archive) cannot be trusted, or None: torn (no central directory)
    or garbled (a member's CRC does not match). torch.load checks neither, so a garbled checkpoint
    would load silently wrong weights."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except OSError:
        raise  # unreadable (permissions, I/O): the environment, not the file's content
    except Exception as e:  # BadZipFile, EOFError, ... whatever a torn or garbled archive raises
        return f"not a complete checkpoint ({type(e).__name__}: {e})"
    return f"garbled: the checksum of {bad} does not match" if bad is not None else None


def code_problem(path: Path) -> str | None:
    """Why a torch file must not be unpickled, or None: it names globals (functions, classes) beyond
    the tensors and plain values torch's data-only reader allows, e.g. `posix.system`. A static look
    at its pickle: nothing in it runs. Torn or garbled files: `checkpoint_problem`."""
    import zipfile
    try:
        with zipfile.ZipFile(path):  # the central directory only: a torn file has none
            pass
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (PermissionError, FileNotFoundError, IsADirectoryError):
        raise  # the environment, not the file's content
    except Exception as e:  # torn, or not a torch archive (torch's reader says EINVAL for some)
        return f"not a complete checkpoint ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
    if unsafe:
        return (f"holds code, not only data (it would call {', '.join(sorted(unsafe)[:3])} when unpickled); "
                "reinitlab never writes that, so the file was altered or made by other code")
    return None


def torch_file_problem(path: Path) -> str | None:
    """`checkpoint_problem`, then `code_problem`: None when `read_torch` can read the file."""
    return checkpoint_problem(path) or code_problem(path)


def read_torch(path: Path, map_location: Any = None) -> Any:
    """The one reader of model.pt and ckpt.pt: torch.load(weights_only=True), which rebuilds
    tensors and plain values and refuses anything else without running it. Raises UserError naming
    the file when it is torn, garbled or holds more than data (OSError when it cannot be read)."""
    import pickle
    path = Path(path)
    problem = torch_file_problem(path)
    if problem is None:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except OSError:
            raise
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            problem = f"unreadable ({type(e).__name__}: {' '.join(str(e).split())[:160]})"
    raise UserError(f"{path}: {problem}; not loaded")


def writable_problem(folder: Path) -> str | None:
    """Why files cannot be written into `folder` (made with its parents where missing), or None.
    Tried, not guessed from permission bits (root passes os.access even under /proc): a temporary
    folder is made in the nearest existing ancestor and removed again, so nothing is left behind."""
    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".reinitlab-probe-"))
    except OSError:
        return f"{probe} is not writable"
    return None


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_json_dict(path: Path) -> dict | None:
    """A JSON object from `path`, or None where the file is missing, unreadable, torn or not an
    object: readers of run folders treat all of these as 'not written (yet)'."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def append_jsonl(path: Path, row: dict) -> None:
    try:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.filename:
            raise
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e  # ENOSPC from write() names no file


def read_jsonl(path: Path) -> list[dict]:
    """Complete lines only: a line torn by a kill mid-write is dropped."""
    rows = []
    if not Path(path).exists():
        return rows
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            rows.append(json.loads(line))
    return rows


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment(device: torch.device) -> dict:
    import numpy

    from ..version import __version__
    env = {
        "reinitlab": __version__, "git_commit": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
        "machine": platform.machine(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def write_environment(out: Path, device: torch.device) -> None:
    """env.json: where and with what the run trained. The one place it is written."""
    atomic_write_json(Path(out) / "env.json", environment(device))

