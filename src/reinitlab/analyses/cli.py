"""`reinitlab analyze RUN_DIR [--only a,b] [--set key=value ...]`"""
from __future__ import annotations

from pathlib import Path

from ..util.options import parse_assignments
from .metrics import Metric


def headline_keys(analysis, numbers: dict) -> list[str]:
    """The numbers printed for one analysis (everything else is in analysis.json): its declared
    `headline`, else its declared metrics; a family names every member found in `numbers`."""
    keys = analysis.headline or tuple(m.key for m in analysis.metrics)
    out = []
    for key in keys:
        family = Metric(key, "")
        if family.placeholder:
            out += [k for k in numbers if family.pattern().match(k)]
        else:
            out.append(key)
    return out


def cmd_analyze(args) -> int:
    from ..speed.runtime import configure
    from ..util.files import read_json_dict
    from . import ANALYSES, analyze_run
    # As the run trained: on its thread count (the last digits of some numbers, e.g. the Hessian's
    # top eigenvalue, depend on it) and with a run's allocator (CPU) or TF32 (CUDA).
    threads = (read_json_dict(Path(args.run_dir) / "config.json") or {}).get("threads")
    configure(threads=threads if isinstance(threads, int) and threads >= 1 else None, device="auto")
    settings = parse_assignments(args.set)
    doc = analyze_run(Path(args.run_dir), only=args.only, settings=settings, plots=not args.no_plots)
    for name, entry in doc["analyses"].items():
        if args.only and name not in [n.strip() for n in args.only.split(",")]:
            continue
        keys = headline_keys(ANALYSES[name], entry["numbers"])
        shown = "  ".join(f"{k} {_fmt(entry['numbers'].get(k))}" for k in keys if k in entry["numbers"])
        print(f"{name:13s} {shown}  ({entry['seconds']:.1f}s)")
    print(f"-> {Path(args.run_dir) / 'analysis.json'}" + ("" if args.no_plots else " and analysis_*.png"))
    return 0


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def add_parser(subparsers) -> None:
    from . import ANALYSES
    p = subparsers.add_parser("analyze", help=f"{', '.join(ANALYSES)} of a run",
                              description="Analyse a finished run folder; writes analysis.json and "
                                          "analysis_<name>.png into it.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--only", help=f"comma-separated subset of: {','.join(ANALYSES)}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an analysis option: name.key=value for one analysis, key=value for every one that "
                        "has it (e.g. seed=1, margins.max_examples=500, flatness.sigmas=[0,0.05])")
    p.add_argument("--no-plots", dest="no_plots", action="store_true", help="write analysis.json only")
    p.set_defaults(func=cmd_analyze)
