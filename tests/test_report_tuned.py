"""Tuned comparisons on hand-written runs: picks by validation accuracy only, ties by the study's
order, seed-paired tuned differences, sensitivity over the grid, runs that cannot be tuned."""
import math
import random
import statistics

import pytest
from report_records import record

from reinitlab.report import tuned
from reinitlab.report.stats import paired_diff

WD = [5e-4, 5e-3]
AUG = ["none", "flip"]
ORDER = {"weight_decay": WD, "augment": AUG}
# (augment, weight_decay) -> (val, test) per method; the best test is never the best validation
GRID = {
    "baseline": {("none", 5e-4): (0.80, 0.90), ("flip", 5e-4): (0.85, 0.80), ("none", 5e-3): (0.70, 0.60),
                 ("flip", 5e-3): (0.75, 0.62)},
    "lw": {("none", 5e-4): (0.70, 0.95), ("flip", 5e-4): (0.72, 0.70), ("none", 5e-3): (0.90, 0.83),
           ("flip", 5e-3): (0.60, 0.65)},
}


def grid_runs(methods=("baseline", "lw"), seeds=(0, 1, 2), **kw):
    runs = []
    for m in methods:
        for (aug, wd), (val, test) in GRID[m].items():
            for s in seeds:
                runs.append(record(m, s, test + 0.01 * s + (0.002 * s if m == "lw" else 0.0), val,
                                   extra={"augment": aug, "weight_decay": wd}, **kw))
    return runs


def run_tune(runs, **kw):
    return tuned.tune(runs, ["weight_decay", "augment"], extra_axes=["augment", "weight_decay"],
                      methods=["baseline", "lw"], order=ORDER, **kw)


def test_picks_by_validation_never_by_test_and_compares_seed_paired():
    t = run_tune(grid_runs())
    assert t.methods == ["baseline", "lw"] and len(t.combos) == 1 and not t.untunable and not t.incomplete
    combo = t.combos[0]
    assert combo == ("fashion-mnist-small", "cnn", 500, 0.0, ())
    picked = {(p.method, p.seed): p.setting for p in t.picks}
    for s in range(3):
        assert picked[("baseline", s)] == (("augment", "flip"), ("weight_decay", 5e-4))
        assert picked[("lw", s)] == (("augment", "none"), ("weight_decay", 5e-3))
        # the settings with the best test accuracy (0.90, 0.95) are not picked
    assert all(p.candidates == p.grid == 4 for p in t.picks)
    d = t.diffs["baseline"][combo]["lw"]
    expected = paired_diff([0.83 + 0.012 * s for s in range(3)], [0.80 + 0.01 * s for s in range(3)])
    assert (d.mean, d.lo, d.hi, d.n) == pytest.approx((expected.mean, expected.lo, expected.hi, 3))
    assert "long" not in t.diffs  # no long runs here
    header, rows = tuned.diff_table(t, "baseline")
    assert header == ["combination", "tuned lw − tuned baseline"]
    assert rows == [["fashion-mnist-small, cnn, 500 examples, noise 0", tuned._diff(d)]]


def test_a_validation_tie_goes_to_the_first_setting_in_the_study_order_whatever_the_folder_order():
    runs = [record("lw", 0, test, val, extra={"augment": "none", "weight_decay": wd})
            for wd, (val, test) in ((5e-3, (0.9, 0.70)), (5e-4, (0.9, 0.60)))]
    for shuffled in (runs, runs[::-1]):
        t = run_tune(shuffled)
        assert [p.setting for p in t.picks] == [(("augment", "none"), ("weight_decay", 5e-4))]
        assert t.picks[0].test_acc == 0.60  # the lower test accuracy: test never breaks a tie
    t = tuned.tune(runs, ["weight_decay", "augment"], extra_axes=["augment", "weight_decay"],
                   order={"weight_decay": [5e-3, 5e-4]})
    assert t.picks[0].setting == (("augment", "none"), ("weight_decay", 5e-3))


