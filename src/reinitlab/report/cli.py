"""`reinitlab report DIR`: call `make_report`, print the tables."""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="tables, statistics, plots and report.html of a study folder",
                       description="Read the run folders of DIR (nothing is retrained) and write results.csv, "
                                   "summary.md, plots/*.png and report.html into DIR.")
    p.add_argument("dir", metavar="DIR", help="a study folder (reinitlab study ... --out DIR)")
    p.add_argument("--quiet", action="store_true", help="do not print the tables")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from .make import make_report
    rep = make_report(args.dir)
    if not args.quiet:
        print(rep.markdown)
    print("wrote " + ", ".join(str(f) for f in rep.files[:3]) + f" and {len(rep.files) - 3} plot(s)", file=sys.stderr)
    return 0
