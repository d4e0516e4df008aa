"""The report's statistics against hand-computed values and independent implementations: scipy's
tests, statsmodels' meta-analysis (random effects) and multiple-testing corrections."""
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from reinitlab.report.stats import (
    MEANS_T,
    PAIRED_T,
    RANDOM_EFFECTS,
    combine,
    holm,
    mean_se,
    min_sign_p,
    paired_diff,
    random_effects,
    sign_over,
    sign_test,
)


def test_mean_se_by_hand():
    s = mean_se([0.80, 0.82, 0.84])
    # mean 0.82; sd = sqrt(((-.02)^2 + 0 + .02^2) / 2) = 0.02; se = 0.02 / sqrt(3)
    assert s.mean == pytest.approx(0.82)
    assert s.se == pytest.approx(0.02 / math.sqrt(3))
    assert s.n == 3


def test_mean_se_small_samples_are_not_zero_width():
    one = mean_se([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.se)
    none = mean_se([])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.se)


def test_paired_diff_matches_scipy_ttest_rel():
    a = [0.81, 0.79, 0.84, 0.80, 0.83]
    b = [0.78, 0.79, 0.80, 0.77, 0.81]
    d = paired_diff(a, b)
    ref = sps.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert d.n == 5
    assert d.mean == pytest.approx(sum(x - y for x, y in zip(a, b, strict=True)) / 5)
    assert d.lo == pytest.approx(ci.low)
    assert d.hi == pytest.approx(ci.high)
    assert d.p == pytest.approx(ref.pvalue)


def test_paired_diff_by_hand_three_seeds():
    # differences 1, 2, 3 points: mean 2, sd 1, se 1/sqrt(3); t(0.975, 2) = 4.302652729...
    d = paired_diff([0.51, 0.52, 0.53], [0.50, 0.50, 0.50])
    t = 4.302652729911275
    assert d.mean == pytest.approx(0.02)
    assert d.lo == pytest.approx(0.02 - t * 0.01 / math.sqrt(3))
    assert d.hi == pytest.approx(0.02 + t * 0.01 / math.sqrt(3))
    assert not d.excludes_zero  # 0.02 - 0.0248 < 0


def test_paired_diff_one_pair_has_no_interval():
    d = paired_diff([0.6], [0.5])
    assert d.n == 1 and d.mean == pytest.approx(0.1)
    assert math.isnan(d.lo) and math.isnan(d.hi) and math.isnan(d.p) and not d.excludes_zero


def test_paired_diff_constant_difference():
    d = paired_diff([0.6, 0.7], [0.5, 0.6])
    assert d.mean == pytest.approx(0.1) and d.lo == pytest.approx(0.1) and d.hi == pytest.approx(0.1)
    assert d.excludes_zero and d.p == 0.0 and d.n == 2  # a difference without spread: certain, not undefined
    same = paired_diff([0.6, 0.7], [0.6, 0.7])
    assert same.mean == 0.0 and same.p == 1.0 and not same.excludes_zero


def test_paired_diff_refuses_unpaired():
    with pytest.raises(ValueError, match="2 vs 1"):
        paired_diff([1, 2], [1])
    with pytest.raises(ValueError, match="1 vs 2"):
        sign_test([1], [1, 2])


def test_sign_test_by_hand():
    # 9 wins, 1 loss: p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    a = [1.0] * 9 + [0.0]
    b = [0.5] * 10
    s = sign_test(a, b)
    assert (s.wins, s.losses, s.ties) == (9, 1, 0)
    assert s.p == pytest.approx(22 / 1024)


def test_sign_test_ties_are_dropped_and_matches_binomtest():
    a = [3, 3, 3, 1, 2, 5, 5]
    b = [2, 2, 3, 2, 2, 4, 1]
    s = sign_test(a, b)
    assert (s.wins, s.losses, s.ties) == (4, 1, 2)
    assert s.p == pytest.approx(sps.binomtest(4, 5).pvalue)
    assert s.p == pytest.approx(2 * (1 + 5) / 32)


def test_sign_test_two_combinations_cannot_be_significant():
    s = sign_test([0.9, 0.9], [0.1, 0.1])
    assert s.p == pytest.approx(0.5)


def test_sign_test_all_ties():
    s = sign_test([1, 2], [1, 2])
    assert s.n == 0 and s.p == 1.0


