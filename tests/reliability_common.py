"""Shared pieces of the reliability tests (tests/test_reliability_*.py): a small dataset, the study
they run, real `reinitlab study` processes with fault injection (tests/faultinject), and the checks
on a study folder."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reinitlab.study import Store
from reinitlab.study.lock import is_held  # noqa: F401 (used by the tests through this module)
from reinitlab.util.files import read_jsonl

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
FAULTS = HERE / "faultinject"

# 3 methods x 2 seeds; batch 16 on 100 examples = 6 steps an epoch, so a run writes 2-4 checkpoints
STUDY = """
name = "reliability"
datasets = ["{dataset}"]
archs = ["cnn"]
methods = ["baseline", "fc", "lw"]
train_sizes = [100]
label_noise = [0.0]
seeds = [0, 1]
width = 0.25
epochs = 2
rounds = 1
batch_size = 16
precision = "{precision}"
"""
WORKERS = ["--workers", "2"]  # the thread count follows from it: the same in every start and the reference
TIMING = {"seconds", "train_images_per_second", "diagnostics_seconds"}


def small_npz(folder: Path) -> str:
    """300 training and 200 test images of fashion-mnist-small as `npz:PATH` (the full 10,000-image
    test set would dominate these tiny runs). Built once per folder."""
    path = folder / "small.npz"
    if not path.exists():
        import numpy as np

        from reinitlab.data import load_dataset
        b = load_dataset("fashion-mnist-small")
        keep_train = np.concatenate([np.nonzero(b.y_train.numpy() == c)[0][:30] for c in range(10)])
        keep_test = np.concatenate([np.nonzero(b.y_test.numpy() == c)[0][:20] for c in range(10)])
        tmp = folder / ".small.npz.tmp.npz"
        np.savez(tmp, x_train=b.x_train.numpy()[keep_train, 0], y_train=b.y_train.numpy()[keep_train],
                 x_test=b.x_test.numpy()[keep_test, 0], y_test=b.y_test.numpy()[keep_test])
        os.replace(tmp, path)
    return f"npz:{path}"


def shared(tmp_path_factory) -> Path:
    """A folder shared by every reliability test of this session (dataset, probe cache, reference)."""
    d = tmp_path_factory.getbasetemp() / "reliability-shared"
    d.mkdir(exist_ok=True)
    return d


def study_file(folder: Path, dataset: str, text: str = STUDY, precision: str = "fp32") -> Path:
    p = folder / "study.toml"
    p.write_text(text.replace("{dataset}", dataset).replace("{precision}", precision))
    return p


def bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (where it does not, bf16 runs are emulated: slow)."""
    from reinitlab.speed.precision import cpu_bf16_units
    return bool(cpu_bf16_units())


# the kill tests run in both precisions where bf16 is native; resume is bit-identical within each
PRECISIONS = ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(not bf16_native(),
                                                                     reason="no native bf16 on this CPU"))]


def env(cache: Path, faults: dict | None = None) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(FAULTS), str(SRC)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    e["REINITLAB_DATA"] = str(cache)
    e.pop("REINITLAB_FAULTS", None)
    if faults:
        e["REINITLAB_FAULTS"] = json.dumps(faults)
    return e


def start(toml: Path, out: Path, cache: Path, faults: dict | None = None, *extra: str) -> subprocess.Popen:
    """`reinitlab study` in its own process group: the study and its workers, killable together."""
    return subprocess.Popen([sys.executable, "-m", "reinitlab", "study", str(toml), "--out", str(out), *WORKERS,
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env(cache, faults), start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_group_gone(proc: subprocess.Popen, out: Path, timeout: float = 30) -> str:
    """Wait for the study process; then until no lock under `out` is held (its workers died too)."""
    log = proc.communicate(timeout=300)[0]
    deadline = time.time() + timeout
    while time.time() < deadline:
        locks = list((out / "runs").rglob("*.lock")) if (out / "runs").exists() else []
        if not any(is_held(p) for p in locks):
            return log
        time.sleep(0.05)
    raise AssertionError("a worker outlived its killed study: a lock is still held\n" + log[-2000:])


def report_csv(out: Path) -> list[dict]:
    """`reinitlab report DIR`, then the rows of the results.csv it wrote (tables, plots and HTML
    too: several seconds)."""
    from reinitlab.cli import main
    assert main(["report", str(out), "--quiet"]) == 0
    return list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))


def results_csv(out: Path) -> list[dict]:
    """The rows `reinitlab report` writes to results.csv, computed without the plots."""
    from reinitlab.report.collect import collect
    from reinitlab.report.results_csv import results_csv as text
    return list(csv.DictReader(io.StringIO(text(collect(out)))))


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def timeless(obj):
    """Metrics and results with the wall-clock fields removed, recursively."""
    if isinstance(obj, dict):
        return {k: timeless(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [timeless(v) for v in obj]
    return obj


def run_dirs(out: Path) -> dict[str, Path]:
    runs = out / "runs"
    return {p.parent.relative_to(runs).as_posix(): p.parent for p in runs.rglob("config.json")} if runs.exists() else {}


def results(out: Path) -> dict[str, tuple[int, int]]:
    """run id -> (inode, mtime_ns) of its result.json; each must parse and say finished or diverged."""
    runs = out / "runs"
    got = {}
    for p in runs.rglob("result.json") if runs.exists() else []:
        data = json.loads(p.read_text())  # a torn result.json fails here
        assert data["status"] in ("finished", "diverged"), (p, data["status"])
        st = p.stat()
        got[p.parent.relative_to(runs).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return got


def fingerprint(out: Path) -> dict[str, tuple]:
    """Everything a run's numbers are: metrics lines and result, wall-clock fields removed."""
    return {rid: (timeless(read_jsonl(d / "metrics.jsonl")), timeless(json.loads((d / "result.json").read_text())))
            for rid, d in run_dirs(out).items()}


def witness(path: Path) -> list[dict]:
    return read_jsonl(path) if path.exists() else []


def journal(out: Path) -> list[dict]:
    return Store(out).read_journal()


def reference(tmp_path_factory, precision: str = "fp32") -> tuple[Path, list[dict], dict]:
    """The uninterrupted study in `precision`: its folder, results.csv rows and per-run fingerprints.
    Computed once per session and precision, and shared by the kill and concurrency tests."""
    base = shared(tmp_path_factory)
    name = "reference" if precision == "fp32" else f"reference-{precision}"
    out = base / name
    if not (base / f"{name}.ok").exists():
        folder = base / f"{name}-toml"
        folder.mkdir(exist_ok=True)
        toml = study_file(folder, small_npz(base), precision=precision)
        proc = start(toml, out, base / "cache")
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, log[-3000:]
        (base / f"{name}.ok").touch()
    return out, results_csv(out), fingerprint(out)


def unprivileged() -> list[str]:
    """The command prefix that runs a process as an unprivileged user: none unless root (root writes
    anywhere, so a permission test must drop to nobody); skips the test where that cannot be done."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv is missing: cannot drop privileges")
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # an interpreter under root's home (pyenv's shared libpython) cannot start as nobody at all
    if subprocess.run(prefix + [sys.executable, "-c", "import reinitlab"], capture_output=True).returncode:
        pytest.skip(f"{sys.executable} cannot import reinitlab as an unprivileged user")
    return prefix
