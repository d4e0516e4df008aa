"""The regimes in the report: the budget frontier, the tuned comparison and the decision tree as parts
of summary.md and report.html, and the claims verdict naming the regime it reads (fixed budget, over
budgets averaged per seed, tuned by validation). Synthetic run folders with numbers chosen by hand,
and one tiny real study end to end."""
import csv
import json
import re
from pathlib import Path

import pytest

from reinitlab.cli import main
from reinitlab.paper.claims import evaluate
from reinitlab.report import make_report
from reinitlab.report.collect import collect
from reinitlab.report.stats import paired_diff


def write_run(root, method, seed, test, val=0.5, size=500, arch="cnn", axes=None, rounds=2, epochs=2,
              dataset="toy"):
    """A finished run folder whose config holds its extra-axis values (`axes`)."""
    axes = dict(axes or {})
    setting = ",".join(f"{k}={v}" for k, v in sorted(axes.items()))
    rid = "/".join(x for x in (dataset, arch, f"n{size}", "noise0", setting, method, f"seed{seed}") if x)
    folder = Path(root) / "runs" / rid
    folder.mkdir(parents=True, exist_ok=True)
    R, E = axes.get("rounds", rounds), axes.get("epochs", epochs)
    cfg = {"dataset": dataset, "arch": arch, "method": method, "train_size": size, "label_noise": 0.0, "seed": seed,
           "rounds": R, "epochs": E, "width": 0.5, **axes}
    total = E if method == "baseline" else (R + 1) * E
    n_rounds = 0 if method in ("baseline", "long") else R
    res = {"status": "finished", "test_acc": test, "val_acc": val, "train_acc": 1.0, "rounds": n_rounds,
           "epochs_total": total, "seconds": 1.0,
           "per_round": [{"round": r, "test_acc": test, "epochs_total": (r + 1) * E} for r in range(n_rounds + 1)]}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "result.json").write_text(json.dumps(res))


def write_study(root, methods, extra_axes=None, tune=()):
    d = {"name": "regimes", "methods": list(methods), "extra_axes": dict(extra_axes or {}), "tune": list(tune)}
    (Path(root) / "study.json").write_text(json.dumps({"definition": d}))


SIZES = (250, 500, 1000, 4000, 8000, 16000)
ARCHS = ("cnn", "vgg")


def tree_study(root):
    """12 combinations (6 sizes x 2 archs): lw is 3 points above baseline and long up to 1,000
    examples and 1 point below above it (seed 0 a bit above, seed 1 a bit below); long is 0.1
    points above baseline."""
    for n in SIZES:
        for a in ARCHS:
            for s in (0, 1):
                base = 0.6 + 0.01 * s
                gain = (0.03 if n <= 1000 else -0.01) + (0.002 if s == 0 else -0.002)
                write_run(root, "baseline", s, base, size=n, arch=a)
                write_run(root, "long", s, base + 0.001, size=n, arch=a)
                write_run(root, "lw", s, base + 0.001 + gain, size=n, arch=a)
    write_study(root, ["baseline", "long", "lw"])
    return root


def test_the_decision_tree_is_drawn_and_names_the_first_split(tmp_path):
    root = tree_study(tmp_path)
    rep = make_report(root)
    md = (root / "summary.md").read_text()
    html = (root / "report.html").read_text()
    tree = md[md.index("## Decision tree"):]
    tree = tree[:tree.index("\n## ")]
    # the gain changes between 1,000 and 4,000 examples: the split lies at their geometric mean
    assert ("**lw − long** (12 combinations): The first split is on the training-set size at about 2,000 examples: "
            "lw − long is +3.00 points on average where train size ≤ 2,000 (n=6 combinations) and -1.00 where train "
            "size > 2,000 (n=6).") in tree
    assert "**lw − baseline** (12 combinations): The first split is on the training-set size at about 2,000" in tree
    assert "lw − long leaf: train size ≤ 2,000: n=6 combinations, mean gain +3.00 points" in tree
    for ref in ("baseline", "long"):
        png = root / "plots" / f"tree_lw_vs_{ref}.png"
        assert png.is_file() and png in rep.files
        assert f"Decision tree of the gain lw − {ref} per combination" in html
    assert re.search(r"<h2 id=\"[^\"]+\">Decision tree</h2>", html) and "The first split is on the training-set size at about 2,000" in html
    # the verdict stays the last section and names its regime
    assert md.rindex("\n## ") == md.index("\n## Verdict on the paper's claims")
    assert "(Regime: fixed budget R=2, E=2.)" in md
    assert "## Budget frontier" not in md  # one budget


