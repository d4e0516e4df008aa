"""`reinitlab study PRESET_OR_FILE --out DIR ...`: parse, then call `run_study`."""
from __future__ import annotations

import sys

from ..util.errors import UserError


def presets_epilog(width: int = 100) -> str:
    """Each preset with the question it answers (its docstring's first paragraph), from the presets'
    registry, so a new preset is listed without editing this."""
    import textwrap

    from .presets import PRESETS
    lines = ["presets (`reinitlab study --presets` adds the command, cost and what to expect):"]
    for name, fn in PRESETS.items():
        question = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
        lines += textwrap.wrap(question, width, initial_indent=f"  {name:8s} ", subsequent_indent=" " * 11)
    return "\n".join(lines)


def add_parser(sub) -> None:
    import argparse

    from .presets import PRESETS
    p = sub.add_parser("study", help="run a study: many runs over datasets x archs x sizes x noise x methods x seeds",
                       description="Run every run of a study into DIR; re-run the same command to resume.",
                       epilog=presets_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", nargs="?", metavar="PRESET_OR_FILE",
                   help=f"a preset ({', '.join(PRESETS)}) or a .toml study file")
    p.add_argument("--out", help="the study folder (run folders, study.json, report)")
    p.add_argument("--workers", type=int, help="runs at a time (default: CPU cores, or GPUs; Ray: cluster CPUs)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (with --backend ray); default: a local Ray instance")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study key: an axis (seeds=[0,1]) or a run setting (epochs=3; a list such as "
                        "weight_decay=[5e-4,5e-3] makes it an axis); repeatable")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit; write nothing")
    p.add_argument("--keep-failed", action="store_true", help="do not retry runs that failed in an earlier start")
    p.add_argument("--allow-mixed", action="store_true",
                   help="go on although runs in DIR were made by other code or on another kind of machine "
                        "(the report flags them); without it such a start is refused")
    p.add_argument("--presets", action="store_true", help="list the presets with what they cost and exit")
    p.set_defaults(func=cmd_study)


def cmd_study(args) -> int:
    from .definition import load_definition
    from .presets import PRESETS
    from .runner import run_study
    if args.presets:
        for name, fn in PRESETS.items():
            print(f"{name}\n    " + (fn.__doc__ or "").strip().replace("\n", "\n") + "\n")
        return 0
    if not args.study:
        raise UserError("study: give a preset (" + ", ".join(PRESETS) + ") or a .toml study file")
    if not args.out:
        raise UserError("study: --out DIR is required")
    defn = load_definition(args.study, args.set)
    result = run_study(defn, args.out, workers=args.workers, backend=args.backend, address=args.address,
                       retry_failed=not args.keep_failed, dry_run=args.dry_run, command=sys.argv,
                       allow_mixed=args.allow_mixed)
    if result.failed:
        print(f"reinitlab: {len(result.failed)} run(s) failed; each has error.json in its folder under "
              f"{args.out}/runs; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0
