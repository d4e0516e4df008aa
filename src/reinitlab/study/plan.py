"""The plan printed before a study starts: what runs, on what, and how long it should take.

Per-run times come from `reinitlab.throughput.estimate_seconds(cfg)`, which measures this machine.
It times one process alone; workers side by side share memory bandwidth and caches, so on a CPU
each run of N > 1 workers is assumed `PARALLEL_SLOWDOWN` times slower (two 1-thread processes gave
1.25-1.35x the combined throughput of one 2-thread process on the development machine, i.e. each
ran at about 0.65 of a 2-thread process and ~0.85-0.9 of a 1-thread process alone). The wall time
is then a simulation of the scheduler: runs in dispatch order, each to the first free worker.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from ..util.errors import UserError
from .expand import Budget, RunSpec

PARALLEL_SLOWDOWN = 1.15
WORKER_START_S = 4.0  # spawn + import torch + read the dataset, once per worker
# A first estimate of a setting probes it (seconds for a small net; minutes for a ResNet-50 on a
# CPU). Past this budget the plan says "unknown" rather than keep the user waiting.
ESTIMATE_BUDGET_S = 45.0


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def estimate_runs(runs: list[RunSpec], speed: dict, analyses: list[str] = (),
                  analyse_only: frozenset[str] = frozenset(), analysis_parts: dict[str, float] | None = None
                  ) -> tuple[dict[str, float], str]:
    """Seconds per run id (runs that could not be estimated are left out) and a note why, if any.
    With `analyses`, each run's time includes them (measured by analysis_cost.py); a run in
    `analyse_only` is finished and only analysed: loaded from its folder, not trained.
    `analysis_parts`, if given, receives the analyses' share of each run's seconds."""
    try:
        from ..bench.throughput import estimate_seconds
    except ImportError:
        return {}, "no throughput model (reinitlab.throughput) available"
    cache: dict[str, tuple[float, float, float] | None] = {}
    out, problem = {}, ""
    deadline = time.monotonic() + ESTIMATE_BUDGET_S
    for r in runs:
        key = repr(sorted((k, v) for k, v in r.config.items() if k not in ("seed", "data_seed")))
        if key not in cache:
            if time.monotonic() > deadline:
                problem = f"estimating took over {ESTIMATE_BUDGET_S:.0f} s; stopped"
                break
            try:
                cfg = r.train_config(**speed)
                analysis_s, load_s = 0.0, 0.0
                if analyses:
                    from .analysis_cost import analysis_seconds
                    per, load_s = analysis_seconds(cfg, list(analyses))
                    analysis_s = sum(per.values())
                cache[key] = (float(estimate_seconds(cfg)), analysis_s, load_s)
            except UserError as e:  # e.g. data files not found: the run would fail the same way
                cache[key], problem = None, str(e)
        if cache[key] is not None:
            train_s, analysis_s, load_s = cache[key]
            out[r.id] = (load_s if r.id in analyse_only else train_s) + analysis_s
            if analysis_parts is not None:
                analysis_parts[r.id] = analysis_s
    return out, problem


def simulate_wall(order: list[RunSpec], estimates: dict[str, float], workers: int, parallel: bool) -> float | None:
    if not order:
        return 0.0
    if any(r.id not in estimates for r in order):
        return None
    factor = PARALLEL_SLOWDOWN if parallel and workers > 1 else 1.0
    free = [WORKER_START_S] * max(min(workers, len(order)), 1)
    heapq.heapify(free)
    end = 0.0
    for r in order:
        start = heapq.heappop(free)
        finish = start + estimates[r.id] * factor
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


@dataclass
class Plan:
    total: int
    finished: int
    failed_before: int
    partial: int
    todo: list[RunSpec]
    workers_text: str
    estimates: dict[str, float]
    wall_s: float | None
    note: str = ""

    def lines(self, name: str, axis_sizes: str, budgets: dict[str, Budget], out: str) -> list[str]:
        lines = [f"study {name}: {self.total} runs ({axis_sizes}) in {out}"]
        for label, b in budgets.items():
            if b.staged:  # every method trains every stage; baseline without resets, long refused
                first = " (warm_start's stage 0: E/first_fraction)" if "warm_start" in b.protocols else ""
                lines.append(f"  budget {label}: protocol {'/'.join(b.protocols)}, R={b.rounds} stages after stage 0, "
                             f"E={b.epochs} epochs each{first}; every method trains every stage")
                continue
            lines.append(f"  budget {label}: R={b.rounds} rounds after round 0, E={b.epochs} epochs each: reinit "
                         f"methods and long train {b.reinit_epochs} epochs, baseline {b.epochs}")
        patience = sorted({p for b in budgets.values() for p in b.patience if p > 0})
        if patience:
            fit = "/".join(f"{100 * a:g}%" for a in sorted({a for b in budgets.values() for a in b.fit_acc}))
            lines.append(f"  patience {'/'.join(map(str, patience))}: a round ends once training accuracy has been at "
                         f"least {fit} for that many epochs in a row (until its data is fitted); the epochs above are caps")
        lines.append(f"  already finished {self.finished}, failed before {self.failed_before}, partial "
                     f"{self.partial} (resume from checkpoint); to run now: {len(self.todo)}")
        lines.append(f"  on {self.workers_text}")
        work = sum(self.estimates.get(r.id, 0.0) for r in self.todo)
        if self.wall_s is not None:
            lines.append(f"  estimated wall time: {fmt_duration(self.wall_s)} ({fmt_duration(work)} of single-run "
                         "time, measured on this machine)")
        else:
            lines.append("  estimated wall time: unknown" + (f" ({self.note})" if self.note else ""))
        return lines
