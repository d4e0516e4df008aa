"""Analyses of a trained model: why does a method generalize (SPEC, Analyses)?

Each analysis is one module behind one interface (`base.Analysis`): `run(model, groups, data,
options) -> AnalysisResult` (flat named numbers + arrays + how they were obtained) and
`plot(result, path)`. Registry names are the `reinitlab analyze --only` names.

    from reinitlab.analyses import analyze_run, run_analyses, round_log, ANALYSES
    doc = analyze_run("runs/lw-0", only="margins,norms")        # writes analysis.json + PNGs
"""
from ..measure.round_log import round_log  # noqa: F401,E402  (training's per-round diagnostics)
from .base import ANALYSES, Analysis, AnalysisData, AnalysisResult, register, select  # noqa: F401
from .metrics import Metric, Topic  # noqa: F401
from .runner import analyze_engine, analyze_run, flat_numbers, load_analysis, run_analyses  # noqa: F401,E402
