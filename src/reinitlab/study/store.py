"""The study folder: the results store that workers, study processes and the report share.

    DIR/study.json            the resolved definition, budgets, the command (rewritten per start)
    DIR/runs.json             the expanded run list of the latest definition
    DIR/journal.jsonl         one line per claim and per end of a run (who, when, what status)
    DIR/runs/<id>/            a `train` run folder (config.json ... result.json), untouched contract
    DIR/runs/<id>/error.json  a failed run: the exception, its traceback, the attempt number
    DIR/runs/<id>/analysis.json        the study's `analyses` of a finished run (analyses/runner.py)
    DIR/runs/<id>/analysis_error.json  analyses that raised: name -> reason and traceback; the run
                                       stays finished, the next start tries them again
    DIR/runs/<id>.lock        the claim of a run while it trains (see lock.py)

A run's state is read from its folder alone: `result.json` (written last, atomically) means
finished or diverged; `error.json` without it means failed; anything else means partial or pending.
Every writer holds the run's lock, so no two processes ever touch one run folder at a time.
"""
from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..util.errors import UserError
from ..util.files import atomic_write_json, checkpoint_problem, code_problem, read_json_dict
from .lock import FileLock, is_held

FINISHED = ("finished", "diverged")  # result.json states: never redone


@dataclass
class RunStatus:
    status: str  # finished | diverged | failed | partial | pending
    result: dict | None = None
    error: dict | None = None

    @property
    def done(self) -> bool:
        return self.status in FINISHED


