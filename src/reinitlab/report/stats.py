"""The statistics of SPEC, Statistics: mean and standard error per cell, paired differences over seeds with a
t-interval, the exact two-sided sign test across combinations, Holm's step-down correction, and a
random-effects estimate over combinations (Paule-Mandel, or DerSimonian-Laird) for effects that
span several.

Small n is the rule here (3 seeds), so every function says what it can and cannot tell: an interval
from one pair is undefined (NaN), not zero-width; a sign test over no untied pair has p = 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from scipy import optimize
from scipy import stats as sps


@dataclass(frozen=True)
class MeanSE:
    mean: float
    se: float  # sample sd (n-1) / sqrt(n); NaN for n < 2
    n: int


def mean_se(values: Sequence[float]) -> MeanSE:
    n = len(values)
    if n == 0:
        return MeanSE(math.nan, math.nan, 0)
    m = math.fsum(values) / n
    if n < 2:
        return MeanSE(m, math.nan, 1)
    var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return MeanSE(m, math.sqrt(var / n), n)


@dataclass(frozen=True)
class PairedDiff:
    mean: float  # mean of a - b over the pairs
    lo: float  # confidence interval of the mean difference (Student t, n-1 dof)
    hi: float
    n: int
    p: float  # two-sided paired t-test p-value (NaN if undefined)

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.lo > 0 or self.hi < 0)


def paired_vs(by_method: Mapping[str, Mapping[int, float]], ref: str, methods: Iterable[str]) -> dict[str, PairedDiff]:
    """`paired_diff` of every method in `methods` (other than `ref`) against `ref`, over the seeds
    both have; `by_method` maps method -> seed -> value. Methods sharing no seed with `ref` are left out."""
    row = {}
    for m in methods:
        if m == ref or m not in by_method:
            continue
        common = sorted(set(by_method[m]) & set(by_method[ref]))
        if common:
            row[m] = paired_diff([by_method[m][s] for s in common], [by_method[ref][s] for s in common])
    return row


def paired_diff(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDiff:
    """a[i] and b[i] belong to the same seed (same data, same init stream)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    d = [x - y for x, y in zip(a, b, strict=True)]
    ms = mean_se(d)
    if ms.n < 2:
        return PairedDiff(ms.mean, math.nan, math.nan, ms.n, math.nan)
    if ms.se == 0.0:  # every pair differs by the same amount: no spread to build an interval from
        p = 1.0 if ms.mean == 0.0 else 0.0
        return PairedDiff(ms.mean, ms.mean, ms.mean, ms.n, p)
    t = sps.t.ppf(0.5 + confidence / 2, ms.n - 1)
    p = 2 * sps.t.sf(abs(ms.mean / ms.se), ms.n - 1)
    return PairedDiff(ms.mean, ms.mean - t * ms.se, ms.mean + t * ms.se, ms.n, float(p))


@dataclass(frozen=True)
class SignTest:
    wins: int  # combinations where the first method is better
    losses: int
    ties: int  # left out of the test, as the sign test prescribes
    p: float  # exact two-sided binomial p-value, P(X <= min) doubled, capped at 1

    @property
    def n(self) -> int:
        return self.wins + self.losses


def sign_test(a: Sequence[float], b: Sequence[float]) -> SignTest:
    """Exact two-sided sign test of paired values (one pair per combination)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    wins = sum(x > y for x, y in zip(a, b, strict=True))
    losses = sum(x < y for x, y in zip(a, b, strict=True))
    ties = len(a) - wins - losses
    n = wins + losses
    p = 1.0 if n == 0 else float(sps.binomtest(wins, n, 0.5, alternative="two-sided").pvalue)
    return SignTest(wins, losses, ties, p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: sort ascending, multiply the i-th
    smallest (0-based) by m - i, then enforce monotonicity with a running maximum, cap at 1.
    Rejecting where adjusted p <= alpha controls the family-wise error rate at alpha."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Combined:
    """A mean paired difference over several combinations that respects the grouping: seeds are
    paired within a combination, combinations are draws from a population of settings.

    `test` names what computed the interval: "random effects (Paule-Mandel)" over k >= 2
    combinations; "paired t" inside one combination; "t over combination means" where some
    combination has a single seed (no within-combination variance) or none has any spread."""
    mean: float
    lo: float
    hi: float
    n: int  # pairs in all
    p: float  # two-sided; NaN where undefined
    k: int  # combinations
    test: str
    se: float = math.nan
    tau2: float = math.nan  # between-combination variance (random effects only)
    q: float = math.nan  # Cochran's Q on k - 1 degrees of freedom (random effects only)
    means: tuple[float, ...] = ()  # per combination: its mean paired difference

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.lo > 0 or self.hi < 0)


RANDOM_EFFECTS, PAIRED_T, MEANS_T = "random effects (Paule-Mandel)", "paired t", "t over combination means"


def _check(effects: Sequence[float], variances: Sequence[float]) -> None:
    if len(effects) != len(variances) or not effects:
        raise ValueError(f"effects and variances differ in length or are empty: {len(effects)} vs {len(variances)}")
    if any(not v > 0 for v in variances):
        raise ValueError("every within-combination variance must be positive")


def cochran_q(effects: Sequence[float], variances: Sequence[float]) -> float:
    """Cochran's Q: the inverse-variance weighted squares around the fixed-effect mean (k - 1 dof)."""
    w = [1.0 / v for v in variances]
    fixed = math.fsum(wi * y for wi, y in zip(w, effects, strict=True)) / math.fsum(w)
    return math.fsum(wi * (y - fixed) ** 2 for wi, y in zip(w, effects, strict=True))


