"""Reports made from run folders only: results.csv, summary.md, plots, report.html.

`make_report` and `Report` load lazily: importing the CLI must not pay for scipy and matplotlib."""


def __getattr__(name):
    if name in ("Report", "make_report"):
        from . import make
        return getattr(make, name)
    raise AttributeError(name)


__all__ = ["Report", "make_report"]
