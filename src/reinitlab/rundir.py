"""The run folder: atomic writes, tolerant readers, and the files that make a run self-describing.

config.json   the resolved config            split.json    train/val indices, noisy labels, hash
metrics.jsonl one line per epoch             result.json   final numbers; its presence = finished
env.json      versions, commit, device       ckpt.pt       last epoch's state (deleted at the end)
provenance.json  what determined the numbers (provenance.py), written with env.json
model.pt      final weights + reinit state

The folder's life (`open_run`, `begin_run`, `write_checkpoint`, `write_result`) is here too; it is
handed the engine and needs nothing above the file layer, so the data cache and the study store use
the same atomic writes without importing the training stack.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .errors import UserError

if TYPE_CHECKING:  # type names only: the engine is handed in
    from .config import TrainConfig
    from .engine import Engine


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
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
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
    from .version import __version__
    import numpy
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


# ---- the life of a run folder ------------------------------------------------------------------
# Settings that may differ when a run is resumed: they change speed, not results...
SPEED_SETTINGS = {"threads", "compile", "eval_batch_size"}
# ...or who watches the run: the trackers mirror a run's numbers and never change them, so a run
# (and a study) started without a tracker may be resumed with one, and the other way round.
OBSERVER_SETTINGS = {"tracker", "tracker_dir"}
RESUMABLE_DIFFERENCES = SPEED_SETTINGS | OBSERVER_SETTINGS


def same_setting(key: str, old, new) -> bool:
    """Whether a stored setting and the one resolved now describe the same run. A method option that
    this code knows and the run's older code did not is at its default (the method spec, compared
    as `method`, is the same string), so a run folder of an older version still resumes."""
    if key == "method_options" and isinstance(old, dict) and isinstance(new, dict):
        return all(k in new and new[k] == v for k, v in old.items())
    return old == new


def open_run(out: Path, cfg: "TrainConfig") -> str:
    """'new', 'resume' or 'finished'. Refuses a folder that holds something else."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    cfg_path = out / "config.json"
    if out.exists() and any(out.iterdir()) and not cfg_path.exists():
        raise UserError(f"--out {out}: the folder is not empty and holds no reinitlab run; choose an empty "
                        "or new folder")
    _check_writable(out)
    if not cfg_path.exists():
        return "new"
    try:
        old = read_json(cfg_path)
    except (OSError, ValueError) as e:
        raise UserError(f"{cfg_path}: unreadable ({e}); remove the folder to start over") from None
    new = cfg.to_dict()
    diff = [k for k in new if k not in RESUMABLE_DIFFERENCES and not same_setting(k, old.get(k), new[k])]
    if diff:
        k = diff[0]
        raise UserError(f"--out {out} holds a run with {k}={old.get(k)!r}, not {new[k]!r}; use another "
                        "folder or the same settings to resume")
    if not (out / "result.json").exists():
        return "resume"
    try:
        result = read_json(out / "result.json")
    except (OSError, ValueError) as e:
        result = e
    if not isinstance(result, dict) or result.get("status") not in ("finished", "diverged"):
        what = f"unreadable ({result})" if isinstance(result, Exception) else "not a finished run's result"
        raise UserError(f"{out / 'result.json'}: {what}; delete it to train the run again")
    return "finished"


def _check_writable(out: Path) -> None:
    """Fail before training, not after the first epoch, when results could not be saved."""
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("/"))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {probe} is not writable; choose a folder you can write to")


@dataclass
class RunState:
    """Where a run stands; with the weights, the optimizer and the reinitializer, what a checkpoint
    restores."""

    round: int = 0
    epoch: int = 0  # epochs of `round` done
    streak: int = 0  # epochs in a row at 100% training accuracy (patience)
    round_done: bool = False
    reset: dict | None = None  # what the reset that started `round` changed
    per_round: list[dict] = field(default_factory=list)  # one record per finished round
    elapsed: float = 0.0  # seconds of training, evaluation, resets and hooks
    epochs_total: int = 0

    def to_checkpoint(self) -> dict:
        return {"pos": {"round": self.round, "epoch": self.epoch, "streak": self.streak,
                        "round_done": self.round_done, "reset": self.reset},
                "per_round": self.per_round, "elapsed": self.elapsed, "epochs_total": self.epochs_total}

    @classmethod
    def from_checkpoint(cls, ck: dict) -> "RunState":
        pos = ck["pos"]
        return cls(pos["round"], pos["epoch"], pos["streak"], pos["round_done"], pos.get("reset"),
                   ck["per_round"], ck["elapsed"], ck["epochs_total"])


def begin_run(out: Path, eng: "Engine", state: str) -> tuple[torch.optim.Optimizer | None, RunState]:
    """Make the folder ready to train into: resume from its checkpoint (state 'resume' with one),
    or start afresh: a killed attempt's metrics and checkpoint go, config.json, split.json and
    env.json are written. Returns (the checkpoint's optimizer or None, where the run stands)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if state == "resume" and (out / "ckpt.pt").exists():
        return _resume(out, eng)
    for f in ("metrics.jsonl", "ckpt.pt"):
        (out / f).unlink(missing_ok=True)
    atomic_write_json(out / "config.json", eng.config.to_dict())
    atomic_write_json(out / "split.json", {**eng.split.manifest(eng.bundle),
                                           "normalization": {"mean": eng.mean.tolist(), "std": eng.std.tolist()}})
    write_environment(out, eng.device)
    from .provenance import write as write_provenance  # provenance builds on this module's writers
    write_provenance(out, eng.config.to_dict(), eng.device)
    return None, RunState()


def _resume(out: Path, eng: "Engine") -> tuple[torch.optim.Optimizer, RunState]:
    ckpt_path = out / "ckpt.pt"
    try:
        problem = checkpoint_problem(ckpt_path)
        if problem:
            raise ValueError(problem)
        ck = torch.load(ckpt_path, map_location=eng.device, weights_only=False)
        eng.reinit.load_state_dict(ck["reinit"])
        eng.model.load_state_dict(ck["model"])
        opt = eng.optimizer()
        opt.load_state_dict(ck["optimizer"])
        state = RunState.from_checkpoint(ck)
    except OSError:
        raise
    except Exception as e:  # torn, garbled, or another model's: never train on from it
        why = " ".join(str(e).split())
        why = why if len(why) <= 160 else why[:157] + "..."
        raise UserError(f"{ckpt_path}: cannot resume from this checkpoint ({type(e).__name__}: {why}); "
                        "delete it to train the run again from the start") from None
    # metrics lines written after the checkpoint belong to the epoch being redone
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["epoch_total"] <= state.epochs_total]
    atomic_write_bytes(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    return opt, state


def write_checkpoint(out: Path, eng: "Engine", opt: torch.optim.Optimizer, state: RunState) -> None:
    atomic_torch_save(Path(out) / "ckpt.pt", {"model": eng.model.state_dict(), "optimizer": opt.state_dict(),
                                              "reinit": eng.reinit.state_dict(), **state.to_checkpoint()})


def write_result(out: Path, eng: "Engine", result: dict) -> None:
    """model.pt, then result.json (whose presence marks the run done), then the checkpoint goes."""
    out = Path(out)
    atomic_torch_save(out / "model.pt", {"model": eng.model.state_dict(), "reinit": eng.reinit.state_dict(),
                                         "config": eng.config.to_dict()})
    atomic_write_json(out / "result.json", result)
    (out / "ckpt.pt").unlink(missing_ok=True)
