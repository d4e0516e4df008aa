"""The statistics of SPEC, Statistics: mean and standard error per cell, paired differences over seeds with a
t-interval, the exact two-sided sign test across combinations, and Holm's step-down correction.

Small n is the rule here (3 seeds), so every function says what it can and cannot tell: an interval
from one pair is undefined (NaN), not zero-width; a sign test over no untied pair has p = 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

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
