"""Run analyses on a model, or on a finished run folder (analysis.json + one PNG per analysis).

analysis.json:
    {"source": run folder, "model_sha256": of model.pt, "run": {dataset, arch, method, seed, ...},
     "numbers": {"margins.q50": ..., "norms.frobenius.stem": ..., ...},   # flat, every analysis
     "analyses": {name: {"numbers", "arrays", "info", "seconds", "plot"}}}

Re-running with --only updates those analyses and keeps the others' earlier results, as long as
model.pt is unchanged (a retrained run drops them).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.groups import Groups
from ..train.engine import load_run
from ..util.errors import UserError
from ..util.files import atomic_write_json, read_json, writable_problem
from .base import ANALYSES, AnalysisData, AnalysisResult, select, split_settings

RUN_KEYS = ("dataset", "arch", "method", "seed", "data_seed", "train_size", "label_noise", "width", "rounds", "epochs")


def resolve_options(names: list[str], settings: dict[str, Any] | None) -> dict[str, Any]:
    """Typed options per analysis; every bad key or value is a UserError before anything runs."""
    per = split_settings(names, settings)
    return {n: ANALYSES[n].options(**per[n]) for n in names}


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_analyses(model: nn.Module, groups: Groups, data: AnalysisData, only: str | list[str] | None = None,
                 settings: dict[str, Any] | None = None, plot_dir: str | Path | None = None
                 ) -> dict[str, dict]:
    """{name: {"numbers", "arrays", "info", "seconds"[, "plot"]}} for the selected analyses.
    Options are checked for every analysis before any of them runs."""
    names = select(only)
    opts = resolve_options(names, settings)
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise UserError(f"parameter {bad[0]} holds non-finite values (a diverged run?); nothing to analyse")
    out = {}
    for n in names:
        t0 = time.perf_counter()
        result = ANALYSES[n].run(model, groups, data, opts[n])
        seconds = time.perf_counter() - t0
        result.info["options"] = vars(opts[n])
        entry = {**result.to_json(), "seconds": seconds}
        if plot_dir is not None:
            name = f"analysis_{n}.png"
            ANALYSES[n].plot(result, str(Path(plot_dir) / name))
            entry["plot"] = name
        out[n] = entry
    return out


def flat_numbers(analyses: dict[str, dict]) -> dict[str, Any]:
    return {f"{n}.{k}": v for n, entry in analyses.items() for k, v in entry["numbers"].items()}


def analyze_run(run_dir: str | Path, only: str | list[str] | None = None, settings: dict[str, Any] | None = None,
                plots: bool = True, device: str | None = None) -> dict:
    """Load a finished run (`engine.load_run`), run the analyses, write analysis.json and the PNGs into
    the run folder; returns analysis.json's content."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such folder")
    resolve_options(select(only), settings)  # refuse bad names and settings before the (slow) load
    problem = writable_problem(run_dir)
    if problem:
        raise UserError(f"{run_dir}: cannot write analysis.json there: {problem}")
    return analyze_engine(load_run(run_dir, device=device), run_dir, only, settings, plots)


def analyze_engine(eng: Any, run_dir: str | Path, only: str | list[str] | None = None,
                   settings: dict[str, Any] | None = None, plots: bool = True) -> dict:
    """`analyze_run` on an engine already in memory whose weights are the folder's model.pt, e.g. the
    one `train.loop.run_keeping_engine` returns right after training (no second load of the dataset)."""
    run_dir = Path(run_dir)
    model_hash = _fingerprint(run_dir / "model.pt")
    data = AnalysisData.from_engine(eng, source=str(run_dir))
    fresh = run_analyses(eng.model, eng.groups, data, only, settings, run_dir if plots else None)
    path = run_dir / "analysis.json"
    previous: dict = {}
    if path.exists():
        try:
            old = read_json(path)
        except (OSError, ValueError):
            old = {}  # unreadable: rewritten from scratch
        # earlier results are kept only if they describe these very weights
        previous = old.get("analyses", {}) if old.get("model_sha256") == model_hash else {}
    analyses = {n: (fresh.get(n) or previous[n]) for n in ANALYSES if n in fresh or n in previous}
    cfg = read_json(run_dir / "config.json")
    doc = {"source": str(run_dir), "model_sha256": model_hash, "run": {k: cfg.get(k) for k in RUN_KEYS},
           "numbers": flat_numbers(analyses), "analyses": analyses}
    atomic_write_json(path, doc)
    return doc


def load_analysis(run_dir: str | Path) -> dict[str, AnalysisResult]:
    """The results stored in a run folder's analysis.json, as AnalysisResult objects."""
    doc = read_json(Path(run_dir) / "analysis.json")
    return {n: AnalysisResult.from_json(n, d) for n, d in doc["analyses"].items()}
