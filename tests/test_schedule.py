"""The learning-rate schedule every run and every comparison shares (train/engine.py `lr_at`): linear
warm-up over the first `warmup` fraction of a round's steps, then cosine decay to 0. Exact values at
the points that define it: the first step, the end of the warm-up, the start of the decay, mid-way
through the decay and the last step."""
import math

import pytest

from reinitlab.train.engine import lr_at


def test_warmup_then_cosine_values_by_hand():
    # 105 steps, warmup 0.05: round(5.25) = 5 warm-up steps, then 100 steps of cosine decay
    peak = 0.1
    assert lr_at(0, 105, peak, 0.05) == pytest.approx(0.02)  # 1/5 of the peak after the first step
    assert lr_at(2, 105, peak, 0.05) == pytest.approx(0.06)
    assert lr_at(4, 105, peak, 0.05) == pytest.approx(0.1)  # the warm-up ends at the peak
    assert lr_at(5, 105, peak, 0.05) == pytest.approx(0.1)  # the decay starts from it: cos(0) = 1
    assert lr_at(30, 105, peak, 0.05) == pytest.approx(0.05 * (1 + math.sqrt(2) / 2))  # a quarter: cos(pi/4)
    assert lr_at(55, 105, peak, 0.05) == pytest.approx(0.05)  # mid-way through the decay: half the peak
    assert lr_at(80, 105, peak, 0.05) == pytest.approx(0.05 * (1 - math.sqrt(2) / 2))
    # the last step of the round: (1 + cos(0.99 pi)) / 2 of the peak, just above 0
    assert lr_at(104, 105, peak, 0.05) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.99)), rel=1e-12)
    assert lr_at(104, 105, peak, 0.05) == pytest.approx(2.4671981713420e-5, rel=1e-9)
    assert lr_at(105, 105, peak, 0.05) == pytest.approx(0.0, abs=1e-18)  # one past the end: 0


def test_the_warmup_length_is_rounded_to_the_nearest_step():
    # 0.05 * 110 = 5.5 -> round half to even = 6 warm-up steps (not 5, as truncation would give)
    assert lr_at(4, 110, 1.0, 0.05) == pytest.approx(5 / 6)
    assert lr_at(5, 110, 1.0, 0.05) == pytest.approx(1.0)
    # 0.05 * 130 = 6.5 -> 6; 0.05 * 150 = 7.5 -> 8
    assert lr_at(5, 130, 1.0, 0.05) == pytest.approx(1.0) and lr_at(5, 150, 1.0, 0.05) == pytest.approx(6 / 8)


def test_no_warmup_starts_at_the_peak_and_decays_over_every_step():
    assert lr_at(0, 10, 0.05, 0.0) == pytest.approx(0.05)
    assert lr_at(5, 10, 0.05, 0.0) == pytest.approx(0.025)
    assert lr_at(9, 10, 0.05, 0.0) == pytest.approx(0.025 * (1 + math.cos(0.9 * math.pi)))


def test_the_schedule_rises_then_falls_and_never_passes_the_peak():
    values = [lr_at(s, 200, 0.05, 0.1) for s in range(200)]
    top = values.index(max(values))
    assert max(values) == pytest.approx(0.05) and top == 19  # the last warm-up step
    assert all(a < b for a, b in zip(values[:top], values[1:top + 1], strict=True))
    assert all(a >= b for a, b in zip(values[top:-1], values[top + 1:], strict=True))
    assert all(0 < v <= 0.05 + 1e-15 for v in values)


def test_a_warmup_as_long_as_the_round_ends_at_the_peak():
    # the decay never starts: the denominator guard keeps the step after it finite
    assert [lr_at(s, 4, 1.0, 1.0) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_at(4, 4, 1.0, 1.0) == pytest.approx(1.0)
    # one decay step after the warm-up: the decay still ends at 0 one step past the round
    assert lr_at(1, 2, 1.0, 0.5) == pytest.approx(1.0) and lr_at(2, 2, 1.0, 0.5) == pytest.approx(0.0, abs=1e-15)


def test_the_constant_schedule_warms_up_then_holds_the_peak_to_the_last_step():
    total, peak = 100, 0.1
    assert lr_at(4, total, peak, 0.1, "constant") == pytest.approx(peak * 5 / 10)  # inside the warm-up
    assert [lr_at(s, total, peak, 0.1, "constant") for s in (10, 50, 99)] == [peak, peak, peak]
    assert lr_at(50, total, peak, 0.1) < peak  # the default decays
