"""`reinitlab report DIR [DIR ...]`: call `make_report`, print the tables; `reinitlab plot RUN...`:
the per-epoch curves of single runs as one figure (curves.plot_runs)."""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="tables, statistics, plots and report.html of a study or of run folders",
                       description="Read run folders (nothing is retrained) and write results.csv, summary.md, "
                                   "plots/*.png and report.html. One study folder: the report goes into it. "
                                   "Run folders (`train --out` folders, folders holding them, quoted globs): "
                                   "they are compared side by side, and the report goes to --out (default: a "
                                   "`report` folder in their common parent).")
    p.add_argument("dirs", nargs="+", metavar="DIR",
                   help="a study folder (reinitlab study ... --out DIR), or run folders to compare")
    p.add_argument("--out", metavar="DIR", help="where the report goes (default: the study folder, or "
                                                 "<common parent of the runs>/report)")
    p.add_argument("--quiet", action="store_true", help="do not print the tables")
    p.add_argument("--answer-only", action="store_true",
                   help="print only the Answer and where report.html is (what `make run` shows)")
    p.add_argument("--skip-bad", dest="skip_bad", action="store_true",
                   help="leave out (and name) run folders whose files cannot be read and folders that claim the same "
                        "run with different results; without it the report refuses them")
    p.set_defaults(func=cmd_report)
    q = sub.add_parser("plot", help="per-epoch loss and accuracy curves of run folders, in one figure",
                       description="Draw the training and validation loss and accuracy after every epoch "
                                   "(metrics.jsonl) of each run folder given, finished or still running, one "
                                   "colour per run; dotted lines mark its resets.")
    q.add_argument("runs", nargs="+", metavar="RUN", help="run folders, folders holding them, or quoted globs")
    q.add_argument("--out", metavar="FILE", help="the figure (.png, .pdf or .svg; default: curves.png)")
    q.set_defaults(func=cmd_plot)


def cmd_report(args) -> int:
    from .make import make_report
    rep = make_report(args.dirs, args.out, skip_bad=args.skip_bad)
    if args.answer_only:
        print(rep.answer or "No answer yet: no method has finished runs to compare.")
        print(f"\nThe whole report: {rep.files[2]} (and summary.md, results.csv, plots/ beside it)")
        return 0
    if not args.quiet:
        print(rep.markdown)
    print("wrote " + ", ".join(str(f) for f in rep.files[:3]) + f" and {len(rep.files) - 3} plot(s)", file=sys.stderr)
    return 0


def cmd_plot(args) -> int:
    from .curves import plot_runs
    print(f"wrote {plot_runs(args.runs, args.out)}", file=sys.stderr)
    return 0