def test_holm_by_hand():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_order():
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.7, 0.6]) == pytest.approx([1.0, 1.0])  # 2 x 0.6 = 1.2, capped
    assert holm([0.2]) == pytest.approx([0.2])
    assert holm([]) == []


def test_holm_is_never_below_bonferroni_free_and_monotone():
    ps = [0.001, 0.2, 0.013, 0.04, 0.5, 0.0101]
    adj = holm(ps)
    assert all(a >= p for a, p in zip(adj, ps, strict=True))
    ranked = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adj[ranked[i]] <= adj[ranked[i + 1]] for i in range(len(ps) - 1))


# ---- effects over combinations: random effects, checked against statsmodels' meta-analysis ----------------
# seed-paired differences (points) of four combinations: very different means, different spreads
GROUPS = [[10.1, 12.5, 9.0, 11.2], [0.3, -0.4, 0.9, 0.1], [3.0, 4.4, 2.5, 3.9], [-1.2, 0.4, -0.8, -0.1]]


def _within(groups):
    means = [sum(g) / len(g) for g in groups]
    var = [sum((x - m) ** 2 for x in g) / (len(g) - 1) / len(g) for g, m in zip(groups, means, strict=True)]
    return means, var


@pytest.mark.parametrize("method, statsmodels_method", [("pm", "iterated"), ("dl", "chi2")])
def test_random_effects_match_statsmodels_combine_effects(method, statsmodels_method):
    means, var = _within(GROUPS)
    ref = combine_effects(np.array(means), np.array(var), method_re=statsmodels_method)
    mean, se, tau2, q, p = random_effects(means, var, method)
    assert tau2 == pytest.approx(ref.tau2, rel=1e-4) and tau2 > 0
    assert mean == pytest.approx(ref.mean_effect_re, rel=1e-4)
    assert se == pytest.approx(ref.sd_eff_w_re, rel=1e-4)
    assert q == pytest.approx(ref.q, rel=1e-12)
    assert p == pytest.approx(2 * sps.norm.sf(abs(ref.mean_effect_re / ref.sd_eff_w_re)), rel=1e-4)


def test_paule_mandel_solves_its_estimating_equation_where_dersimonian_laird_falls_short():
    # one imprecise combination far off and two precise ones: DL's weights 1/v let the precise ones set tau2
    means, var = [0.1045, -0.00145, -0.00145], [9.2e-7, 9.2e-9, 9.2e-9]
    _, _, tau2_pm, _, _ = random_effects(means, var, "pm")
    _, _, tau2_dl, _, _ = random_effects(means, var, "dl")
    w = [1 / (v + tau2_pm) for v in var]
    mu = sum(wi * y for wi, y in zip(w, means, strict=True)) / sum(w)
    assert sum(wi * (y - mu) ** 2 for wi, y in zip(w, means, strict=True)) == pytest.approx(2.0)  # = k - 1
    assert tau2_pm > 10 * tau2_dl
    assert tau2_pm == pytest.approx(combine_effects(np.array(means), np.array(var)).tau2, rel=1e-4)


def test_combine_gives_the_random_effects_interval_of_statsmodels():
    c = combine(GROUPS)
    means, var = _within(GROUPS)
    ref = combine_effects(np.array(means), np.array(var))  # statsmodels' default: Paule-Mandel
    frame = ref.summary_frame(alpha=0.05)
    assert c.test == RANDOM_EFFECTS and (c.k, c.n) == (4, 16)
    assert c.mean == pytest.approx(frame.loc["random effect", "eff"], rel=1e-4)
    assert (c.lo, c.hi) == (pytest.approx(frame.loc["random effect", "ci_low"], rel=1e-4),
                            pytest.approx(frame.loc["random effect", "ci_upp"], rel=1e-4))
    assert c.tau2 == pytest.approx(ref.tau2, rel=1e-4) and c.q == pytest.approx(ref.q)
    assert c.means == pytest.approx(means)
    # the between-combination spread widens the interval beyond that of the 16 pairs pooled as one sample
    pooled = paired_diff([x for g in GROUPS for x in g], [0.0] * 16)
    assert c.hi - c.lo > 1.3 * (pooled.hi - pooled.lo)


