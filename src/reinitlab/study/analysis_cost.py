"""How long do a study's analyses take per run on this machine? Measured, like training throughput.

`analysis_seconds(cfg, names)` runs the analyses once on an untrained model of the run's shape
(arch, width, resolution, channels) over random images in the run's numbers (training examples
after the split, validation and test set), on the run's thread count, and caches the seconds per
analysis in `<cache>/analysis_cost.json` (the throughput cache folder), keyed by those settings, the
machine, the torch version and a hash of the analyses' sources. The analyses' cost depends on the
sizes and the network, not on what the weights learned, with one exception: iterative solvers
(power iteration, Lanczos for the Hessian) may need more iterations on trained weights, so the
estimate can be low for `norms`, `bound` and `flatness`; the study's ETA corrects itself from the
runs that finish.

Label noise does not enter the key: it only chooses which training examples `memorization` reports
apart, not how many are evaluated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from ..config import TrainConfig

CACHE_FILE = "analysis_cost.json"
PROBE_VERSION = 1
_memo: dict[str, dict[str, float]] = {}  # per process: a plan asks once per distinct run setting


def _source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted((Path(__file__).resolve().parents[1] / "analyses").glob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _cache_path() -> Path:
    from ..throughput import cache_root
    return cache_root() / CACHE_FILE


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, value: dict[str, float]) -> None:
    from ..rundir import atomic_write_json
    data = _read_cache()  # read-merge-write: a lost update between two planners only costs a re-probe
    data[key] = value
    try:
        _cache_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(_cache_path(), data)
    except OSError:
        pass  # an unwritable cache makes plans slower, not wrong


def analysis_seconds(cfg: TrainConfig, names: list[str]) -> tuple[dict[str, float], float]:
    """({analysis: seconds} for one run of `cfg`, seconds to load the run's data and build its
    engine, which an analysis of a run loaded from its folder pays on top)."""
    from ..train import prepare
    import platform

    t0 = time.perf_counter()
    p = prepare(cfg)
    load_s = time.perf_counter() - t0
    c = p.cfg
    n_val = len(p.bundle.y_val) if p.split.val_official else len(p.split.val)
    parts = {"v": PROBE_VERSION, "arch": c.arch, "width": c.width, "resolution": c.resolution,
             "channels": p.bundle.channels, "classes": p.bundle.num_classes, "train": len(p.split.train),
             "val": n_val, "test": len(p.bundle.y_test), "threads": c.threads, "device": c.device,
             "eval_batch": c.eval_batch_size, "names": sorted(names), "torch": torch.__version__,
             "src": _source_hash(), "machine": f"{platform.node()}|{platform.processor()}"}
    key = json.dumps(parts, sort_keys=True)
    hit = _memo.get(key) or _read_cache().get(key)
    if not hit or any(n not in hit for n in names):
        hit = _measure(c, p.bundle.channels, p.bundle.num_classes, len(p.split.train), n_val,
                       len(p.bundle.y_test), names)
        _write_cache(key, hit)
    _memo[key] = hit
    # load the run again from its folder: the dataset read plus the engine (~ one pass over the data)
    return {n: hit[n] for n in names}, load_s + hit.get("_engine_s", 0.0)


def _measure(cfg: TrainConfig, channels: int, classes: int, n_train: int, n_val: int, n_test: int,
             names: list[str]) -> dict[str, float]:
    from ..analyses import AnalysisData, run_analyses
    from ..data import DataBundle
    from ..train import Engine, prepare

    g = torch.Generator().manual_seed(0)

    def images(n):
        return torch.randint(0, 256, (n, channels, cfg.resolution, cfg.resolution), generator=g, dtype=torch.uint8)

    bundle = DataBundle(name="analysis-probe", x_train=images(n_train), y_train=torch.arange(n_train) % classes,
                        x_test=images(n_test), y_test=torch.arange(n_test) % classes,
                        x_val=images(n_val) if n_val else None,
                        y_val=(torch.arange(n_val) % classes) if n_val else None,
                        classes=[str(i) for i in range(classes)])
    pcfg = dataclasses.replace(cfg, method="baseline", method_options={}, rounds=0, train_size=None,
                               val_fraction=0.0)
    threads = torch.get_num_threads()
    try:
        t0 = time.perf_counter()
        eng = Engine(prepare(pcfg, bundle))
        engine_s = time.perf_counter() - t0
        found = run_analyses(eng.model, eng.groups, AnalysisData.from_engine(eng, source="analysis-probe"),
                             only=names)
    finally:
        torch.set_num_threads(threads)
    out = {n: float(found[n]["seconds"]) for n in names}
    out["_engine_s"] = engine_s
    out["_measured_at"] = time.time()
    return out
