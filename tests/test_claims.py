"""The verdict on the paper's claims (report/claims.py) on synthetic run folders: supported, not
supported and not testable for each kind of test, the effect over combinations against statsmodels'
random-effects meta-analysis, the "most combinations" sign test with Holm against scipy and
statsmodels, context rows that do not enter a verdict, and the table at the end of summary.md."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from why_common import make_why_study, write_run, write_study

import test_report_regimes as rg
from reinitlab.analyses.metrics import Metric
from reinitlab.paper.claims import (
    CLEAN,
    HIGHER,
    LOWER,
    NOT_HIGHER,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    STATEMENTS,
    SUPPORTED,
    Claim,
    claim_verdict,
    decide,
    evaluate,
    lower_groups,
    lower_probe_metric,
    most_combinations,
    pooled_test,
    shrink_test,
    verdict_part,
)
from reinitlab.paper.claims import Test as ClaimTest  # not "Test...": pytest would try to collect it
from reinitlab.report import make_report
from reinitlab.report.catalog import TEST_ACC, build_catalog
from reinitlab.report.collect import Collected, Combo, collect
from reinitlab.report.stats import MEANS_T, PAIRED_T, RANDOM_EFFECTS, Combined, SignTest, combine, paired_diff
from reinitlab.report.values import ANALYSIS, DIAGNOSTICS, load
from reinitlab.study import expand, load_definition

S500, S2000, BIG = Combo("toy", "cnn", 500, 0.0), Combo("toy", "cnn", 2000, 0.0), Combo("toy", "cnn", 40000, 0.0)
NOISY = Combo("toy", "cnn", 500, 0.2)


def build(root, accs: dict, numbers: dict | None = None):
    """accs: (combo, method) -> accuracy per seed; numbers: (combo, method) -> per seed a dict of
    analysis.json numbers (absent: no analysis.json)."""
    methods = []
    for (combo, method), values in accs.items():
        methods.append(method) if method not in methods else None
        for seed, acc in enumerate(values):
            nums = (numbers or {}).get((combo, method))
            write_run(root, combo, method, seed, acc, nums[seed] if nums else None)
    write_study(root, "claims-test", methods)
    return root


def claims_of(root):
    return {c.number: c for c in evaluate(collect(root))}


def test_decide_each_direction():
    up, down, flat = paired_diff([2, 2.1, 2.2], [1, 1, 1]), paired_diff([1, 1, 1], [2, 2.1, 2.2]), paired_diff([1, 2, 1], [1, 1, 2])
    assert decide(up, HIGHER)[0] == SUPPORTED and decide(down, HIGHER)[0] == NOT_SUPPORTED
    assert decide(down, LOWER)[0] == SUPPORTED and decide(flat, LOWER)[0] == NOT_SUPPORTED
    assert decide(flat, NOT_HIGHER)[0] == SUPPORTED and decide(up, NOT_HIGHER)[0] == NOT_SUPPORTED
    assert decide(down, NOT_HIGHER)[0] == SUPPORTED
    assert decide(None, HIGHER) == (NOT_TESTABLE, "")
    # exactly 0 on every seed: an interval [0, 0] is on neither side of 0
    zero = paired_diff([1, 1, 1], [1, 1, 1])
    assert (zero.lo, zero.hi) == (0.0, 0.0)
    assert [decide(zero, d)[0] for d in (HIGHER, LOWER, NOT_HIGHER)] == [NOT_SUPPORTED, NOT_SUPPORTED, SUPPORTED]
    # two pairs make an interval; a difference without one (NaN bounds) is not testable, however many pairs
    assert decide(paired_diff([2, 2.1], [1, 1]), HIGHER) == (SUPPORTED, "")
    no_interval = Combined(0.1, math.nan, math.nan, 5, math.nan, 2, RANDOM_EFFECTS)
    assert decide(no_interval, HIGHER) == (NOT_TESTABLE, "one pair: an interval needs at least 2 seeds")
    assert decide(paired_diff([2], [1]), HIGHER) == (NOT_TESTABLE, "one pair: an interval needs at least 2 seeds")


def test_claim_verdict_combines_required_tests_only():
    class T:
        def __init__(self, verdict, required=True):
            self.verdict, self.required = verdict, required
    assert claim_verdict([T(SUPPORTED), T(SUPPORTED), T(NOT_SUPPORTED, required=False)]) == SUPPORTED
    assert claim_verdict([T(SUPPORTED), T(NOT_SUPPORTED)]) == NOT_SUPPORTED
    assert claim_verdict([T(NOT_TESTABLE), T(NOT_SUPPORTED)]) == NOT_SUPPORTED
    assert claim_verdict([T(NOT_TESTABLE), T(NOT_TESTABLE)]) == NOT_TESTABLE
    assert claim_verdict([T(SUPPORTED), T(NOT_TESTABLE)]).startswith("supported where testable (1 of 2 tests")


def test_claim1_supported_by_hand_and_claim2_not_supported_when_the_gain_grows(tmp_path):
    base = [0.70, 0.71, 0.72]
    gain = {S500: [0.01, 0.02, 0.03], S2000: [0.04, 0.05, 0.06]}
    fc_gap = {S500: [0.01, 0.02, 0.01], S2000: [0.02, 0.01, 0.02]}
    accs = {}
    for c in (S500, S2000):
        lw = [b + g for b, g in zip(base, gain[c], strict=True)]
        accs.update({(c, "baseline"): base, (c, "long"): [x + 0.01 for x in lw], (c, "lw"): lw,
                     (c, "fc"): [x - g for x, g in zip(lw, fc_gap[c], strict=True)]})
    claims = claims_of(build(tmp_path, accs))
    t1 = claims[1].tests[0]
    # per combination: differences 0.01, 0.02, 0.03 (mean 0.02) and 0.04, 0.05, 0.06 (mean 0.05), each
    # mean with variance 0.01^2 / 3; random effects over the two (statsmodels' default: Paule-Mandel)
    ref = combine_effects(np.array([0.02, 0.05]), np.array([0.0001 / 3] * 2))
    frame = ref.summary_frame(alpha=0.05).loc["random effect"]
    assert (t1.ref, t1.diff.n, t1.combos, t1.positive, t1.diff.k) == ("baseline", 6, 2, 2, 2)
    assert t1.diff.test == RANDOM_EFFECTS and t1.diff.mean == pytest.approx(0.035)
    assert (t1.diff.lo, t1.diff.hi) == (pytest.approx(frame["ci_low"], rel=1e-4), pytest.approx(frame["ci_upp"], rel=1e-4))
    assert t1.diff.tau2 == pytest.approx(ref.tau2, rel=1e-4)
    assert t1.diff.p == pytest.approx(2 * sps.norm.sf(0.035 / frame["sd_eff"]), rel=1e-4)
    # the 6 pairs pooled as one sample would give a narrower interval than the spread of the two combinations allows
    naive = paired_diff([0.01, 0.02, 0.03, 0.04, 0.05, 0.06], [0.0] * 6)
    assert naive.lo > t1.diff.lo and naive.hi < t1.diff.hi
    assert t1.verdict == SUPPORTED
    t_fc = next(t for t in claims[1].tests if t.ref == "fc" and t.sign is None)
    assert t_fc.verdict == SUPPORTED and t_fc.diff.mean == pytest.approx(0.015)
    # lw is 1 point below long everywhere: the compute-matched context says so, the claim is about baseline
    assert t1.context.ref == "long" and t1.context.verdict == NOT_SUPPORTED and t1.context.diff.mean == pytest.approx(-0.01)
    # two combinations cannot show "most combinations" by a sign test (at best p = 0.5): not testable
    signs = [t for t in claims[1].tests if t.sign is not None]
    assert [t.ref for t in signs] == ["baseline", "fc"] and all(t.verdict == NOT_TESTABLE for t in signs)
    assert "LW ahead in 2 of 2" in signs[0].note and "cannot reach" in signs[0].note
    assert claims[1].verdict.startswith("supported where testable")
    # the gain grows from 500 to 2000 (by 0.03 on every seed): "shrinks" is not supported
    shrink = claims[2].tests[0]
    assert shrink.diff.mean == pytest.approx(0.03) and shrink.verdict == NOT_SUPPORTED and shrink.positive == 1
    assert claims[2].verdict == NOT_SUPPORTED
    # no analyses and no diagnostics: the mechanism claims cannot be tested
    for n in (3, 4, 5):
        assert claims[n].verdict == NOT_TESTABLE
    assert "needs the margins analysis" in claims[3].tests[0].note
    assert "label_noise > 0" in claims[5].tests[0].note


def test_claim2_shrinks_then_vanishes_on_large_sets(tmp_path):
    base = [0.70, 0.71, 0.72]
    gain = {S500: [0.04, 0.05, 0.06], S2000: [0.01, 0.01, 0.02]}
    accs = {}
    for c, g in gain.items():
        accs.update({(c, "baseline"): base, (c, "lw"): [b + x for b, x in zip(base, g, strict=True)]})
    claims = claims_of(build(tmp_path / "a", accs))
    shrink, vanish = claims[2].tests
    # per seed: gain at 2000 minus gain at 500 = -0.03, -0.04, -0.04
    assert shrink.diff.mean == pytest.approx(-0.11 / 3) and shrink.diff.hi < 0 and shrink.verdict == SUPPORTED
    assert "2000 vs 500" in shrink.text
    assert vanish.verdict == NOT_TESTABLE and "35,000" in vanish.note
    assert claims[2].verdict.startswith("supported where testable (1 of 2 tests")

    accs.update({(BIG, "baseline"): base, (BIG, "lw"): [b + x for b, x in zip(base, [0.0, 0.01, -0.01], strict=True)]})
    claims = claims_of(build(tmp_path / "b", accs))
    shrink, vanish = claims[2].tests
    assert "40000 vs 500" in shrink.text and shrink.verdict == SUPPORTED
    assert vanish.verdict == SUPPORTED and vanish.diff.mean == pytest.approx(0.0, abs=1e-12)
    assert claims[2].verdict == SUPPORTED


def test_claim1_one_large_gain_does_not_make_an_effect_over_combinations(tmp_path):
    """A large gain in one combination and a tiny loss in two: the 30 pairs pooled as one sample give an
    interval above 0, but over combinations (random effects) the interval spans 0: not supported."""
    accs = {}
    for i, size in enumerate((100, 200, 300)):
        c = ("toy", "cnn", size, 0.0)
        base = [0.5 + 0.01 * s for s in range(10)]
        gap = [0.10 + 0.001 * s for s in range(10)] if i == 0 else [-0.001 - 0.0001 * s for s in range(10)]
        accs.update({(c, "baseline"): base, (c, "lw"): [b + g for b, g in zip(base, gap, strict=True)]})
    t1 = claims_of(build(tmp_path, accs))[1].tests[0]
    gaps = [0.10 + 0.001 * s for s in range(10)] + [-0.001 - 0.0001 * s for s in range(10)] * 2
    assert paired_diff(gaps, [0.0] * 30).lo > 0  # what the old pooled t-test said
    assert t1.diff.test == RANDOM_EFFECTS and t1.diff.lo < 0 < t1.diff.hi
    assert (t1.positive, t1.combos) == (1, 3) and t1.verdict == NOT_SUPPORTED


def test_claim1_most_combinations_sign_test_with_holm_over_the_compared_methods(tmp_path):
    """Seven sizes: LW ahead of baseline in all 7, of fc in 5 of 7. The exact sign tests (scipy's
    binomtest) Holm-corrected over the two (statsmodels' multipletests): baseline significant, fc not."""
    accs = {}
    for i, size in enumerate(range(100, 800, 100)):
        c = ("toy", "cnn", size, 0.0)
        base = [0.5 + 0.01 * s for s in range(3)]
        lw = [b + 0.02 + 0.001 * i + 0.002 * s for s, b in enumerate(base)]
        fc = [x + (-0.01 if i < 5 else 0.01) for x in lw]
        accs.update({(c, "baseline"): base, (c, "lw"): lw, (c, "fc"): fc})
    claims = claims_of(build(tmp_path, accs))
    signs = {t.ref: t for t in claims[1].tests if t.sign is not None}
    raw = [sps.binomtest(7, 7).pvalue, sps.binomtest(5, 7).pvalue]
    adjusted = multipletests(raw, method="holm")[1]
    assert (signs["baseline"].sign.wins, signs["fc"].sign.wins, signs["fc"].sign.losses) == (7, 5, 2)
    assert [signs["baseline"].sign.p, signs["fc"].sign.p] == pytest.approx(raw)
    assert [signs["baseline"].p_holm, signs["fc"].p_holm] == pytest.approx(list(adjusted))
    assert signs["baseline"].verdict == SUPPORTED and signs["fc"].verdict == NOT_SUPPORTED
    assert "LW ahead in 5 of 7" in signs["fc"].note and signs["fc"].family == 2
    # without fc the family is baseline alone; six combinations suffice then (2 / 64 = 0.031), not with two methods
    six = {k: v for k, v in accs.items() if k[0][2] < 700}
    alone = claims_of(build(tmp_path / "alone", {k: v for k, v in six.items() if k[1] != "fc"}))
    (s1,) = [t for t in alone[1].tests if t.sign is not None]
    assert s1.verdict == SUPPORTED and s1.p_holm == pytest.approx(2 / 64)
    both = claims_of(build(tmp_path / "both", six))
    assert all(t.verdict == NOT_TESTABLE for t in both[1].tests if t.sign is not None)


def _mechanism_numbers(frob_gap):
    base = {"margins.q50": [1.0, 1.2, 1.1], "norms.frobenius_total": [10.0, 11.0, 12.0], "bound.log10_R": [5.0, 5.1, 5.2],
            "margins.spectral_normalized_q50": [1e-5, 1.2e-5, 1.1e-5], "flatness.increase_sigma_0": [0.0] * 3,
            "flatness.increase_sigma_0.05": [0.3, 0.4, 0.35], "flatness.increase_sigma_0.1": [0.6, 0.7, 0.65],
            "flatness.hessian_top_eigenvalue": [100.0, 110.0, 105.0], "memorization.memorized_fraction": [0.6, 0.7, 0.65],
            "memorization.noisy_true_label_acc": [0.3, 0.3, 0.3],
            **{f"probes.linear_acc.{g}": [0.5, 0.55, 0.6] for g in ("stem", "block1", "block2", "block3", "head")}}
    gap = {"margins.q50": [0.5, 0.6, 0.7], "norms.frobenius_total": frob_gap, "bound.log10_R": [-0.2, -0.1, -0.3],
           "margins.spectral_normalized_q50": [1e-6, 2e-6, 1.5e-6], "flatness.increase_sigma_0.05": [-0.1, -0.2, -0.15],
           "flatness.increase_sigma_0.1": [-0.1, 0.05, -0.02],  # not lower at every sigma
           "flatness.hessian_top_eigenvalue": [-5.0, -6.0, -7.0], "memorization.memorized_fraction": [-0.2, -0.3, -0.25],
           "probes.linear_acc.stem": [0.02, 0.03, 0.04], "probes.linear_acc.block1": [0.02, 0.03, 0.04]}
    per_seed = {m: [] for m in ("baseline", "lw")}
    for s in range(3):
        b = {k: v[s] for k, v in base.items()}
        per_seed["baseline"].append(b)
        per_seed["lw"].append({k: v + (gap[k][s] if k in gap else 0.0) for k, v in b.items()})
    return per_seed


@pytest.mark.parametrize("frob_gap, claim3", [([0.1, -0.1, 0.05], SUPPORTED), ([1.0, 1.1, 1.2], NOT_SUPPORTED)])
def test_mechanism_claims_on_analysis_numbers(tmp_path, frob_gap, claim3):
    nums = _mechanism_numbers(frob_gap)
    accs, numbers = {}, {}
    for c in (S500, NOISY):
        accs.update({(c, "baseline"): [0.7, 0.7, 0.7], (c, "lw"): [0.71, 0.72, 0.73]})
        numbers.update({(c, "baseline"): nums["baseline"], (c, "lw"): nums["lw"]})
    claims = claims_of(build(tmp_path, accs, numbers))
    margin, frob, logr, normalized = claims[3].tests
    assert margin.verdict == SUPPORTED and margin.diff.mean == pytest.approx(0.6) and margin.diff.n == 3  # clean only
    assert logr.verdict == SUPPORTED and normalized.verdict == SUPPORTED
    assert frob.verdict == claim3 and claims[3].verdict == claim3
    # flatness: lower at sigma 0.05, not at 0.1 -> not "at every sigma"; the Hessian is context only
    by_text = {t.text.split(" (")[0]: t for t in claims[4].tests}
    assert by_text["training-loss increase at sigma 0.05"].verdict == SUPPORTED
    assert by_text["training-loss increase at sigma 0.1"].verdict == NOT_SUPPORTED
    assert not by_text["context: top Hessian eigenvalue"].required
    assert "training-loss increase at sigma 0" not in by_text  # sigma 0 is 0 by construction: no test
    assert claims[4].verdict == NOT_SUPPORTED
    memo, lower, true_label = claims[5].tests
    assert memo.verdict == SUPPORTED and memo.diff.n == 3 and memo.diff.mean == pytest.approx(-0.25)  # noisy only
    assert "stem, block1" in lower.text and lower.diff.n == 6 and lower.diff.mean == pytest.approx(0.03)
    assert lower.verdict == SUPPORTED and not true_label.required
    assert claims[5].verdict == SUPPORTED


def test_not_testable_says_what_is_missing(tmp_path):
    accs = {(S500, "baseline"): [0.7], (S500, "lw"): [0.72]}
    claims = claims_of(build(tmp_path, accs))
    t1 = claims[1].tests
    assert t1[0].verdict == NOT_TESTABLE and "at least 2 seeds" in t1[0].note
    assert "no other reinit method" in t1[1].note
    assert "needs at least 2 training sizes with lw and baseline on common seeds (found [500]" in claims[2].tests[0].note
    assert "no finished long runs" in t1[0].context.note
    assert "flatness analysis" in claims[4].tests[0].note
    assert all(c.verdict == NOT_TESTABLE for c in claims.values())
    assert {n: c.statement for n, c in claims.items()} == STATEMENTS
    # without analyses the tests that have no members to enumerate still say what they would test
    other = t1[1]
    assert (other.text, other.ref, other.direction, other.metric.key) == (
        "test accuracy vs the other reinit methods", "other reinit methods", HIGHER, "test_acc")
    flat = claims[4].tests[0]
    assert (flat.text, flat.direction, flat.required) == ("training-loss increase under weight noise (no label noise)",
                                                          LOWER, True)
    hessian = claims[4].tests[1]
    assert (hessian.text, hessian.direction, hessian.required) == (
        "context: top Hessian eigenvalue (no label noise)", LOWER, False)
    probe = claims[5].tests[1]
    assert (probe.text, probe.direction) == (
        "linear-probe accuracy of the lower groups' features (lower half below the head) (all combinations)", HIGHER)
    assert claims[2].tests[1].text == "no gain on large training sets: test accuracy (no label noise, train size >= 35,000)"


def test_a_method_named_by_the_study_without_finished_runs_is_not_compared(tmp_path):
    accs = {(S500, "baseline"): [0.70, 0.71], (S500, "lw"): [0.72, 0.74], (S500, "ke"): [0.6, 0.6]}
    build(tmp_path, accs)
    for f in (tmp_path / "runs").rglob("ke/*/result.json"):  # ke ran, and failed on every seed
        f.write_text(json.dumps({**json.loads(f.read_text()), "status": "failed"}))
    t1 = claims_of(tmp_path)[1].tests
    assert [t.ref for t in t1] == ["baseline", "other reinit methods", "baseline"]
    assert t1[1].note == "no other reinit method in the study (e.g. methods = [..., \"fc\", \"ke\", \"llf\"])"


def test_verdict_table_ends_the_report(tmp_path):
    base = [0.70, 0.71, 0.72]
    accs = {}
    for c, g in {S500: [0.04, 0.05, 0.06], S2000: [0.01, 0.01, 0.02]}.items():
        accs.update({(c, "baseline"): base, (c, "lw"): [b + x for b, x in zip(base, g, strict=True)]})
    root = build(tmp_path, accs)
    rep = make_report(root)
    md = (root / "summary.md").read_text()
    tail = md[md.index("## Verdict on the paper's claims"):]
    assert "\n## " not in tail  # the last section
    # two combinations 3.7 points apart: over combinations the gain is not established (the pooled pairs said it was)
    assert "**Claim 1: not supported." in tail
    assert "**Claim 2: supported where testable (1 of 2 tests" in tail  # no size >= 35K here
    assert "same test vs long" not in tail  # no long runs: no compute-matched column
    # lw - baseline: 0.04, 0.05, 0.06 at 500 and 0.01, 0.01, 0.02 at 2000, combined over the two
    c = combine([[0.04, 0.05, 0.06], [0.01, 0.01, 0.02]])
    row = next(line for line in tail.splitlines() if line.startswith("| 1 | test accuracy (no label noise"))
    assert f"| baseline | {100 * c.mean:+.2f} [{100 * c.lo:+.2f}, {100 * c.hi:+.2f}] (6 pairs, 2 comb.) |" in row
    assert "random effects (Paule-Mandel) over 2 comb." in row and row.endswith("| not supported |")
    assert c.lo < 0 < paired_diff([0.04, 0.05, 0.06, 0.01, 0.01, 0.02], [0.0] * 6).lo
    shrink = next(line for line in tail.splitlines() if line.startswith("| 2 | gain over baseline"))
    assert "| paired t over 3 seeds (1 comb.) |" in shrink
    sign = next(line for line in tail.splitlines() if line.startswith("| 1 | LW ahead in most combinations"))
    assert "ahead in 2 of 2 comb. (0 behind, 0 tied)" in sign and "exact sign test, Holm over 1" in sign
    assert rep.claims[0].verdict == NOT_SUPPORTED and rep.claims[1].verdict.startswith("supported where testable")


def test_claims_preset_has_every_axis_the_verdict_needs():
    defn = load_definition("claims")
    runs, budgets = expand(defn)
    sizes = {r.axes["train_size"] for r in runs}
    noise = {r.axes["label_noise"] for r in runs}
    methods = {r.axes["method"] for r in runs}
    assert len(sizes) >= 2 and 0.0 in noise and any(p > 0 for p in noise)  # claim 2; claim 5's memorization
    assert {"baseline", "long", "lw"} <= methods and len(methods - {"baseline", "long", "lw"}) >= 2  # claim 1
    assert set(defn.analyses) == {"margins", "norms", "bound", "flatness", "memorization", "probes"}  # claims 3-5
    assert len(defn.seeds) >= 3  # a paired interval per combination needs >= 2 seeds; power needs more
    assert budgets["cnn"].reinit_epochs == budgets["cnn"].to_dict()["long_epochs"]  # long is compute-matched
    # any dataset via --set: the axes stay, the dataset changes
    other = load_definition("claims", ['datasets=["mnist"]', 'archs=["resnet18"]'])
    assert other.datasets == ["mnist"] and other.analyses == defn.analyses and other.label_noise == defn.label_noise



def test_runs_trained_in_stages_are_left_out_of_the_verdict(tmp_path):
    """The claims are about the paper's protocol: once the same runs say they were trained in stages
    (a warm start), the report has no verdict on them."""
    accs = {(c, m): [0.80 + 0.01 * seed + (0.05 if m == "lw" else 0.0) for seed in range(4)]
            for c in (S500, S2000) for m in ("baseline", "lw")}
    root = build(tmp_path, accs)
    make_report(root)
    assert "## Verdict on the paper's claims" in (root / "summary.md").read_text()
    for f in (root / "runs").rglob("config.json"):
        f.write_text(json.dumps({**json.loads(f.read_text()), "protocol": "warm_start", "rounds": 1}))
    make_report(root)
    assert "## Verdict on the paper's claims" not in (root / "summary.md").read_text()


def test_the_verdict_table_renders_every_kind_of_row():
    """Every cell of the verdict table, written out, for each kind of row: a random-effects effect with
    its compute-matched context, a paired t inside one combination, a t over combination means, one
    pair, no pair, a sign test with Holm, a context row, and values read from the diagnostics."""

    margin = Metric("q50", "median margin", "higher")
    re = Combined(0.0123, -0.0045, 0.0291, 12, 0.1523, 4, RANDOM_EFFECTS, tau2=0.0004, q=7.25)
    vs_long = ClaimTest(1, "test accuracy (no label noise)", "long", HIGHER, TEST_ACC,
                   diff=Combined(-0.02, -0.03, -0.01, 12, 0.00043, 4, RANDOM_EFFECTS, tau2=0.0, q=1.0),
                   verdict=NOT_SUPPORTED, note="lower")
    rows_in = [
        ClaimTest(1, "test accuracy (no label noise)", "baseline", HIGHER, TEST_ACC, diff=re, verdict=NOT_SUPPORTED,
             context=vs_long),
        ClaimTest(1, "LW ahead in most combinations", "fc", HIGHER, TEST_ACC, combos=7,
             sign=SignTest(5, 1, 1, 0.21875), p_holm=0.4375, family=2, verdict=NOT_SUPPORTED, note="LW ahead in 5 of 7"),
        ClaimTest(2, "gain over baseline, 2000 vs 500", "baseline", LOWER, TEST_ACC,
             diff=Combined(-0.0262, -0.0387, -0.0138, 3, 0.0071, 1, PAIRED_T), verdict=SUPPORTED,
             context=ClaimTest(2, "gain over long", "long", LOWER, TEST_ACC, verdict=NOT_TESTABLE)),
        ClaimTest(3, "median margin", "baseline", HIGHER, margin,
             diff=Combined(2.4712, 1.4403, 3.4921, 6, 0.00002, 2, MEANS_T), verdict=SUPPORTED,
             sources={DIAGNOSTICS}),
        ClaimTest(3, "context: margin", "baseline", HIGHER, margin,
             diff=Combined(0.5, math.nan, math.nan, 1, math.nan, 1, PAIRED_T), required=False,
             verdict=NOT_TESTABLE, note="one pair", sources={DIAGNOSTICS, "analysis"}),
        ClaimTest(4, "flatness", "baseline", LOWER, margin),
        ClaimTest(4, "sharpness", "baseline", LOWER, margin, diff=Combined(-0.5, -0.9, -0.1, 2, 0.03, 1, PAIRED_T),
             verdict=SUPPORTED),
    ]
    claims = [Claim(1, "one", rows_in[:2], NOT_SUPPORTED, regime="fixed budget"), Claim(2, "two", rows_in[2:3], SUPPORTED),
              Claim(3, "three", rows_in[3:5], SUPPORTED), Claim(4, "four", rows_in[5:], NOT_TESTABLE)]
    part = verdict_part(claims)
    assert part.title == "Verdict on the paper's claims"
    assert part.lines == ["**Claim 1: not supported.** one (Regime: fixed budget.)", "**Claim 2: supported.** two",
                          "**Claim 3: supported.** three", f"**Claim 4: {NOT_TESTABLE}.** four"]
    (title, expl, header, rows), = part.tables
    assert (title, expl) == ("Tests", "")
    assert header == ["claim", "test (scope)", "LW vs", "effect LW − ref [95% CI] (n)", "p", "statistical test", "verdict",
                      "same test vs long (compute-matched): effect [95% CI], p, verdict"]
    assert rows == [
        ["1", "test accuracy (no label noise)", "baseline", "+1.23 [-0.45, +2.91] (12 pairs, 4 comb.)", "0.152",
         "random effects (Paule-Mandel) over 4 comb.: between-comb. SD 2.00, Q 7.25 on 3 df", "not supported",
         "-2.00 [-3.00, -1.00] (12 pairs, 4 comb.), p 0.00043, not supported: lower"],
        ["1", "LW ahead in most combinations", "fc", "ahead in 5 of 7 comb. (1 behind, 1 tied)", "0.219 (Holm 0.438)",
         "exact sign test, Holm over 2", "not supported: LW ahead in 5 of 7", ""],
        ["2", "gain over baseline, 2000 vs 500", "baseline", "-2.62 [-3.87, -1.38] (3 pairs, 1 comb.)", "0.007",
         "paired t over 3 seeds (1 comb.)", "supported", f"—, p n/a, {NOT_TESTABLE}"],
        ["3", "median margin †", "baseline", "+2.47 [+1.44, +3.49] (6 pairs, 2 comb.)", "2e-05",
         "t over 2 combination means", "supported", ""],
        ["3", "context: margin ‡", "baseline", "+0.5 (1 pair)", "n/a", "—", f"({NOT_TESTABLE}): one pair", ""],
        ["4", "flatness", "baseline", "—", "n/a", "—", NOT_TESTABLE, ""],
        ["4", "sharpness", "baseline", "-0.5 [-0.9, -0.1] (2 pairs, 1 comb.)", "0.030", "paired t over 2 seeds (1 comb.)",
         "supported", ""],
    ]
    # the rules a reader needs to read the table, stated once above it
    assert part.intro == (
        "The claims are those of the specification's section \"The paper's claims\" (docs/SPEC.md). Each effect is "
        "LW − reference over the combinations in its scope (in the measure's unit, accuracies in points; n = seed "
        "pairs, comb. = combinations): seeds are paired within a combination, and the combinations are combined by "
        "a random-effects estimate (each combination's mean difference weighted by 1 / (its variance + the "
        "Paule-Mandel between-combination variance)) with a 95% normal interval and p; one combination alone gives "
        "the paired t-interval of its seeds. The column 'statistical test' names the test of every row. Claim 1's "
        "'in most combinations' is the exact two-sided sign test over the combination means, Holm-corrected over "
        "the compared methods. A claim is supported when all its tests are; rows in parentheses are context and do "
        "not enter the verdict, nor does the comparison with long. † from the final-round diagnostics (no "
        "analysis.json), ‡ partly so. The regime says which runs a verdict reads: a study's fixed budget; over "
        "budgets (a seed's differences averaged over the budgets before pairing, so a baseline that ignores R "
        "counts once); tuned (per method and seed the run picked by validation accuracy).")
    without_long = verdict_part(claims, has_long=False)
    assert len(without_long.tables[0][2]) == 7 and all(len(r) == 7 for r in without_long.tables[0][3])


def test_every_test_of_every_claim_on_a_study_with_all_it_needs(tmp_path):
    """The whole verdict, test by test, on three combinations (500 and 2000 clean, 500 noisy) with
    baseline, long, lw and fc and every analysis: each test's description, reference, direction,
    verdict, note and counts, and the compute-matched context beside each baseline test."""
    nums = _mechanism_numbers([0.1, -0.1, 0.05])
    accs, numbers = {}, {}
    for c, shift in ((S500, 0.0), (S2000, 0.05), (NOISY, 0.1)):
        accs.update({(c, "baseline"): [0.7 + shift] * 3, (c, "lw"): [0.71 + shift, 0.72 + shift, 0.74 + shift],
                     (c, "long"): [0.72 + shift, 0.70 + shift, 0.75 + shift],
                     (c, "fc"): [0.69 + shift, 0.715 + shift, 0.72 + shift]})
        numbers.update({(c, m): nums["lw" if m == "lw" else "baseline"] for m in ("baseline", "lw", "long", "fc")})
    claims = evaluate(collect(build(tmp_path, accs, numbers)))
    small, clean, noisy = "no label noise, train size < 35,000", "no label noise", "label noise > 0"
    sign = ("LW ahead in most combinations: exact sign test over the combination means, Holm over the 2 compared "
            f"methods ({small})")
    cannot = "LW ahead in 2 of 2; with 2 combinations the sign test cannot reach p <= 0.05 after Holm over 2 (at best 1)"
    big = "needs training sizes >= 35,000 (e.g. the sizes preset on fashion-mnist, or train_sizes = [\"full\"] on a large dataset)"
    gain = "gain over {} at the largest training size minus at the smallest (2000 vs 500; no label noise)"
    expected = {
        1: ("supported where testable (2 of 4 tests; the rest not testable with this study)", [
            (f"test accuracy ({small})", "baseline", HIGHER, True, SUPPORTED, "", 2, 2, ("long", NOT_SUPPORTED)),
            (f"test accuracy ({small})", "fc", HIGHER, True, SUPPORTED, "", 2, 2, None),
            (sign, "baseline", HIGHER, True, NOT_TESTABLE, cannot, 2, 2, None),
            (sign, "fc", HIGHER, True, NOT_TESTABLE, cannot, 2, 2, None)]),
        2: (NOT_SUPPORTED, [
            (gain.format("baseline"), "baseline", LOWER, True, NOT_SUPPORTED, "", 1, 0, ("long", NOT_SUPPORTED)),
            ("no gain on large training sets: test accuracy (no label noise, train size >= 35,000)", "baseline",
             NOT_HIGHER, True, NOT_TESTABLE, big, 0, 0, ("long", NOT_TESTABLE))]),
        3: (SUPPORTED, [
            (f"median training margin ({clean})", "baseline", HIGHER, True, SUPPORTED, "", 2, 2, ("long", SUPPORTED)),
            (f"Frobenius norm of all parameters ({clean})", "baseline", NOT_HIGHER, True, SUPPORTED, "", 2, 2,
             ("long", SUPPORTED)),
            (f"log10 spectral complexity R ({clean})", "baseline", NOT_HIGHER, True, SUPPORTED, "", 2, 0,
             ("long", SUPPORTED)),
            (f"median normalized margin (margin / R) ({clean})", "baseline", HIGHER, True, SUPPORTED, "", 2, 2,
             ("long", SUPPORTED))]),
        4: (NOT_SUPPORTED, [
            (f"training-loss increase at sigma 0.05 ({clean})", "baseline", LOWER, True, SUPPORTED, "", 2, 0,
             ("long", SUPPORTED)),
            (f"training-loss increase at sigma 0.1 ({clean})", "baseline", LOWER, True, NOT_SUPPORTED, "", 2, 0,
             ("long", NOT_SUPPORTED)),
            (f"context: top Hessian eigenvalue ({clean})", "baseline", LOWER, False, SUPPORTED, "", 2, 0,
             ("long", SUPPORTED))]),
        5: (SUPPORTED, [
            (f"memorized fraction of the noisy examples ({noisy})", "baseline", LOWER, True, SUPPORTED, "", 1, 0,
             ("long", SUPPORTED)),
            ("linear-probe accuracy of the lower groups' features (stem, block1) (all combinations)", "baseline", HIGHER,
             True, SUPPORTED, "", 3, 3, ("long", SUPPORTED)),
            (f"context: true-label accuracy of the noisy examples ({noisy})", "baseline", HIGHER, False, NOT_SUPPORTED,
             "", 1, 0, ("long", NOT_SUPPORTED))]),
    }
    assert [c.number for c in claims] == [1, 2, 3, 4, 5]
    for c in claims:
        verdict, tests = expected[c.number]
        assert (c.verdict, c.regime) == (verdict, "fixed budget R=3, E=2"), c.number
        got = [(t.text, t.ref, t.direction, t.required, t.verdict, t.note, t.combos, t.positive,
                t.context and (t.context.ref, t.context.verdict)) for t in c.tests]
        assert got == tests, c.number
        for t in c.tests:
            assert t.regime == c.regime
            if t.context is not None:  # the same test, against long, never entering the verdict
                assert (t.context.text.replace("long", "baseline"), t.context.required) == (t.text, False)
                assert (t.context.claim, t.context.direction, t.context.context) == (t.claim, t.direction, None)
    # the 2000 - 500 gain: lw - baseline is 0.01, 0.02, 0.04 at both sizes, so exactly 0 on every seed
    shrink = claims[1].tests[0]
    assert shrink.diff.mean == pytest.approx(0.0, abs=1e-12) and shrink.diff.n == 3


def test_claim2_pairs_only_what_it_can_and_skips_the_rest(tmp_path):
    """The shrink test over combinations that cannot all be paired, each sorted before the one that
    can: a baseline-only combination, a dataset with one size, one whose two sizes share no seed, one
    where lw has a seed the baseline lacks, and label noise at two sizes (out of scope)."""
    rows = {("a1", 500): {"baseline": [0.7, 0.7]},
            ("a2", 500): {"baseline": [0.7, 0.7], "lw": [0.8, 0.8]},
            ("a3", 500): {"baseline": [0.7, 0.7], "lw": [0.8, 0.8]},
            ("a4", 500): {"baseline": [0.70, 0.71], "lw": [0.74, 0.76, 0.9]},
            ("a4", 2000): {"baseline": [0.70, 0.71], "lw": [0.72, 0.72, 0.9]},
            ("toy", 500): {"baseline": [0.70, 0.71, 0.72], "lw": [0.75, 0.76, 0.79]},
            ("toy", 2000): {"baseline": [0.70, 0.71, 0.72], "lw": [0.71, 0.73, 0.73]}}
    for (d, n), by in rows.items():
        for m, accs in by.items():
            for s, a in enumerate(accs):
                write_run(tmp_path, Combo(d, "cnn", n, 0.0), m, s, a)
    for m, accs in {"baseline": [0.5, 0.5, 0.5], "lw": [0.9, 0.6, 0.9]}.items():
        for s, a in enumerate(accs):
            write_run(tmp_path, Combo("a3", "cnn", 2000, 0.0), m, s + 2, a)  # seeds 2, 3, 4: none shared with 500
            for n in (500, 2000):  # noisy: large swings that would dominate if they were paired
                write_run(tmp_path, Combo("toy", "cnn", n, 0.2), m, s, a if n == 500 else 1 - a)
    for n, gain in ((1000, 0.05), (4000, 0.07)):  # a5: the gain grows from 1,000 to 4,000 examples
        for s in range(2):
            write_run(tmp_path, Combo("a5", "cnn", n, 0.0), "baseline", s, 0.7)
            write_run(tmp_path, Combo("a5", "cnn", n, 0.0), "lw", s, 0.7 + gain)
    write_study(tmp_path, "claims-test", ["baseline", "lw"])
    claims = claims_of(tmp_path)
    shrink = claims[2].tests[0]
    # a4: (0.72 - 0.70) - (0.74 - 0.70) = -0.02, (0.72 - 0.71) - (0.76 - 0.71) = -0.04;
    # a5: +0.02 twice; toy: -0.04, -0.03, -0.06
    expected = combine([[-0.02, -0.04], [0.02, 0.02], [-0.04, -0.03, -0.06]])
    assert (shrink.combos, shrink.diff.n, shrink.positive) == (3, 7, 1)
    assert (shrink.diff.mean, shrink.diff.lo, shrink.diff.hi) == pytest.approx((expected.mean, expected.lo, expected.hi))
    assert shrink.text == ("gain over baseline at the largest training size minus at the smallest (2000 vs 500, "
                           "4000 vs 1000; no label noise)")
    # claim 1 skips the baseline-only combination and reads the 9 others, seeds in common only
    t1 = claims[1].tests[0]
    assert (t1.combos, t1.diff.n) == (9, 2 + 2 + 3 + 2 + 2 + 2 + 2 + 3 + 3)
    assert shrink.sources == {"result.json"} and shrink.direction == LOWER


@pytest.mark.parametrize("methods, note", [
    (("baseline",), "no finished lw runs"),
    (("lw",), "no finished baseline runs (add 'baseline' to methods)"),
    (("baseline", "lw"), "needs at least 2 training sizes with lw and baseline on common seeds (found [500, 2000]; "
                         "e.g. train_sizes = [500, 2000])"),
])
def test_claim2_says_what_is_missing(tmp_path, methods, note):
    """Two clean sizes but lw and baseline on different seeds at the second (so nothing pairs there),
    and a noisy size that must not be counted among the sizes found."""
    for m in methods:
        for s in range(2):
            write_run(tmp_path, S500, m, s, 0.7)
            write_run(tmp_path, S2000, m, s + (2 if m == "lw" else 0), 0.7)
            write_run(tmp_path, Combo("toy", "cnn", 700, 0.2), m, s, 0.7)
    write_study(tmp_path, "claims-test", list(methods))
    shrink = claims_of(tmp_path)[2].tests[0]
    assert (shrink.verdict, shrink.note, shrink.combos, shrink.positive) == (NOT_TESTABLE, note, 0, 0)
    assert shrink.diff is None and shrink.sources == set() and "(sizes; no label noise)" in shrink.text


def test_claim1_with_no_seed_in_common_and_no_lw(tmp_path):
    for s in range(2):
        write_run(tmp_path, S500, "baseline", s, 0.7)
        write_run(tmp_path, S500, "lw", s + 2, 0.8)
    write_study(tmp_path, "claims-test", ["baseline", "lw"])
    t1 = claims_of(tmp_path)[1].tests[0]
    assert (t1.verdict, t1.note, t1.diff, t1.combos, t1.positive) == (
        NOT_TESTABLE, "no seed on which both lw and baseline finished", None, 0, 0)
    margin = claims_of(tmp_path)[3].tests[0]
    assert margin.note == "needs the margins analysis on lw and baseline runs (analyses = [..., \"margins\"])"


def test_a_metric_without_a_better_direction_needs_one():
    with pytest.raises(ValueError, match=r"^q: declares no better direction; pass one of 'higher', 'lower', 'not higher'$"):
        pooled_test(Collected(root=None, runs=[], study=None, methods=[]), {}, 3, "x", Metric("q", "q"), "baseline", None, CLEAN)


def test_rows_read_partly_from_the_diagnostics_say_so(tmp_path):
    """The why study: combination A has analysis.json, B only the final-round diagnostics; a margin
    test over both reads both sources (‡), the memorization test only analysis.json."""

    claims = claims_of(make_why_study(tmp_path))
    margin = claims[3].tests[0]
    assert margin.sources == {ANALYSIS, DIAGNOSTICS} and margin.combos == 2
    assert claims[5].tests[0].sources == {ANALYSIS}
    assert claims[1].tests[0].sources == {"result.json"}


def test_over_budgets_the_context_and_the_shrink_test_average_per_seed_too(tmp_path):
    """Two budgets (R = 1, 2) at two sizes: the compute-matched context and the shrink test read the
    same regime as the main test, each seed's difference averaged over the budgets."""
    gain = {(500, 1): [0.02, 0.04, 0.03], (500, 2): [0.06, 0.08, 0.10],
            (2000, 1): [0.00, 0.01, 0.01], (2000, 2): [0.02, 0.02, 0.04]}
    for (n, R), gs in gain.items():
        for s, g in enumerate(gs):
            base = 0.6 + 0.01 * s
            rg.write_run(tmp_path, "baseline", s, base, size=n, axes={"rounds": R})
            rg.write_run(tmp_path, "long", s, base + 0.01 * R, size=n, axes={"rounds": R})
            rg.write_run(tmp_path, "lw", s, base + g, size=n, axes={"rounds": R})
    rg.write_study(tmp_path, ["baseline", "long", "lw"], {"rounds": [1, 2]})
    claims = claims_of(tmp_path)
    t1, shrink = claims[1].tests[0], claims[2].tests[0]
    per_seed = {n: [(a + b) / 2 for a, b in zip(gain[(n, 1)], gain[(n, 2)], strict=True)] for n in (500, 2000)}
    main = combine([per_seed[500], per_seed[2000]])
    assert (t1.diff.mean, t1.diff.lo, t1.diff.hi) == pytest.approx((main.mean, main.lo, main.hi))
    # long is 1 point above baseline at R=1, 2 at R=2: 1.5 on average
    ctx = combine([[g - 0.015 for g in per_seed[500]], [g - 0.015 for g in per_seed[2000]]])
    assert (t1.context.diff.mean, t1.context.diff.lo) == pytest.approx((ctx.mean, ctx.lo))
    assert t1.context.regime == t1.regime == "over budgets R=1, R=2, E=2 (averaged per seed)"
    expected = paired_diff(per_seed[2000], per_seed[500])
    assert shrink.diff.n == 3 and (shrink.diff.mean, shrink.diff.lo) == pytest.approx((expected.mean, expected.lo))
    ctx2 = shrink.context
    assert ctx2.regime == shrink.regime and ctx2.diff.mean == pytest.approx(expected.mean)


def _effect(ref, means, note=""):
    """An effect test as pooled_test leaves it: one combination mean per entry of `means`."""
    groups = [[m - 0.01, m + 0.01] for m in means]
    diff = combine(groups) if groups else None
    return ClaimTest(1, "test accuracy", ref, HIGHER, TEST_ACC, diff=diff, combos=len(groups),
                positive=sum(m > 0 for m in means), note=note, sources={"result.json"}, regime="fixed budget R=1, E=2")


def test_most_combinations_on_effects_made_by_hand():
    # one compared method, six combinations all ahead: p = 2 / 64, alone in its family
    (t,) = most_combinations([_effect("baseline", [0.01, 0.02, 0.03, 0.04, 0.05, 0.06])])
    assert t.text == ("LW ahead in most combinations: exact sign test over the combination means, Holm over the 1 "
                      "compared method (no label noise, train size < 35,000)")
    assert (t.verdict, t.note, t.family, t.p_holm) == (SUPPORTED, "", 1, pytest.approx(2 / 64))
    assert (t.ref, t.direction, t.combos, t.positive, t.sources, t.regime, t.metric.key) == (
        "baseline", HIGHER, 6, 6, {"result.json"}, "fixed budget R=1, E=2", "test_acc")
    # a method without pairs first: it keeps its own note, and the others are still tested
    none, fc = most_combinations([_effect("ke", [], note="no seed on which both lw and ke finished"),
                                  _effect("fc", [-0.01, -0.02, -0.03, -0.01, -0.02, -0.04, -0.05])])
    assert (none.verdict, none.note, none.sign) == (NOT_TESTABLE, "no seed on which both lw and ke finished", None)
    assert (fc.verdict, fc.note, fc.family) == (NOT_SUPPORTED, "LW ahead in 0 of 7", 1)  # behind everywhere
    # three methods over two combinations: at best 3 x 0.5, capped at 1; one combination alone
    three = most_combinations([_effect(m, [0.01, 0.02]) for m in ("fc", "ke", "llf")])
    assert three[0].note == ("LW ahead in 2 of 2; with 2 combinations the sign test cannot reach p <= 0.05 after "
                             "Holm over 3 (at best 1)")
    (one,) = most_combinations([_effect("fc", [0.01])])
    assert one.note == ("LW ahead in 1 of 1; with 1 combination the sign test cannot reach p <= 0.05 after Holm "
                        "over 1 (at best 1)")


@pytest.mark.parametrize("groups, lower", [
    (["stem", "block1", "block2", "block3", "head"], ["stem", "block1"]),
    (["stem", "block1", "block2", "head"], ["stem", "block1"]),
    (["stem", "block1", "head"], ["stem"]),
    (["stem", "head"], ["stem"]),
    (["head"], []),
])
def test_the_lower_groups_are_the_lower_half_below_the_head_rounded_up(groups, lower):
    assert lower_groups(groups) == lower


def test_the_lower_probe_metric_averages_finite_numbers_only():
    m = lower_probe_metric(["stem", "block1", "block2", "head"])
    assert (m.key, m.label, m.better, m.percent, m.topic) == (
        "probes.linear_acc.lower", "linear-probe accuracy, mean over the lower groups (stem, block1) (%)", "higher",
        True, None)
    assert lower_probe_metric([]).label == "linear-probe accuracy, mean over the lower groups (none) (%)"
    own = {f"probes.linear_acc.{g}": v for g, v in zip(("stem", "block1", "block2", "head"), (0.5, 0.7, 0.9, 1.0),
                                                         strict=True)}
    assert m.compute(own) == pytest.approx(0.6)
    for bad in (math.nan, math.inf, True, "0.5", None):
        assert m.compute({**own, "probes.linear_acc.block1": bad}) is None, bad
    assert m.compute({"margins.q50": 1.0}) is None  # no probe numbers at all


def test_a_size_the_config_does_not_state_is_in_no_size_scope(tmp_path):
    """train_size "full" (a run whose config does not say how many examples it trained on) is neither
    small nor large: claim 1 reads the 500-example combination only, claim 2's large-set test nothing."""
    for s in range(3):
        for m, a in (("baseline", 0.70), ("lw", 0.72 + 0.01 * s)):
            write_run(tmp_path, S500, m, s, a)
            write_run(tmp_path, Combo("toy", "cnn", "full", 0.0), m, s, a - 0.5)
    for f in (tmp_path / "runs").rglob("config.json"):
        if "nfull" in str(f):
            f.write_text(json.dumps({**json.loads(f.read_text()), "train_size": None}))
    write_study(tmp_path, "claims-test", ["baseline", "lw"])
    claims = claims_of(tmp_path)
    t1 = claims[1].tests[0]
    assert (t1.combos, t1.diff.n, t1.diff.mean) == (1, 3, pytest.approx(0.03))
    assert claims[2].tests[1].combos == 0 and claims[2].tests[1].verdict == NOT_TESTABLE


def test_only_the_baseline_comparison_carries_a_compute_matched_context(tmp_path):
    """pooled_test and shrink_test called directly: against baseline they add the same test against
    long; against any other reference (fc, long itself) they do not, whatever with_long says. A metric
    that declares its better direction gives it when none is passed."""
    accs = {(c, m): [0.7 + 0.01 * s + (0.02 if m == "lw" else 0.0) for s in range(3)]
            for c in (S500, S2000) for m in ("baseline", "long", "lw", "fc")}
    col = collect(build(tmp_path, accs, {(c, m): _mechanism_numbers([0.1, -0.1, 0.05])["lw" if m == "lw" else "baseline"]
                                         for c in (S500, S2000) for m in ("baseline", "long", "lw", "fc")}))
    data = load(col)
    margin = build_catalog().metric("margins.q50")
    for ref in ("fc", "long"):
        assert pooled_test(col, data, 3, "m", margin, ref, None, CLEAN, with_long=True).context is None
        assert shrink_test(col, data, ref, with_long=True).context is None
    t = pooled_test(col, data, 3, "m", margin, "baseline", None, CLEAN)
    assert t.direction == HIGHER and t.context.ref == "long" and t.context.direction == HIGHER
    assert shrink_test(col, data, "baseline").context.ref == "long"


def test_claim2_with_no_clean_size_at_all_says_none_were_found(tmp_path):
    accs = {(NOISY, m): [0.7, 0.71] for m in ("baseline", "lw")}
    shrink = claims_of(build(tmp_path, accs))[2].tests[0]
    assert shrink.note == ("needs at least 2 training sizes with lw and baseline on common seeds (found none; "
                           "e.g. train_sizes = [500, 2000])")