def test_combine_with_no_heterogeneity_is_the_fixed_effect_estimate():
    groups = [[1.0, 1.2, 0.8], [1.1, 0.9, 1.0], [1.05, 0.95, 1.0]]  # equal true effects
    c = combine(groups)
    means, var = _within(groups)
    ref = combine_effects(np.array(means), np.array(var))
    assert ref.q < 2 and c.tau2 == 0.0 and ref.tau2 == 0.0  # Q below k - 1: no between variance
    assert c.mean == pytest.approx(ref.mean_effect_fe) and c.se == pytest.approx(ref.sd_eff_w_fe)
    # DerSimonian-Laird truncates its negative moment estimate at 0 (statsmodels reports it raw)
    assert random_effects(means, var, "dl")[2] == 0.0 > combine_effects(np.array(means), np.array(var),
                                                                        method_re="chi2").tau2


def test_combine_one_combination_is_its_paired_t_test():
    c = combine([[0.04, 0.05, 0.07]])
    ref = sps.ttest_1samp([0.04, 0.05, 0.07], 0.0)
    ci = ref.confidence_interval(0.95)
    assert c.test == PAIRED_T and (c.k, c.n) == (1, 3)
    assert c.mean == pytest.approx(0.16 / 3) and c.se == pytest.approx(mean_se([0.04, 0.05, 0.07]).se)
    assert c.means == pytest.approx((0.16 / 3,))
    assert (c.lo, c.hi, c.p) == (pytest.approx(ci.low), pytest.approx(ci.high), pytest.approx(ref.pvalue))
    ci90 = ref.confidence_interval(0.90)
    c90 = combine([[0.04, 0.05, 0.07]], confidence=0.90)
    assert (c90.lo, c90.hi) == (pytest.approx(ci90.low), pytest.approx(ci90.high))


def test_combine_single_seeds_use_a_t_interval_over_combination_means():
    c = combine([[2.0], [4.0], [3.0, 3.5]])  # one combination with two seeds, two with one
    ref = sps.ttest_1samp([2.0, 4.0, 3.25], 0.0)
    assert c.test == MEANS_T and (c.k, c.n) == (3, 4)
    assert c.mean == pytest.approx(3.0833333333) and c.p == pytest.approx(ref.pvalue)
    assert (c.lo, c.hi) == (pytest.approx(ref.confidence_interval(0.95).low),
                            pytest.approx(ref.confidence_interval(0.95).high))
    assert c.se == pytest.approx(mean_se([2.0, 4.0, 3.25]).se) and c.means == pytest.approx((2.0, 4.0, 3.25))
    c90 = combine([[2.0], [4.0]], confidence=0.90)  # single seeds only
    ci = sps.ttest_1samp([2.0, 4.0], 0.0).confidence_interval(0.90)
    assert c90.test == MEANS_T and (c90.lo, c90.hi) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_combine_two_seeds_per_combination_is_enough_for_random_effects():
    groups = [[1.0, 2.0], [4.0, 6.0], [0.0, 0.5]]
    c = combine(groups)
    means, var = _within(groups)
    ref = combine_effects(np.array(means), np.array(var))
    assert c.test == RANDOM_EFFECTS and c.mean == pytest.approx(ref.mean_effect_re, rel=1e-4)
    assert c.p == pytest.approx(2 * sps.norm.sf(abs(c.mean / c.se))) and 0 < c.p < 1


def test_combine_a_combination_without_spread_takes_the_pooled_within_variance():
    groups = [[1.0, 1.0, 1.0], [2.0, 3.0, 4.0], [0.0, 1.0, 2.0]]
    c = combine(groups)
    pooled = (0 + 2 + 2) / 6  # sums of squares over the within degrees of freedom
    ref = combine_effects(np.array([1.0, 3.0, 1.0]), np.array([pooled / 3, 1 / 3, 1 / 3]))
    assert c.test == RANDOM_EFFECTS and c.mean == pytest.approx(ref.mean_effect_re, rel=1e-4)
    assert c.se == pytest.approx(ref.sd_eff_w_re, rel=1e-4) and c.tau2 == pytest.approx(ref.tau2, rel=1e-4)
    # no spread anywhere: nothing to weight by, so the combination means are the sample
    flat = combine([[1.0, 1.0], [3.0, 3.0]])
    assert flat.test == MEANS_T and flat.mean == pytest.approx(2.0)