def test_too_few_combinations_say_the_tree_cannot_be_fitted(tmp_path):
    for s in (0, 1):
        for m, acc in (("baseline", 0.6), ("lw", 0.62)):
            write_run(tmp_path, m, s, acc + 0.01 * s)
    write_study(tmp_path, ["baseline", "lw"])
    make_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert ("**lw − baseline**: not fitted: 1 combination with both lw and baseline finished; a tree needs at "
            "least 8") in md
    assert not list((tmp_path / "plots").glob("tree_*.png"))
    assert "## Budget frontier" not in md and "## Tuned comparison" not in md  # one budget, no tune
    assert "(Regime: fixed budget R=2, E=2.)" in md


def test_the_budget_frontier_section_per_frame_with_its_sentence_and_plot(tmp_path):
    # lw − long: +2 points at R=1 (clear), about 0 at R=2, -2 at R=3 (clear); 3 seeds
    diffs = {1: [0.020, 0.025, 0.030], 2: [0.010, -0.010, 0.005], 3: [-0.020, -0.025, -0.030]}
    for R, ds in diffs.items():
        for s, d in enumerate(ds):
            long_acc = 0.70 + 0.02 * R + 0.01 * s
            write_run(tmp_path, "baseline", s, 0.6 + 0.01 * s, axes={"rounds": R}, epochs=5)
            write_run(tmp_path, "long", s, long_acc, axes={"rounds": R}, epochs=5)
            write_run(tmp_path, "lw", s, long_acc + d, axes={"rounds": R}, epochs=5)
    write_study(tmp_path, ["baseline", "long", "lw"], {"rounds": [1, 2, 3]})
    rep = make_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    part = md[md.index("## Budget frontier"):]
    part = part[:part.index("\n## ")]
    assert ("- toy, cnn, 500 examples, noise 0: lw beats long at R=1 (10 epochs); ties at R=2 (15 epochs); loses at "
            "R=3 (20 epochs) (seed-paired 95% intervals, 3 seeds).") in part
    assert "| budget | baseline | long | lw | lw − long (points) | verdict |" in part
    d1 = paired_diff([0.72 + 0.01 * s + d for s, d in enumerate(diffs[1])], [0.72 + 0.01 * s for s in range(3)])
    assert f"| R=1 (10 epochs) | 61.00 ± 0.58 (3) | 73.00 ± 0.58 (3) | 75.50 ± 0.87 (3) | +2.50 " \
           f"[{100 * d1.lo:+.2f}, {100 * d1.hi:+.2f}] (3) | beats |" in part
    (png,) = (tmp_path / "plots").glob("budget_*.png")
    assert png in rep.files and f"]({png.relative_to(tmp_path).as_posix()})" in part
    assert "Budget frontier: toy, cnn, 500 examples, noise 0" in (tmp_path / "report.html").read_text()


def test_claims_over_budgets_count_one_pair_per_seed(tmp_path):
    """baseline ignores R: its runs at R=1 and R=2 are one computation; the verdict averages a
    seed's lw − baseline over the budgets instead of counting the baseline twice."""
    gains = {1: [0.01, 0.03, 0.02], 2: [0.03, 0.05, 0.06]}
    for R, gs in gains.items():
        for s, g in enumerate(gs):
            write_run(tmp_path, "baseline", s, 0.6 + 0.01 * s, axes={"rounds": R})
            write_run(tmp_path, "lw", s, 0.6 + 0.01 * s + g, axes={"rounds": R})
    write_study(tmp_path, ["baseline", "lw"], {"rounds": [1, 2]})
    t1 = evaluate(collect(tmp_path))[0].tests[0]
    per_seed = [(a + b) / 2 for a, b in zip(gains[1], gains[2], strict=True)]
    expected = paired_diff([0.6 + 0.01 * s + g for s, g in enumerate(per_seed)], [0.6 + 0.01 * s for s in range(3)])
    assert (t1.diff.n, t1.combos) == (3, 1)
    assert (t1.diff.mean, t1.diff.lo, t1.diff.hi) == pytest.approx((expected.mean, expected.lo, expected.hi))
    assert t1.regime == "over budgets R=1, R=2, E=2 (averaged per seed)"


WD = [5e-4, 5e-3]
# method -> weight decay -> (val, test): the pick by validation is never the best test setting
GRID = {"baseline": {5e-4: (0.80, 0.60), 5e-3: (0.70, 0.70)},
        "long": {5e-4: (0.70, 0.66), 5e-3: (0.75, 0.64)},
        "lw": {5e-4: (0.60, 0.75), 5e-3: (0.90, 0.68)}}


def tuned_study(root, val=True):
    for m, grid in GRID.items():
        for wd, (v, t) in grid.items():
            for s in (0, 1, 2):
                write_run(root, m, s, t + 0.01 * s + (0.003 * s if m == "lw" else 0.0), v if val else None,
                          axes={"weight_decay": wd})
    write_study(root, ["baseline", "long", "lw"], {"weight_decay": WD}, tune=["weight_decay"])
    return root


