"""The budget frontier on hand-written runs: series per method over budgets, long compute-matched,
the seed-paired LW − long per budget, the one-sentence verdict, the table and the plot."""
import math

import pytest
from report_records import record

from reinitlab.report import budget
from reinitlab.report.stats import paired_diff

E = 5
# lw − long per seed at each R: clearly above 0 at R=1, around 0 at R=2, clearly below at R=3
DIFFS = {1: [0.020, 0.025, 0.030], 2: [0.010, -0.010, 0.005], 3: [-0.020, -0.025, -0.030]}


def study_runs(weight_decays=(None,)):
    runs = []
    for wd in weight_decays:
        extra = {} if wd is None else {"weight_decay": wd}
        for R, diffs in DIFFS.items():
            for s, d in enumerate(diffs):
                long_acc = 0.70 + 0.02 * R + 0.01 * s
                ax = {**extra, "rounds": R}
                runs.append(record("long", s, long_acc, extra=ax))
                runs.append(record("lw", s, long_acc + d, extra=ax))
                # baseline ignores R: the same numbers at every budget
                runs.append(record("baseline", s, 0.60 + 0.01 * s, extra=ax))
    return runs


def test_series_diffs_and_verdicts_per_budget():
    (f,) = budget.frontier(study_runs(), extra_axes=["rounds"], methods=["baseline", "long", "lw"])
    assert (f.dataset, f.arch, f.train_size, f.label_noise, f.settings) == ("fashion-mnist-small", "cnn", 500, 0.0, ())
    assert f.budgets == [(1, E), (2, E), (3, E)]
    assert list(f.series) == ["baseline", "long", "lw"]
    # long and lw both train (R+1)*E epochs at each budget: the comparison is compute-matched
    assert [p.epochs_trained for p in f.series["long"]] == [10, 15, 20] == [p.epochs_trained for p in f.series["lw"]]
    # baseline's three budgets are one computation: one point, its seeds counted once
    (b,) = f.series["baseline"]
    assert (b.epochs_trained, b.stat.n) == (E, 3) and b.stat.mean == pytest.approx(0.61)
    lw2 = f.series["lw"][1]
    assert lw2.stat.n == 3 and lw2.stat.mean == pytest.approx(0.74 + 0.01 + sum(DIFFS[2]) / 3)
    for R, diffs in DIFFS.items():
        expected = paired_diff([0.70 + 0.02 * R + 0.01 * s + d for s, d in enumerate(diffs)],
                               [0.70 + 0.02 * R + 0.01 * s for s in range(3)])
        got = f.diffs[(R, E)]
        assert (got.mean, got.lo, got.hi, got.n) == pytest.approx((expected.mean, expected.lo, expected.hi, 3))
    assert f.verdicts == {(1, E): "beats", (2, E): "ties", (3, E): "loses"}
    assert f.sentence == ("fashion-mnist-small, cnn, 500 examples, noise 0: lw beats long at R=1 (10 epochs); "
                          "ties at R=2 (15 epochs); loses at R=3 (20 epochs) (seed-paired 95% intervals, 3 seeds).")


def test_other_extra_axes_split_frames():
    frames = budget.frontier(study_runs(weight_decays=(5e-4, 5e-3)), extra_axes=["rounds", "weight_decay"])
    assert [f.settings for f in frames] == [(("weight_decay", 5e-4),), (("weight_decay", 5e-3),)]
    assert "weight_decay=0.005" in frames[1].title
    assert all(len(f.budgets) == 3 and f.series["lw"][0].stat.n == 3 for f in frames)


def test_long_at_two_budgets_with_the_same_schedule_is_one_point_and_epochs_may_vary():
    runs = []
    for R, E_ in ((1, 10), (3, 5)):  # both 20 epochs
        for s in range(2):
            runs.append(record("long", s, 0.8 + 0.01 * s, extra={"rounds": R, "epochs": E_}))
            runs.append(record("lw", s, 0.8 + 0.01 * s + 0.01 * R, extra={"rounds": R, "epochs": E_}))
    (f,) = budget.frontier(runs, extra_axes=["epochs", "rounds"])
    assert f.budgets == [(1, 10), (3, 5)]
    assert [p.epochs_trained for p in f.series["long"]] == [20]
    assert [(p.rounds, p.epochs, p.epochs_trained) for p in f.series["lw"]] == [(1, 10, 20), (3, 5, 20)]
    # both lw budgets are compared with the one long computation
    assert f.diffs[(1, 10)].mean == pytest.approx(0.01) and f.diffs[(3, 5)].mean == pytest.approx(0.03)
    assert budget.budget_name(f, (3, 5)) == "R=3, E=5 (20 epochs)"
    header, rows = budget.table(f)
    assert header == ["budget", "long", "lw", "lw − long (points)", "verdict"]
    assert rows[1][:2] == ["R=3, E=5 (20 epochs)", "80.50 ± 0.50 (2)"]  # long's kept point at 20 epochs


def test_one_seed_gives_no_interval_and_says_so():
    runs = [record("long", 0, 0.80, extra={"rounds": 1}), record("lw", 0, 0.82, extra={"rounds": 1}),
            record("long", 0, 0.81, extra={"rounds": 2}), record("lw", 0, 0.80, extra={"rounds": 2})]
    (f,) = budget.frontier(runs, extra_axes=["rounds"])
    assert f.verdicts == {(1, 5): "one seed", (2, 5): "one seed"} and math.isnan(f.diffs[(1, 5)].lo)
    assert "with one seed per budget no interval can be formed; lw − long is +2.00 points at R=1 (10 epochs), " \
           "-1.00 points at R=2 (15 epochs)." in f.sentence


def test_unfinished_runs_and_a_missing_reference_are_left_out():
    runs = study_runs()
    runs = [r for r in runs if not (r.method == "long" and r.axes["rounds"] == 3)]
    runs.append(record("lw", 7, None, status="failed", extra={"rounds": 3}))
    (f,) = budget.frontier(runs, extra_axes=["rounds"])
    assert (3, E) not in f.diffs and f.series["lw"][-1].seeds == (0, 1, 2)
    assert "not compared at R=3 (20 epochs) (no common seed)" in f.sentence


def test_actual_epochs_are_kept_beside_the_schedule():
    runs = [record("lw", s, 0.8, epochs_total=11 + s, extra={"rounds": 2}) for s in range(2)]
    (f,) = budget.frontier(runs, extra_axes=["rounds"])
    p = f.series["lw"][0]
    assert (p.epochs_trained, p.actual_epochs) == (15, 11.5)


def test_plot_is_written_for_frames_with_several_budgets(tmp_path):
    frames = budget.frontier(study_runs(), extra_axes=["rounds"])
    path = budget.plot(frames, tmp_path / "plots" / "budget.png")
    assert path.exists() and path.stat().st_size > 10_000
    single = budget.frontier([record("lw", 0, 0.8), record("long", 0, 0.8)])
    assert budget.plot(single, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