def folder_state(d: Path) -> RunStatus:
    """A run folder's state from its files alone (a study's or any `train` output)."""
    result = read_json_dict(d / "result.json")
    if result is not None and result.get("status") in FINISHED:
        return RunStatus(result["status"], result=result)
    error = read_json_dict(d / "error.json")
    if error is not None:
        return RunStatus("failed", error=error)
    if (d / "config.json").exists():
        return RunStatus("partial")
    return RunStatus("pending")


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- paths ---------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def lock_path(self, run_id: str) -> Path:
        return self.root / "runs" / (run_id + ".lock")

    @property
    def study_file(self) -> Path:
        return self.root / "study.json"

    @property
    def runs_file(self) -> Path:
        return self.root / "runs.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    # ---- run states ----------------------------------------------------------------------
    def state(self, run_id: str) -> RunStatus:
        return folder_state(self.run_dir(run_id))

    def is_running(self, run_id: str) -> bool:
        return is_held(self.lock_path(run_id))

    def claim(self, run_id: str) -> FileLock | None:
        lock = FileLock(self.lock_path(run_id), purpose=f"run {run_id}")
        return lock if lock.acquire() else None

    def clean_for_attempt(self, run_id: str) -> str:
        """Called with the run's lock held, right before training. Leaves the folder either empty
        or holding a consistent partial run for `train.run` to resume. Returns what it found."""
        d = self.run_dir(run_id)
        if not d.exists():
            return "new"
        for tmp in d.glob(".*.tmp"):  # atomic writes cut short by a kill
            tmp.unlink(missing_ok=True)
        (d / "error.json").unlink(missing_ok=True)
        # analyses describe the weights of a finished run; a run trained again makes them stale
        for f in ("analysis.json", "analysis_error.json"):
            (d / f).unlink(missing_ok=True)
        result = d / "result.json"
        if result.exists() and (read_json_dict(result) or {}).get("status") not in FINISHED:
            # never read a torn or foreign result as finished: keep it aside and redo the run
            result.rename(d / f"result.json.unreadable-{int(time.time())}")
        ckpt = d / "ckpt.pt"
        if ckpt.exists() and checkpoint_problem(ckpt):
            # torn or garbled: resuming would fail, or go on from wrong weights; redo the run
            ckpt.rename(d / f"ckpt.pt.unreadable-{int(time.time())}")
        if not (d / "config.json").exists():
            # without its config the folder cannot be resumed; what is left is debris of an attempt
            # killed before its first write, which `train` would refuse as a foreign folder
            for f in d.iterdir():
                if f.is_file():
                    f.unlink()
            return "new"
        return "resume" if (d / "ckpt.pt").exists() else "restart"

    def first_code_file(self, run_ids) -> tuple[Path, str] | None:
        """The first model.pt or ckpt.pt among these runs' folders that holds code, not only data
        (util.files.code_problem: a static look, nothing is unpickled), with why; None if none does."""
        for rid in run_ids:
            for name in ("ckpt.pt", "model.pt"):
                f = self.run_dir(rid) / name
                if f.is_file():
                    problem = code_problem(f)
                    # a torn checkpoint is a kill's debris (clean_for_attempt restarts the run); code is not
                    if problem and not checkpoint_problem(f):
                        return f, problem
        return None

    def discard_partial(self, run_id: str) -> None:
        """Empty a partial run's folder (`--allow-mixed` with a run begun by other code or on another
        kind of machine): it is trained again from the start. The caller holds the run's lock."""
        d = self.run_dir(run_id)
        for f in d.iterdir() if d.is_dir() else []:
            if f.is_file():
                f.unlink()

    def record_failure(self, run_id: str, exc: BaseException | str, attempt: int) -> dict:
        """error.json for a run that raised. The caller holds the run's lock."""
        if isinstance(exc, BaseException):
            reason = f"{type(exc).__name__}: {exc}"
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        else:
            reason, tb = exc, ""
        err = {"status": "failed", "reason": reason, "traceback": tb, "attempt": attempt, "time": time.time(),
               "host": socket.gethostname(), "pid": os.getpid()}
        d = self.run_dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(d / "error.json", err)
        return err

    # ---- analyses of finished runs ---------------------------------------------------------
    def analyses_missing(self, run_id: str, names: list[str]) -> list[str]:
        """The requested analyses that analysis.json does not hold yet (all of them if it is absent
        or unreadable). Only finished runs are analysed: diverged ones have non-finite weights."""
        if not names:
            return []
        doc = read_json_dict(self.run_dir(run_id) / "analysis.json") or {}
        have = doc.get("analyses") if isinstance(doc.get("analyses"), dict) else {}
        return [n for n in names if n not in have]

    def analysis_error(self, run_id: str) -> dict | None:
        return read_json_dict(self.run_dir(run_id) / "analysis_error.json")

    def record_analysis_result(self, run_id: str, failed: dict[str, BaseException | str]) -> dict | None:
        """analysis_error.json for the analyses that raised, or its removal when none did. The caller
        holds the run's lock."""
        path = self.run_dir(run_id) / "analysis_error.json"
        if not failed:
            path.unlink(missing_ok=True)
            return None
        old = read_json_dict(path) or {}
        errors = {}
        for name, exc in failed.items():
            if isinstance(exc, BaseException):
                errors[name] = {"reason": f"{type(exc).__name__}: {exc}",
                                "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
            else:
                errors[name] = {"reason": exc, "traceback": ""}
        doc = {"status": "analysis_failed", "analyses": errors, "attempt": int(old.get("attempt", 0)) + 1,
               "time": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
        atomic_write_json(path, doc)
        return doc

    def attempts(self, run_id: str) -> int:
        err = read_json_dict(self.run_dir(run_id) / "error.json")
        return int(err.get("attempt", 0)) if err else 0

    # ---- journal ---------------------------------------------------------------------------
    def log(self, event: str, run_id: str, **fields: Any) -> None:
        """One line per event, appended with a single write() on an O_APPEND descriptor, so lines
        from concurrent processes never interleave; a line torn by a kill is skipped by readers."""
        row = {"t": time.time(), "event": event, "run": run_id, "pid": os.getpid(), "host": socket.gethostname(),
               **fields}
        data = (json.dumps(row) + "\n").encode()
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, data)
        except OSError as e:  # a full disk: write() names no file
            raise OSError(e.errno, e.strerror, str(self.journal)) from e
        finally:
            os.close(fd)

    def read_journal(self) -> list[dict]:
        rows = []
        try:
            with open(self.journal) as f:
                for line in f:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
        return rows

    # ---- the study's own files -----------------------------------------------------------
    def read_study(self) -> dict | None:
        return read_json_dict(self.study_file)

    def read_runs(self) -> list[dict]:
        data = read_json_dict(self.runs_file)
        return data.get("runs", []) if isinstance(data, dict) else []

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {self.root}: cannot create the folder ({e.strerror})") from None
        if not self.root.is_dir():
            raise UserError(f"--out {self.root}: exists and is not a folder")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise UserError(f"--out {self.root}: not writable")