def test_tuned_comparison_and_the_verdict_read_the_validation_picks(tmp_path):
    root = tuned_study(tmp_path)
    make_report(root)
    md = (root / "summary.md").read_text()
    part = md[md.index("## Tuned comparison"):]
    part = part[:part.index("\n## ")]
    # picks: baseline wd 5e-4 (test 0.60), long 5e-3 (0.64), lw 5e-3 (0.68)
    lw = [0.68 + 0.013 * s for s in range(3)]
    vs_base = paired_diff(lw, [0.60 + 0.01 * s for s in range(3)])
    assert f"**tuned lw − tuned baseline**: {100 * vs_base.mean:+.2f} [{100 * vs_base.lo:+.2f}, " \
           f"{100 * vs_base.hi:+.2f}] (3) points at toy, cnn, 500 examples, noise 0." in part
    assert "| combination | tuned long − tuned baseline | tuned lw − tuned baseline |" in part
    assert "| combination | tuned baseline − tuned long | tuned lw − tuned long |" in part
    assert "### Sensitivity over the grid" in part and "| lw | toy, cnn, 500 examples, noise 0 | 2 | 7.00 |" in part
    assert "| lw | weight_decay=0.005 | 3 |" in part and "| baseline | weight_decay=0.0005 | 3 |" in part
    claim1 = evaluate(collect(root))[0]
    t1 = claim1.tests[0]
    assert (t1.diff.n, t1.combos) == (3, 1) and t1.diff.mean == pytest.approx(vs_base.mean)
    assert claim1.regime.startswith("tuned over weight_decay (picked by validation accuracy")
    assert "(Regime: tuned over weight_decay" in md


def test_runs_without_a_validation_split_cannot_be_tuned_and_the_report_says_so(tmp_path):
    root = tuned_study(tmp_path, val=False)
    make_report(root)
    md = (root / "summary.md").read_text()
    part = md[md.index("## Tuned comparison"):]
    assert "no run could be tuned: no validation split (val_acc missing): cannot be tuned" in part
    assert "9 (method, combination, seed) group(s) cannot be tuned" in part
    assert "untuned: the study tunes over weight_decay but no run could be picked" in md


TINY = """
name = "tiny-regimes"
datasets = ["fashion-mnist-small"]
archs = ["cnn"]
methods = ["baseline", "long", "lw"]
train_sizes = [100]
label_noise = [0.0]
seeds = [0, 1]
width = 0.25
epochs = 1
val_fraction = 0.2
rounds = [1, 2]
weight_decay = [5e-4, 5e-3]
tune = ["weight_decay"]
"""


@pytest.mark.slow
def test_a_tiny_study_over_budgets_and_tuned_weight_decay_end_to_end(tmp_path, capsys):
    toml = tmp_path / "tiny.toml"
    toml.write_text(TINY)
    out = tmp_path / "out"
    assert main(["study", str(toml), "--out", str(out), "--workers", "2"]) == 0
    base = out / "runs" / "fashion-mnist-small" / "cnn" / "n100" / "noise0"
    for R in (1, 2):
        for wd in ("0.0005", "0.005"):
            for m in ("baseline", "long", "lw"):
                for s in (0, 1):
                    res = json.loads((base / f"rounds={R},weight_decay={wd}" / m / f"seed{s}" / "result.json").read_text())
                    assert res["status"] == "finished" and res["val_acc"] is not None
    capsys.readouterr()
    assert main(["report", str(out), "--quiet"]) == 0
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and {"rounds", "weight_decay"} <= set(rows[0])
    md = (out / "summary.md").read_text()
    html = (out / "report.html").read_text()
    # the budget frontier: one frame per weight decay (the untuned axis splits frames), each with a plot
    assert md.count("lw beats long at") + md.count("with one seed per budget") == 2
    assert len(list((out / "plots").glob("budget_*.png"))) == 2 and re.search(r"<h2 id=\"[^\"]+\">Budget frontier</h2>", html)
    # the tuned table, picked by validation per (method, seed)
    assert "## Tuned comparison" in md and "| combination | tuned long − tuned baseline | tuned lw − tuned baseline |" in md
    assert "### Settings picked by validation accuracy" in md and re.search(r"<h2 id=\"[^\"]+\">Tuned comparison</h2>", html)
    # 2 budgets x 2 weight decays = 4 combinations: too few for a tree
    assert "**lw − baseline**: not fitted: 4 combinations" in md
    assert "(Regime: tuned over weight_decay (picked by validation accuracy per method and seed); over budgets R=1, " \
           "R=2, E=1 (averaged per seed).)" in md