def test_sensitivity_is_spread_and_sd_of_the_per_setting_means():
    t = run_tune(grid_runs())
    by = {s.method: s for s in t.sensitivity}
    means = [test + 0.01 + 0.002 for test in (v[1] for v in GRID["lw"].values())]  # mean over seeds 0,1,2
    s = by["lw"]
    assert s.settings == 4
    assert s.spread == pytest.approx(max(means) - min(means))
    assert s.sd == pytest.approx(statistics.stdev(means))
    assert s.best == (("augment", "none"), ("weight_decay", 5e-4)) and s.worst == (("augment", "flip"), ("weight_decay", 5e-3))
    header, rows = tuned.sensitivity_table(t)
    assert header[3:5] == ["max − min (points)", "SD (points)"]
    assert rows[1][0] == "lw" and rows[1][3] == f"{100 * s.spread:.2f}"


def test_runs_without_a_validation_split_cannot_be_tuned_and_are_named():
    runs = grid_runs() + [record("long", s, 0.7, None, extra={"augment": a, "weight_decay": w})
                          for s in range(2) for a in AUG for w in WD]
    t = run_tune(runs)
    assert {(u.method, u.seed, u.reason) for u in t.untunable} == {("long", 0, tuned.NO_VALIDATION),
                                                                   ("long", 1, tuned.NO_VALIDATION)}
    assert not [p for p in t.picks if p.method == "long"]
    text = " ".join(tuned.lines(t))
    assert "2 (method, combination, seed) group(s) cannot be tuned: their runs have no validation split" in text
    assert "test accuracy is never used to choose" in text


def test_an_unfinished_grid_is_picked_from_what_finished_and_flagged():
    runs = grid_runs()
    victim = next(r for r in runs if r.method == "lw" and r.seed == 1 and r.axes["weight_decay"] == 5e-3
                  and r.axes["augment"] == "none")
    runs[runs.index(victim)] = record("lw", 1, None, status="failed", extra={"augment": "none", "weight_decay": 5e-3})
    random.Random(0).shuffle(runs)
    t = run_tune(runs)
    (p,) = t.incomplete
    assert (p.method, p.seed, p.candidates, p.grid) == ("lw", 1, 3, 4)
    assert p.setting == (("augment", "flip"), ("weight_decay", 5e-4))  # the best validation left: 0.72
    assert "1 pick(s) were made from part of the grid" in " ".join(tuned.lines(t))


def test_axes_not_tuned_split_combinations_and_picks_are_counted():
    runs = []
    for lr in (0.05, 0.1):
        for r in grid_runs():
            r.axes["lr"] = lr
            r.config["lr"] = lr
            runs.append(r)
    t = tuned.tune(runs, ["weight_decay", "augment"], extra_axes=["augment", "lr", "weight_decay"], order=ORDER)
    assert [c[4] for c in t.combos] == [(("lr", 0.05),), (("lr", 0.1),)]
    assert len(t.picks) == 2 * 2 * 3 and set(t.diffs["baseline"]) == set(t.combos)
    header, rows = tuned.picks_table(t)
    assert header[1] == "picked setting (by validation)"
    assert rows[0] == ["baseline", "augment=flip, weight_decay=0.0005", "6"]


def test_one_setting_has_no_sd():
    t = run_tune([record("lw", s, 0.8, 0.7, extra={"augment": "none", "weight_decay": 5e-4}) for s in range(2)])
    (s,) = t.sensitivity
    assert s.settings == 1 and s.spread == 0.0 and math.isnan(s.sd)


def test_tune_axes_and_value_order_come_from_study_json():
    study = {"definition": {"tune": ["weight_decay"], "extra_axes": {"weight_decay": [5e-3, 5e-4], "lr": [0.1]}}}
    assert tuned.study_tuning(study) == (["weight_decay"], {"weight_decay": [5e-3, 5e-4], "lr": [0.1]})
    assert tuned.study_tuning({"definition": {"name": "old"}}) == ([], {}) == tuned.study_tuning(None)
