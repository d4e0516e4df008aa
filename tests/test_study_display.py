"""The study's progress display: a status line redrawn in place on a terminal, plain lines with the
counts otherwise; and the plan's wall-time simulation."""
import io

import pytest

from reinitlab.study.display import Counts, Display
from reinitlab.study.expand import RunSpec
from reinitlab.study.plan import fmt_duration, simulate_wall


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal():
    s = io.StringIO()
    d = Display(s)
    c = Counts(total=10, done=3, running=2, failed=1)
    d.status(c, 125.0)  # nothing: a log file gets no redraws
    d.event("finished a/b", c, 125.0)
    text = s.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.endswith("finished a/b  (3/10 done, 2 running, 1 failed, 4 left, ~2m 05s left)\n")


def test_one_line_redrawn_on_a_terminal():
    s = Tty()
    d = Display(s)
    c = Counts(total=4, done=1, running=1, waiting=1)
    d.status(c, None, force=True)
    d.status(c, None, force=True)
    assert s.getvalue().count("\n") == 0 and s.getvalue().count("\r\x1b[2K[study") == 2
    assert "1/4 done, 1 running, 0 failed, 2 left, 1 held elsewhere, ~unknown left" in s.getvalue()
    d.event("FAILED x: boom", c, 10.0)
    assert "\r\x1b[2KFAILED x: boom\n" in s.getvalue()
    d.close()
    assert s.getvalue().endswith("\n")


def test_fmt_duration():
    assert [fmt_duration(x) for x in (None, 5, 59.6, 61, 3599, 3600, 86399)] == \
        ["unknown", "5s", "1m 00s", "1m 01s", "59m 59s", "1h 00m", "23h 59m"]


def test_simulated_wall_time_by_hand():
    runs = [RunSpec(str(i), {}, {}) for i in range(3)]
    est = {"0": 100.0, "1": 50.0, "2": 50.0}
    # one worker: 4 s start + 200 s
    assert simulate_wall(runs, est, 1, parallel=True) == 204.0
    # two workers, 1.15x slower each: w1 4 -> 119; w2 4 -> 61.5 -> 119
    assert simulate_wall(runs, est, 2, parallel=True) == pytest.approx(4 + 115.0)
    # on GPUs (not parallel on shared cores) no slowdown: w1 4 -> 104, w2 4 -> 54 -> 104
    assert simulate_wall(runs, est, 2, parallel=False) == 104.0
    assert simulate_wall(runs, {"0": 1.0}, 2, parallel=True) is None  # an unknown run: no guess