def tau2_dersimonian_laird(effects: Sequence[float], variances: Sequence[float]) -> float:
    """The DerSimonian-Laird moment estimate of the between-combination variance,
    max(0, (Q - (k - 1)) / (S1 - S2 / S1)), S1 = sum w, S2 = sum w^2, w = 1 / v."""
    _check(effects, variances)
    w = [1.0 / v for v in variances]
    s1 = math.fsum(w)
    c = s1 - math.fsum(wi * wi for wi in w) / s1
    return max(0.0, (cochran_q(effects, variances) - (len(effects) - 1)) / c) if c > 0 else 0.0


def tau2_paule_mandel(effects: Sequence[float], variances: Sequence[float]) -> float:
    """The Paule-Mandel estimate: the tau2 >= 0 at which the generalized Q, sum (y - mu)^2 / (v + tau2)
    around its own weighted mean mu, equals k - 1 (0 where even tau2 = 0 leaves it below). Unlike
    DerSimonian-Laird, whose weights 1 / v let the most precise combinations set tau2, it does not
    shrink the between-combination variance toward 0 when the within variances differ widely."""
    _check(effects, variances)
    k = len(effects)

    def excess(tau2: float) -> float:
        w = [1.0 / (v + tau2) for v in variances]
        mu = math.fsum(wi * y for wi, y in zip(w, effects, strict=True)) / math.fsum(w)
        return math.fsum(wi * (y - mu) ** 2 for wi, y in zip(w, effects, strict=True)) - (k - 1)

    if k < 2 or excess(0.0) <= 0:
        return 0.0
    mean = math.fsum(effects) / k
    # the generalized Q is below sum (y - mean)^2 / tau2, so past this bound the excess is negative
    hi = 2 * math.fsum((y - mean) ** 2 for y in effects) / (k - 1)
    return float(optimize.brentq(excess, 0.0, hi, xtol=1e-14 * hi, rtol=1e-12))


TAU2 = {"pm": tau2_paule_mandel, "dl": tau2_dersimonian_laird}


def random_effects(effects: Sequence[float], variances: Sequence[float],
                   method: str = "pm") -> tuple[float, float, float, float, float]:
    """(mean, se, tau2, Q, p) of the random-effects model y_i ~ N(mu, v_i + tau2): tau2 by `method`
    ("pm" Paule-Mandel, "dl" DerSimonian-Laird), mu weighted by 1 / (v_i + tau2), se = (sum of the
    weights)^-1/2, p two-sided from the normal distribution. Every variance must be positive."""
    tau2 = TAU2[method](effects, variances)
    wr = [1.0 / (v + tau2) for v in variances]
    mean = math.fsum(wi * y for wi, y in zip(wr, effects, strict=True)) / math.fsum(wr)
    se = math.sqrt(1.0 / math.fsum(wr))
    p = float(2 * sps.norm.sf(abs(mean / se)))
    return mean, se, tau2, cochran_q(effects, variances), p


def combine(groups: Sequence[Sequence[float]], confidence: float = 0.95) -> Combined:
    """The mean paired difference over combinations, from each combination's seed-paired differences
    (`groups`: one sequence per combination; empty ones are ignored).

    One combination: the paired t-interval of its seeds. Several, each with >= 2 seeds: the random-
    effects model over the combination means (`random_effects`, Paule-Mandel tau2), each mean with
    its variance s^2 / n and a 95% normal interval; a combination
    whose seeds all differ by the same amount (s = 0) takes the pooled within-combination variance
    instead, since a variance of 0 would give it all the weight. Several with a single seed in one of
    them, or no spread within any: a t-interval over the combination means (each combination one
    value; its spread holds the between- and within-combination variance alike)."""
    groups = [list(g) for g in groups if len(g)]
    k, n = len(groups), sum(len(g) for g in groups)
    means = tuple(math.fsum(g) / len(g) for g in groups)
    if k == 0:
        return Combined(math.nan, math.nan, math.nan, 0, math.nan, 0, PAIRED_T)
    if k == 1:
        d = paired_diff(groups[0], [0.0] * len(groups[0]), confidence)
        return Combined(d.mean, d.lo, d.hi, d.n, d.p, 1, PAIRED_T, se=mean_se(groups[0]).se, means=means)
    if min(len(g) for g in groups) < 2:
        return _over_means(means, n, confidence)
    ss = [math.fsum((x - m) ** 2 for x in g) for g, m in zip(groups, means, strict=True)]
    pooled = math.fsum(ss) / sum(len(g) - 1 for g in groups)
    if pooled == 0.0:
        return _over_means(means, n, confidence)
    variances = [(s / (len(g) - 1) if s > 0 else pooled) / len(g) for g, s in zip(groups, ss, strict=True)]
    mean, se, tau2, q, p = random_effects(means, variances)
    z = sps.norm.ppf(0.5 + confidence / 2)
    return Combined(mean, mean - z * se, mean + z * se, n, p, k, RANDOM_EFFECTS, se=se, tau2=tau2, q=q, means=means)


def _over_means(means: tuple[float, ...], n: int, confidence: float) -> Combined:
    """The t-interval over the combination means, one value per combination."""
    d = paired_diff(list(means), [0.0] * len(means), confidence)
    return Combined(d.mean, d.lo, d.hi, n, d.p, len(means), MEANS_T, se=mean_se(list(means)).se, means=means)


def sign_over(means: Sequence[float]) -> SignTest:
    """The exact two-sided sign test of per-combination mean differences against 0."""
    return sign_test(list(means), [0.0] * len(means))


def min_sign_p(n: int) -> float:
    """The smallest two-sided p an exact sign test over n untied values can reach (all one way)."""
    return min(1.0, 2 * 0.5 ** n)