def test_combine_of_nothing_says_so_and_bad_variances_are_refused():
    c = combine([[], []])
    assert c.n == 0 and c.k == 0 and c.test == PAIRED_T and not c.excludes_zero
    assert all(math.isnan(x) for x in (c.mean, c.lo, c.hi, c.p))
    for method in ("pm", "dl"):
        with pytest.raises(ValueError, match="^every within-combination variance must be positive$"):
            random_effects([1.0, 2.0], [0.1, 0.0], method)
        with pytest.raises(ValueError, match="differ in length or are empty: 2 vs 1"):
            random_effects([1.0, 2.0], [0.1], method)
        with pytest.raises(ValueError, match="differ in length or are empty: 0 vs 0"):
            random_effects([], [], method)


def test_paule_mandel_by_hand_on_two_combinations():
    # two effects d apart with variance 1 each: the generalized Q is d^2 / (2 (1 + tau2)) = 1 at tau2 = d^2/2 - 1
    for d in (1.8, 3.0):  # Q at tau2 = 0 is 1.62 (just above k - 1) and 4.5
        assert random_effects([0.0, d], [1.0, 1.0], "pm")[2] == pytest.approx(d * d / 2 - 1, rel=1e-9)
    # nearly exact effects: tau2 close to the spread of the effects themselves
    assert random_effects([0.0, 1.0], [1e-6, 1e-6], "pm")[2] == pytest.approx(0.5 - 1e-6, rel=1e-9)


def test_paule_mandel_is_exact_at_any_scale():
    # accuracies as fractions make tau2 small; its estimating equation must still hold tightly
    for scale in (1.0, 1e-4, 1e-7):
        means = [scale * m for m in (3.0, -1.0, 0.5, 2.0)]
        var = [scale * scale * v for v in (0.5, 0.2, 1.0, 0.1)]
        tau2 = random_effects(means, var, "pm")[2]
        w = [1 / (v + tau2) for v in var]
        mu = sum(wi * y for wi, y in zip(w, means, strict=True)) / sum(w)
        assert sum(wi * (y - mu) ** 2 for wi, y in zip(w, means, strict=True)) == pytest.approx(3.0, rel=1e-9)


def test_one_combination_or_large_variances_between_variance_by_hand():
    # one combination: no between-combination variance to estimate (S1 - S2 / S1 = 0)
    for method in ("pm", "dl"):
        assert random_effects([2.5], [0.3], method)[2] == 0.0
    # weights below 1 (variances of 10): DL's tau2 = (Q - 1) / (S1 - S2 / S1) by hand
    means, var = [0.0, 20.0], [10.0, 10.0]
    q = 0.1 * 10 ** 2 * 2  # w (y - 10)^2 summed
    assert random_effects(means, var, "dl")[2] == pytest.approx((q - 1) / (0.2 - 0.02 / 0.2))
    assert random_effects(means, var, "dl")[2] == pytest.approx(190.0)


def test_sign_over_combination_means_matches_binomtest():
    s = sign_over([1.0, 2.0, -0.5, 3.0, 0.0, 4.0, 0.2, 0.1, 5.0, -1.0, 2.0, 0.3])
    assert (s.wins, s.losses, s.ties) == (9, 2, 1)
    assert s.p == pytest.approx(sps.binomtest(9, 11, 0.5).pvalue)
    assert min_sign_p(6) == pytest.approx(sps.binomtest(6, 6, 0.5).pvalue)
    assert min_sign_p(0) == 1.0 and min_sign_p(1) == 1.0


def test_holm_matches_statsmodels_multipletests():
    ps = [0.01, 0.04, 0.03, 0.005, 0.2, 0.0101]
    assert holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))


def test_paired_vs_pairs_only_the_seeds_both_methods_have():
    from reinitlab.report.stats import paired_vs
    by = {"lw": {0: 0.80, 1: 0.83, 2: 0.81}, "baseline": {0: 0.70, 1: 0.72}, "fc": {5: 0.9}}
    row = paired_vs(by, "baseline", ["baseline", "lw", "fc", "ke"])
    assert set(row) == {"lw"}  # fc shares no seed, ke has no runs, baseline is the reference
    assert row["lw"].n == 2 and row["lw"].mean == pytest.approx(0.105)
