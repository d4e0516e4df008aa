"""Live progress of a study: one status line redrawn in place on a terminal; on a pipe or a log
file, one plain line per event (a run started elsewhere, finished, failed) carrying the counts."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .plan import fmt_duration


@dataclass
class Counts:
    total: int
    done: int = 0  # finished or diverged, before this start or now
    running: int = 0
    failed: int = 0
    waiting: int = 0  # held by another study process

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed - self.running

    def text(self, eta: float | None) -> str:
        wait = f", {self.waiting} held elsewhere" if self.waiting else ""
        return (f"{self.done}/{self.total} done, {self.running} running, {self.failed} failed, {self.left} left"
                f"{wait}, ~{fmt_duration(eta)} left")


class Display:
    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled
        self.start = time.time()
        self.last = 0.0
        self.shown = False

    def event(self, text: str, counts: Counts, eta: float | None) -> None:
        if not self.enabled:
            return
        elapsed = fmt_duration(time.time() - self.start)
        if self.tty:
            self._write("\r\x1b[2K" + text + "\n")
            self.status(counts, eta, force=True)
        else:
            self._write(f"[{elapsed}] {text}  ({counts.text(eta)})\n")

    def status(self, counts: Counts, eta: float | None, force: bool = False) -> None:
        if not (self.enabled and self.tty):
            return
        now = time.time()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        self._write(f"\r\x1b[2K[study {fmt_duration(now - self.start)}] {counts.text(eta)}")
        self.shown = True

    def line(self, text: str) -> None:
        if self.enabled:
            self._write(("\r\x1b[2K" if self.tty and self.shown else "") + text + "\n")

    def close(self) -> None:
        if self.enabled and self.tty and self.shown:
            self._write("\n")
            self.shown = False

    def _write(self, s: str) -> None:
        self.stream.write(s)
        self.stream.flush()
