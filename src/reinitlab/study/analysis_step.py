"""The analyses a study asks for (`analyses = [...]`), run on one finished run by the worker that
holds the run's lock.

Right after training, the engine still in memory is analysed, so the dataset is not loaded a second
time. A finished run whose analysis.json lacks some of the requested analyses (killed between
result.json and analysis.json, an analysis that raised at an earlier start, analyses added to the
study later) is loaded from its folder instead. Each analysis runs on its own: one that raises is
recorded in analysis_error.json and the others are still saved. Nothing here fails the run.

Diverged runs are never analysed: their weights are not finite.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .store import Store


@dataclass
class AnalysisOutcome:
    done: list[str] = field(default_factory=list)  # analysed now
    failed: dict[str, str] = field(default_factory=dict)  # name -> one-line reason
    seconds: float = 0.0

    @property
    def text(self) -> str:
        if not self.done and not self.failed:
            return ""
        parts = []
        if self.done:
            parts.append(f"analyses done: {','.join(self.done)}")
        if self.failed:
            first = next(iter(self.failed.values()))
            parts.append(f"ANALYSIS FAILED {','.join(self.failed)}: {first}")
        return "; ".join(parts)


def analyse(store: Store, run_id: str, names: list[str], eng: Any = None) -> AnalysisOutcome:
    """Run the requested analyses that analysis.json does not hold yet. `eng`: the run's engine in
    memory (train.loop.run_keeping_engine's), whose weights are the folder's model.pt; None loads the folder.
    Never raises: even a failure to record a failure (a full disk) is returned, not raised."""
    missing = store.analyses_missing(run_id, names)
    if not missing:
        return AnalysisOutcome()
    try:
        return _analyse(store, run_id, missing, eng)
    except Exception as e:
        return AnalysisOutcome(failed={n: _reason(e) for n in missing})


def _analyse(store: Store, run_id: str, missing: list[str], eng: Any) -> AnalysisOutcome:
    from ..analyses import analyze_engine
    from ..train.engine import load_run

    run_dir = store.run_dir(run_id)
    t0 = time.time()
    done: list[str] = []
    failed: dict[str, BaseException] = {}
    if eng is None:
        try:
            eng = load_run(run_dir)
        except Exception as e:  # e.g. model.pt unreadable: every requested analysis is recorded as failed
            failed = {n: e for n in missing}
    if eng is not None:
        for name in missing:
            try:
                analyze_engine(eng, run_dir, only=[name], plots=False)
                done.append(name)
            except Exception as e:
                failed[name] = e
    store.record_analysis_result(run_id, failed)
    out = AnalysisOutcome(done, {n: _reason(e) for n, e in failed.items()}, time.time() - t0)
    store.log("analysis", run_id, done=done, failed=out.failed, seconds=out.seconds)
    return out


def _reason(e: BaseException) -> str:
    return (f"{type(e).__name__}: {e}".splitlines() or [""])[0]
