"""The one cache of costs measured on this machine, and what probes measure them on.

A probe runs the real code briefly on synthetic data of a run's shape (training throughput:
throughput.py; the seconds of a study's analyses: study/analysis_cost.py) and stores what it found
in `<cache>/probes.json` (`~/.cache/reinitlab`, or `$REINITLAB_DATA`) under a key made of

- the kind of probe and its version (bumped when a probe changes what it measures),
- the setting measured (arch, width, shape, batch, threads, ...),
- the machine: host name, CPU model, whether the CPU has bf16 (avx512_bf16, Arm's bf16) and AMX
  units, cores,
- the torch version and a hash of the source files that decide the cost,

so a changed loop, another torch or another machine is measured again, and a repeated estimate
costs only a dictionary lookup. Content does not change the speed of dense fp32 kernels, so random
images measure the same thing as the dataset's.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any, Iterable

import torch

from ..data import DataBundle
from ..data.cache import cache_root
from ..util.files import atomic_write_json

CACHE_FILE = "probes.json"
SOURCE_ROOT = Path(__file__).resolve().parents[1]
_CPU_UNITS = ("avx512_bf16", "amx_bf16", "amx_tile", "bf16")  # bf16: Arm's name for its units


def cache_path() -> Path:
    return cache_root() / CACHE_FILE


def _cpu() -> tuple[str, list[str]]:
    """(model name, the bf16/AMX units among its flags) from /proc/cpuinfo, where there is one."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:  # x86, Arm
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model or platform.processor(), [u for u in _CPU_UNITS if u in flags]


def host_info() -> dict[str, Any]:
    model, units = _cpu()
    return {"host": platform.node(), "cpu": model, "cpu_units": units, "cores": os.cpu_count()}


def files_hash(files: Iterable[str | Path]) -> str:
    """Of these files (relative to the package), in the order given; a missing one counts as empty."""
    h = hashlib.sha256()
    for f in files:
        p = SOURCE_ROOT / f
        h.update(str(f).encode())
        try:
            h.update(p.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:12]


def sources(*patterns: str) -> list[str]:
    """Package files matching glob patterns ("engine.py", "models/*.py"), sorted within a pattern."""
    return [str(p.relative_to(SOURCE_ROOT)) for pat in patterns for p in sorted(SOURCE_ROOT.glob(pat))]


def key(kind: str, version: int, setting: dict[str, Any], files: Iterable[str | Path]) -> str:
    return json.dumps({"kind": kind, "v": version, **setting, "torch": torch.__version__, "machine": host_info(),
                       "src": files_hash(files)}, sort_keys=True)


def _read() -> dict:
    try:
        with open(cache_path()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def lookup(k: str) -> dict | None:
    hit = _read().get(k)
    return hit if isinstance(hit, dict) else None


def store(k: str, value: dict) -> None:
    # Read-merge-write: parallel planners may each add a key; a lost update only costs a re-probe.
    data = _read()
    data[k] = value
    try:
        cache_root().mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache_path(), data)
    except OSError:
        pass  # an unwritable cache makes estimates slower, not wrong


def synthetic_bundle(channels: int, resolution: int, n_train: int, n_test: int, n_val: int = 0,
                     classes: int = 10, name: str = "probe") -> DataBundle:
    """Random uint8 images of a run's shape and numbers, every class present (labels cycle)."""
    g = torch.Generator().manual_seed(0)

    def images(n):
        return torch.randint(0, 256, (n, channels, resolution, resolution), generator=g, dtype=torch.uint8)

    return DataBundle(name=name, x_train=images(n_train), y_train=torch.arange(n_train) % classes,
                      x_test=images(n_test), y_test=torch.arange(n_test) % classes,
                      x_val=images(n_val) if n_val else None, y_val=(torch.arange(n_val) % classes) if n_val else None,
                      classes=[str(c) for c in range(classes)])
