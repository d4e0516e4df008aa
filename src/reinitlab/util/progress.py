"""Progress of one run: a redrawn bar on a terminal, one plain line per epoch otherwise."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_epochs: int, label: str = "", stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled
        self.total = max(total_epochs, 1)
        self.label = label
        self.start = time.time()
        self.last_draw = 0.0
        self.loss, self.loss_read = None, float("-inf")

    def step(self, done_epochs: float, round_: int, rounds: int, epoch: int, epochs: int, loss):
        """Called every few steps; draws at most 5 times a second and only on a terminal. `loss` is a
        number, None, or a function giving it: reading a loss that lives on a GPU waits for the
        device, so a function is called at most once a second (the bar shows the last value)."""
        if not (self.enabled and self.tty):
            return
        now = time.time()
        if now - self.last_draw < 0.2:
            return
        self.last_draw = now
        if callable(loss):
            if now - self.loss_read >= 1.0:
                self.loss, self.loss_read = loss(), now
            loss = self.loss
        frac = min(done_epochs / self.total, 1.0)
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        loss_s = f" loss {loss:.4f}" if loss is not None else ""
        self.stream.write(f"\r{self.label} round {round_}/{rounds} epoch {epoch}/{epochs} [{bar}]"
                          f"{loss_s} {now - self.start:5.0f}s ")
        self.stream.flush()

    def epoch(self, row: dict, rounds: int):
        if not self.enabled:
            return
        val = row.get("val_acc")
        text = (f"{self.label} round {row['round']}/{rounds} epoch {row['epoch']}: loss {row['train_loss']:.4f} "
                f"train {row['train_acc']:.4f}" + (f" val {val:.4f}" if val is not None else "")
                + (f" test {row['test_acc']:.4f}" if "test_acc" in row else "") + f" ({row['seconds']:.1f}s)")
        self.stream.write(("\r\x1b[2K" if self.tty else "") + text.strip() + "\n")
        self.stream.flush()
