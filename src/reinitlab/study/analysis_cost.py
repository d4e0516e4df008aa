"""How long do a study's analyses take per run on this machine? Measured, like training throughput.

`analysis_seconds(cfg, names)` runs the analyses once on an untrained model of the run's shape
(arch, width, resolution, channels) over random images in the run's numbers (training examples
after the split, validation and test set), on the run's thread count, and caches the seconds per
analysis in the probe cache (probe.py, shared with the training throughput), keyed by those
settings, the machine, the torch version and a hash of the analyses' and measurements' sources.
The analyses' cost depends on the sizes and the network, not on what the weights learned, with one
exception: iterative solvers (power iteration, Lanczos for the Hessian) may need more iterations on
trained weights, so the estimate can be low for `norms`, `bound` and `flatness`; the study's ETA
corrects itself from the runs that finish.

Label noise does not enter the key: it only chooses which training examples `memorization` reports
apart, not how many are evaluated.
"""
from __future__ import annotations

import dataclasses
import time

from ..speed import probe as probes
from ..speed import runtime
from ..train.config import TrainConfig
from ..train.resolve import prepare

PROBE_VERSION = 2
SOURCES = probes.sources("analyses/*.py", "measure/*.py")
_memo: dict[str, dict[str, float]] = {}  # per process: a plan asks once per distinct run setting


def analysis_seconds(cfg: TrainConfig, names: list[str]) -> tuple[dict[str, float], float]:
    """({analysis: seconds} for one run of `cfg`, seconds to load the run's data and build its
    engine, which an analysis of a run loaded from its folder pays on top)."""
    t0 = time.perf_counter()
    p = prepare(cfg)
    load_s = time.perf_counter() - t0
    c = p.cfg
    setting = {"arch": c.arch, "width": c.width, "resolution": c.resolution, "channels": p.bundle.channels,
               "classes": p.bundle.num_classes, "train": len(p.split.train), "val": p.val_size,
               "test": p.test_size, "threads": c.threads, "device": c.device, "eval_batch": c.eval_batch_size,
               "names": sorted(names)}
    key = probes.key("analyses", PROBE_VERSION, setting, SOURCES)
    hit = _memo.get(key) or probes.lookup(key)
    if not hit or any(n not in hit for n in names):
        hit = _measure(c, p.bundle.channels, p.bundle.num_classes, len(p.split.train), p.val_size, p.test_size,
                       names)
        probes.store(key, hit)
    _memo[key] = hit
    # load the run again from its folder: the dataset read plus the engine (~ one pass over the data)
    return {n: hit[n] for n in names}, load_s + hit.get("_engine_s", 0.0)


def _measure(cfg: TrainConfig, channels: int, classes: int, n_train: int, n_val: int, n_test: int,
             names: list[str]) -> dict[str, float]:
    from ..analyses import AnalysisData, run_analyses
    from ..train.engine import Engine

    bundle = probes.synthetic_bundle(channels, cfg.resolution, n_train, n_test, n_val, classes, name="analysis-probe")
    pcfg = dataclasses.replace(cfg, method="baseline", method_options={}, rounds=0, train_size=None,
                               val_fraction=0.0, protocol="rounds")
    with runtime.threads(cfg.threads):  # the worker that analyses a run has the run's thread count
        t0 = time.perf_counter()
        p = prepare(pcfg, bundle)
        runtime.configure(device=p.device)  # the allocator of the worker that will analyse the run
        eng = Engine(p)
        engine_s = time.perf_counter() - t0
        found = run_analyses(eng.model, eng.groups, AnalysisData.from_engine(eng, source="analysis-probe"),
                             only=names)
    out = {n: float(found[n]["seconds"]) for n in names}
    out["_engine_s"] = engine_s
    out["_measured_at"] = time.time()
    return out
