"""The report's statistics against hand-computed values and scipy's own tests."""
import math

import pytest
from scipy import stats as sps

from reinitlab.report.stats import holm, mean_se, paired_diff, sign_test


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
    assert none.n == 0 and math.isnan(none.mean)


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
    assert math.isnan(d.lo) and math.isnan(d.hi) and not d.excludes_zero


def test_paired_diff_constant_difference():
    d = paired_diff([0.6, 0.7], [0.5, 0.6])
    assert d.lo == pytest.approx(0.1) and d.hi == pytest.approx(0.1) and d.excludes_zero


def test_paired_diff_refuses_unpaired():
    with pytest.raises(ValueError):
        paired_diff([1, 2], [1])


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
    assert holm([0.2]) == pytest.approx([0.2])
    assert holm([]) == []


def test_holm_is_never_below_bonferroni_free_and_monotone():
    ps = [0.001, 0.2, 0.013, 0.04, 0.5, 0.0101]
    adj = holm(ps)
    assert all(a >= p for a, p in zip(adj, ps, strict=True))
    ranked = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adj[ranked[i]] <= adj[ranked[i + 1]] for i in range(len(ps) - 1))
