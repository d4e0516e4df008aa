"""Reports: read a study folder's run folders (never retrain) into tables, statistics, plots and
one self-contained HTML page."""
from .make import Report, make_report  # noqa: F401
