"""A run's provenance: what determined its numbers, written to `provenance.json` when it starts.

Two kinds of fields:

- result-changing (`"result"`): the fully resolved config without the speed-only settings, a hash
  of reinitlab's own source files, the torch version, the CPU's kernel level
  (`torch.backends.cpu.get_cpu_capability()`: AVX2 and AVX512 machines run different kernels and
  round differently) and, on a GPU, its model. The resolved config holds the device type and the
  precision. Two runs whose result fields are equal were computed by the same code on the same
  kind of machine; any difference may change the numbers.
- informative (`"info"`): the version, the git commit, the host, the CPU model, the settings
  that never count (NOT_COMPARED: threads, eval batch size, compile, trackers), Python, the time. They help to find a run's
  origin and never make two runs incomparable.

Why a source hash and not the commit: a commit changes with a README edit and does not see
uncommitted edits; the hash changes exactly when the code changes. It covers the package's
Python files except those that cannot touch a run's numbers: the report and the command-line and
progress display (SOURCE_EXCLUDED).
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..util.files import atomic_write_json, read_json_dict
from .rundir import RESUMABLE_DIFFERENCES, same_setting, stored_setting

FILE = "provenance.json"
FORMAT = 1
# settings that never make two runs incomparable, the same that may differ when a run is resumed:
# how fast it trains (threads, eval batch size, compile) and who watches it (trackers)
NOT_COMPARED = frozenset(RESUMABLE_DIFFERENCES)
# result-changing fields besides the config, in the order a difference is reported
MACHINE_FIELDS = ("torch", "gpu", "cpu_capability", "source_hash")
PACKAGE = Path(__file__).resolve().parents[1]
# relative to the package; a folder name ends with "/"
SOURCE_EXCLUDED = ("report/", "paper/claims.py", "cli.py", "__main__.py", "util/progress.py", "bench/",
                   "study/display.py", "study/plan.py", "study/cli.py", "data/cli.py", "analyses/cli.py",
                   "trackers/cli.py", "train/export.py", "train/export_cli.py")


def _excluded(rel: str) -> bool:
    return any(rel.startswith(e) if e.endswith("/") else rel == e for e in SOURCE_EXCLUDED)


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 (first 16 hex digits) over the paths and bytes of the package's Python sources."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if _excluded(rel):
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The reinitlab version and, where the package is a git checkout's own `src/reinitlab`, the
    commit ("+dirty" with uncommitted edits to tracked files). An installed package (site-packages,
    possibly inside some other repository) has no commit of its own: `commit` is None."""
    from ..version import __version__
    top = _git("rev-parse", "--show-toplevel")
    commit = None
    if top and (Path(top) / "src" / "reinitlab").resolve() == PACKAGE:
        head = _git("rev-parse", "HEAD")
        if head:
            dirty = _git("status", "--porcelain", "--untracked-files=no")
            commit = head + ("+dirty" if dirty else "")
    return {"reinitlab": __version__, "commit": commit, "from": "git checkout" if commit else "installed package"}


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_capability() -> str:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # torch < 2.0
        return "unknown"


def machine(device: torch.device | str) -> dict[str, Any]:
    """The result-changing fields of this process besides the config, for runs on `device`."""
    device = torch.device(device)
    out: dict[str, Any] = {"torch": torch.__version__, "cpu_capability": cpu_capability(), "source_hash": source_hash()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def fingerprint(config: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """provenance.json's content for a run with this resolved config, trained here on `device`."""
    device = torch.device(device)
    info = {**code_version(), "host": socket.gethostname(), "cpu_model": cpu_model(),
            "python": platform.python_version(), "pid": os.getpid(), "created": time.time(),
            "plugins": plugins_used(config), **{k: config.get(k) for k in sorted(NOT_COMPARED)}}
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return {"format": FORMAT, "result": {"config": result_config(config), **machine(device)}, "info": info}


def plugins_used(config: dict[str, Any]) -> dict[str, str]:
    """"method"/"arch"/"dataset" -> "distribution version" where the run's entry came from a plugin
    (util/registry.py). Informative: the source hash covers reinitlab's own files only."""
    from ..core.method import METHODS
    from ..data.registry import DATASETS
    from ..models import ARCHS
    names = {"method": str(config.get("method") or "").partition(":")[0], "arch": config.get("arch"),
             "dataset": config.get("dataset")}
    registries = {"method": METHODS, "arch": ARCHS, "dataset": DATASETS}
    out = {}
    for kind, name in names.items():
        plugin = registries[kind].plugin_of(name) if isinstance(name, str) else None
        if plugin:
            out[kind] = plugin
    return out


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in NOT_COMPARED}


def write(out: str | Path, config: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Write provenance.json into the run folder `out` (atomically); returns its content."""
    doc = fingerprint(config, device)
    atomic_write_json(Path(out) / FILE, doc)
    return doc


def read(run_dir: str | Path) -> dict[str, Any] | None:
    """provenance.json of a run folder, or None (absent: written before reinitlab recorded it)."""
    doc = read_json_dict(Path(run_dir) / FILE)
    return doc if doc is not None and isinstance(doc.get("result"), dict) else None


# ---- comparing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    field: str  # a config key, or one of MACHINE_FIELDS
    was: Any
    now: Any


def differences(recorded: dict[str, Any], expected: dict[str, Any]) -> list[Difference]:
    """Result-changing differences between two `"result"` parts: config keys first (in the expected
    config's order), then MACHINE_FIELDS. NOT_COMPARED keys never count, even in old files; a method
    option the recording code did not know yet is at its default (rundir.same_setting)."""
    out = []
    rc, ec = recorded.get("config") or {}, expected.get("config") or {}
    for k in list(ec) + [k for k in rc if k not in ec]:
        was, now = stored_setting(rc, k), stored_setting(ec, k)
        if k not in NOT_COMPARED and not same_setting(k, was, now):
            out.append(Difference(k, was, now))
    for k in MACHINE_FIELDS:
        if recorded.get(k) != expected.get(k):
            out.append(Difference(k, recorded.get(k), expected.get(k)))
    return out


def show(value: Any) -> str:
    """A field's value as a difference names it: warmup=0.05, nesterov=true, device=cpu."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value) if isinstance(value, (dict, list)) else str(value)


def describe(d: Difference, was_info: dict | None = None, now_info: dict | None = None) -> tuple[str, str]:
    """(what the run was made with, what it would be made with now), each naming the field."""
    if d.field == "source_hash":
        def src(value, info):
            commit = (info or {}).get("commit")
            return f"source_hash={value}" + (f" (commit {commit[:12]})" if commit else "")
        return src(d.was, was_info), src(d.now, now_info)
    return f"{d.field}={show(d.was)}", f"{d.field}={show(d.now)}"


def verb(field: str) -> str:
    """How the present side of a difference is phrased: the code resolves a setting, the machine has
    a CPU level, the environment has a torch version."""
    if field == "source_hash":
        return "this code has"
    if field in ("torch",):
        return "this environment has"
    if field in ("gpu", "cpu_capability"):
        return "this machine has"
    if field == "device":
        return "this machine resolves"
    return "this code resolves"
