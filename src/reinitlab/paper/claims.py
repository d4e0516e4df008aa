"""The verdict on the source paper's five claims (SPEC, The paper's claims), from any study's run folders.

Every test compares LW (method "lw", default options) with a reference method on seed-paired runs
over the combinations (dataset, arch, train size, noise) in the test's scope: per combination the
seeds on which both finished, each seed's difference LW − reference, and their mean. Seeds are
paired within a combination; combinations are different settings, whose true differences differ.
So the effect over combinations is a random-effects estimate (stats.combine): the per-combination
mean differences weighted by the inverse of their variance plus the between-combination variance
tau² (Paule-Mandel), with a 95% normal interval and p; inside a single combination, the paired
t-interval of its seeds. A test is

  supported                       the interval lies on the claimed side of 0 ("not higher": it
                                  does not lie above 0, i.e. no significant increase)
  not supported                   it does not
  not testable with this study    the study lacks what the test needs: a method, an axis value
                                  (>= 2 training sizes, label noise, sizes >= 35K), an analysis,
                                  or 2 seeds (one pair has no interval)

Claim 1 says "in most combinations": besides the effect, per compared method (baseline and every
other reinit method) the combinations where LW's mean difference is above 0 are counted, with the
exact two-sided sign test (ties left out) and Holm's correction over the compared methods, as the
paper's Table 3 does. Where the combinations are too few for any outcome to reach 5% after Holm,
that test is not testable.

A claim is supported when every required test is, not supported when a testable required test is
not, "supported where testable" when the rest cannot be tested here, and not testable when none
can. Tests against `long` (the compute-matched baseline) and tests marked context are shown beside
the verdict and do not enter it: the claims, as the paper states them, are about the baseline.

Each effect test is at the 5% level; a claim needs all its required tests at once (an
intersection-union test), which needs no correction across them. "Not higher" verdicts rest on the
absence of a significant increase, which is weak evidence with few seeds: the interval says how
large an increase the data still allow.

Which runs a verdict reads is the study's regime (regime.py), named after every claim: a tuned
study's runs picked by validation accuracy; over budgets, a seed's values averaged over the budgets
before pairing (one pair per seed and combination); otherwise the study's fixed budget.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Callable

from ..analyses.metrics import Metric
from ..report.catalog import TEST_ACC, Catalog, build_catalog, fmt, members
from ..report.collect import Collected, Combo, combo_order
from ..report.part import Part, ReportContext, report_part
from ..report.regime import FIXED, Regime, verdict_runs
from ..report.stages import protocol_of
from ..report.stats import PAIRED_T, RANDOM_EFFECTS, Combined, SignTest, combine, holm, min_sign_p, sign_over
from ..report.tables import fmt_p
from ..report.values import DIAGNOSTICS, RunData, load, value_table

LW = "lw"
BASELINE, LONG = "baseline", "long"
SINGLE = (BASELINE, LONG, LW)
LARGE = 35_000  # the paper's decision tree split the training-set size at about 35K examples

SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable with this study"
HIGHER, LOWER, NOT_HIGHER = "higher", "lower", "not higher"

STATEMENTS = {
    1: "LW improves test accuracy over the baseline and over the other reinit methods on small training sets, in "
       "most dataset x architecture combinations.",
    2: "The gains shrink and vanish as the training set grows (the paper's split: about 35K examples).",
    3: "LW raises training margins without raising weight norms, so the normalized margin improves.",
    4: "LW ends in flatter minima (smaller loss increase under weight noise at every sigma).",
    5: "LW memorizes less (lower memorized fraction under label noise) and leans on lower layers.",
}


@dataclass
class Scope:
    text: str  # shown in the test's description
    keep: Callable[[Combo], bool]  # in scope
    missing: str  # why not testable when no combination is in scope


CLEAN = Scope("no label noise", lambda c: c.label_noise == 0,
              "needs runs without label noise (label_noise = [0.0, ...])")
SMALL = Scope(f"no label noise, train size < {LARGE:,}",
              lambda c: c.label_noise == 0 and _size(c) is not None and _size(c) < LARGE,
              f"needs runs without label noise on training sets smaller than {LARGE:,}")
BIG = Scope(f"no label noise, train size >= {LARGE:,}", lambda c: c.label_noise == 0 and (_size(c) or 0) >= LARGE,
            f"needs training sizes >= {LARGE:,} (e.g. the sizes preset on fashion-mnist, or train_sizes = [\"full\"] "
            "on a large dataset)")
NOISY = Scope("label noise > 0", lambda c: c.label_noise > 0,
              "needs a label_noise > 0 axis value (e.g. label_noise = [0.0, 0.2])")
ALL = Scope("all combinations", lambda c: True, "needs finished runs")


def _size(combo: Combo) -> int | None:
    n = combo.train_size
    return n if isinstance(n, (int, float)) else None


@dataclass
class Test:
    claim: int
    text: str
    ref: str
    direction: str
    metric: Metric
    diff: Combined | None = None
    combos: int = 0  # combinations with at least one pair
    positive: int = 0  # of them, with a positive mean difference
    sign: SignTest | None = None  # a "most combinations" test: the sign test over the combination means
    p_holm: float = math.nan  # its p after Holm over the compared methods
    family: int = 0  # how many compared methods the Holm correction ran over
    verdict: str = NOT_TESTABLE
    note: str = ""  # why not testable, or what else decided the verdict
    required: bool = True
    context: "Test | None" = None  # the same test against long
    sources: set[str] = field(default_factory=set)
    regime: str = ""  # which runs the test read (regime.py): fixed budget, over budgets, tuned


@dataclass
class Claim:
    number: int
    statement: str
    tests: list[Test]
    verdict: str
    regime: str = ""


def decide(diff: Combined | None, direction: str) -> tuple[str, str]:
    """(verdict, note) of one effect LW − reference over combinations."""
    if diff is None or diff.n == 0:
        return NOT_TESTABLE, ""
    if diff.n < 2 or math.isnan(diff.lo):
        return NOT_TESTABLE, "one pair: an interval needs at least 2 seeds"
    if direction == HIGHER:
        ok = diff.lo > 0
    elif direction == LOWER:
        ok = diff.hi < 0
    else:  # NOT_HIGHER: no significant increase
        ok = not diff.lo > 0
    return (SUPPORTED if ok else NOT_SUPPORTED), ""


def _why_missing(col: Collected, ref: str, scope: Scope, metric: Metric) -> str:
    finished = {r.method for r in col.runs if r.status == "finished"}
    if LW not in finished:
        return "no finished lw runs"
    if ref not in finished:
        return f"no finished {ref} runs (add {ref!r} to methods)"
    if not any(scope.keep(r.combo) for r in col.runs if r.status == "finished"):
        return scope.missing
    if metric.key != "test_acc":
        name = metric.key.split(".")[0]
        return f"needs the {name} analysis on lw and {ref} runs (analyses = [..., \"{name}\"])"
    return f"no seed on which both lw and {ref} finished"


DIRECTIONS = {"higher": HIGHER, "lower": LOWER}


def pooled_test(col: Collected, data: dict[str, RunData], claim: int, text: str, metric: Metric, ref: str,
                direction: str | None, scope: Scope, required: bool = True, with_long: bool = True,
                regime: Regime | None = None) -> Test:
    """`direction` None: the one the metric declares better (a metric declared `better="none"` needs one).
    `regime`: which axes are averaged per seed before pooling (regime.py); none by default."""
    if direction is None:
        if metric.better not in DIRECTIONS:
            raise ValueError(f"{metric.key}: declares no better direction; pass one of {HIGHER!r}, {LOWER!r}, "
                             f"{NOT_HIGHER!r}")
        direction = DIRECTIONS[metric.better]
    regime = regime or FIXED
    values = value_table(col.runs, metric, data)
    vals, src = values.by_combo, values.sources
    t = Test(claim, f"{text} ({scope.text})", ref, direction, metric, required=required, regime=regime.text)
    # (merged combination, seed) -> (lw, ref) per budget: one pair per seed however many budgets
    pairs: dict[Combo, dict[int, list[tuple[float, float]]]] = {}
    for combo in sorted(vals, key=combo_order):
        if not scope.keep(combo):
            continue
        by = vals[combo]
        if LW not in by or ref not in by:
            continue
        common = sorted(set(by[LW]) & set(by[ref]))
        group = pairs.setdefault(regime.merge(combo), {})
        for s in common:
            group.setdefault(s, []).append((by[LW][s], by[ref][s]))
        t.sources |= {src[(combo, m, s)] for m in (LW, ref) for s in common}
    groups = []
    for group in pairs.values():
        if group:  # a seed's difference: LW minus the reference, each averaged over the merged budgets
            groups.append([sum(x for x, _ in ps) / len(ps) - sum(y for _, y in ps) / len(ps)
                           for _, ps in sorted(group.items())])
    t.diff = combine(groups) if groups else None
    t.combos = len(groups)
    t.positive = sum(m > 0 for m in t.diff.means) if t.diff else 0
    t.verdict, t.note = decide(t.diff, direction)
    if t.diff is None:
        t.note = _why_missing(col, ref, scope, metric)
    if with_long and ref == BASELINE:
        t.context = pooled_test(col, data, claim, text, metric, LONG, direction, scope, required=False, with_long=False,
                                regime=regime)
    return t


def shrink_test(col: Collected, data: dict[str, RunData], ref: str, with_long: bool = True,
                regime: Regime | None = None) -> Test:
    """Claim 2: per (dataset, arch), LW's gain over `ref` at the largest size minus at the smallest,
    paired by seed, pooled; negative = the gain shrinks. A seed's gain at a size is its mean over
    the axes the regime averages (the budgets)."""
    regime = regime or FIXED
    metric = TEST_ACC
    vals = value_table(col.runs, metric, data).by_combo
    per: dict[Combo, dict] = {}  # keyed by every axis but the size: size -> seed -> gains
    for combo, by in vals.items():
        if combo.label_noise != 0 or _size(combo) is None or LW not in by or ref not in by:
            continue
        for s in set(by[LW]) & set(by[ref]):
            key = regime.merge(combo)._replace(train_size=None)
            per.setdefault(key, {}).setdefault(_size(combo), {}).setdefault(s, []).append(by[LW][s] - by[ref][s])
    groups = {k: {n: {s: sum(g) / len(g) for s, g in seeds.items()} for n, seeds in by_size.items()}
              for k, by_size in per.items()}
    diffs, spans = [], []
    for _, by_size in sorted(groups.items(), key=lambda kv: combo_order(kv[0])):
        if len(by_size) < 2:
            continue
        small, large = min(by_size), max(by_size)
        seeds = sorted(set(by_size[small]) & set(by_size[large]))
        if not seeds:
            continue
        diffs.append([by_size[large][s] - by_size[small][s] for s in seeds])
        spans.append(f"{large} vs {small}")
    t = Test(2, f"gain over {ref} at the largest training size minus at the smallest "
             f"({', '.join(sorted(set(spans))) or 'sizes'}; no label noise)", ref, LOWER, metric)
    t.combos = len(spans)
    t.diff = combine(diffs) if diffs else None
    t.positive = sum(m > 0 for m in t.diff.means) if t.diff else 0
    t.verdict, t.note = decide(t.diff, LOWER)
    if t.diff is None:
        sizes = sorted({_size(c) for c in vals if c.label_noise == 0 and _size(c) is not None})
        absent = {LW, ref} - {r.method for r in col.runs if r.status == "finished"}
        t.note = (_why_missing(col, ref, CLEAN, metric) if absent else
                  f"needs at least 2 training sizes with lw and {ref} on common seeds (found {sizes or 'none'}; "
                  "e.g. train_sizes = [500, 2000])")
    t.sources = {"result.json"} if diffs else set()
    t.regime = regime.text
    if with_long and ref == BASELINE:
        t.context = shrink_test(col, data, LONG, with_long=False, regime=regime)
        t.context.required = False
    return t


def most_combinations(effects: list[Test], alpha: float = 0.05) -> list[Test]:
    """Claim 1's "in most combinations": per effect test (one compared method each), the combinations
    where LW's mean difference is above 0, the exact two-sided sign test over them and Holm's
    correction over the compared methods. Not testable where even LW ahead in every combination
    could not reach `alpha` after Holm (too few combinations), or where the effect had no pairs."""
    tests = []
    for e in effects:
        t = Test(e.claim, "LW ahead in most combinations: exact sign test over the combination means, Holm over "
                 f"the {len(effects)} compared method{'s' if len(effects) != 1 else ''} ({SMALL.text})", e.ref,
                 HIGHER, e.metric, combos=e.combos, positive=e.positive, sources=set(e.sources), regime=e.regime)
        if e.diff is not None and e.combos:
            t.sign = sign_over(e.diff.means)
        tests.append(t)
    measured = [t for t in tests if t.sign is not None]
    for t, p in zip(measured, holm([t.sign.p for t in measured]), strict=True):
        t.p_holm, t.family = p, len(measured)
    for t, e in zip(tests, effects, strict=True):
        if t.sign is None:
            t.verdict, t.note = NOT_TESTABLE, e.note
            continue
        best = min(1.0, len(measured) * min_sign_p(t.combos))
        ahead = f"LW ahead in {t.sign.wins} of {t.combos}"
        if best > alpha:
            t.verdict = NOT_TESTABLE
            t.note = (f"{ahead}; with {t.combos} combination{'s' if t.combos != 1 else ''} the sign test cannot reach "
                      f"p <= {alpha:g} after Holm over {len(measured)} (at best {best:.3g})")
        elif t.sign.wins > t.sign.losses and t.p_holm <= alpha:
            t.verdict = SUPPORTED
        else:
            t.verdict, t.note = NOT_SUPPORTED, ahead
    return tests


def lower_groups(groups: list[str]) -> list[str]:
    """The lower half of the groups below the head (rounded up): cnn stem, block1 of stem..block3."""
    body = groups[:-1]
    return body[: (len(body) + 1) // 2]


PROBE = "probes.linear_acc."


def lower_probe_metric(groups: list[str]) -> Metric:
    """Mean linear-probe held-out accuracy over the lower groups of a run (its own group list, in the
    order probes writes its numbers: bottom to top)."""
    def compute(numbers) -> float | None:
        own = [k[len(PROBE):] for k in numbers if k.startswith(PROBE)]
        vals = [numbers.get(PROBE + g) for g in lower_groups(own)]
        ok = vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals)
        return sum(vals) / len(vals) if ok else None
    return Metric("probes.linear_acc.lower", f"linear-probe accuracy, mean over the lower groups "
                  f"({', '.join(lower_groups(groups)) or 'none'}) (%)", "higher", percent=True, topic=None,
                  compute=compute)


def evaluate(col: Collected, data: dict[str, RunData] | None = None, catalog: Catalog | None = None) -> list[Claim]:
    data = load(col) if data is None else data
    col, regime = verdict_runs(col)  # a tuned study's picked runs; budgets averaged per seed
    pooled = functools.partial(pooled_test, col, data, regime=regime)
    cat = catalog or build_catalog()
    numbers = [d.numbers for d in data.values()]
    acc = TEST_ACC
    others = [m for m in col.methods if m not in SINGLE and any(r.method == m and r.status == "finished"
                                                                 for r in col.runs)]
    tests: list[Test] = []
    # 1: accuracy on small sets, vs baseline and vs every other reinit method; then in how many
    # combinations LW is ahead of each (the sign test, Holm over the compared methods)
    effects = [pooled(1, "test accuracy", acc, BASELINE, HIGHER, SMALL)]
    effects += [pooled(1, "test accuracy", acc, m, HIGHER, SMALL, with_long=False) for m in others]
    tests += effects
    if not others:
        tests.append(Test(1, "test accuracy vs the other reinit methods", "other reinit methods", HIGHER, acc,
                          note="no other reinit method in the study (e.g. methods = [..., \"fc\", \"ke\", \"llf\"])"))
    tests += most_combinations(effects)
    # 2: the gain shrinks with the training-set size, and vanishes on large sets
    tests.append(shrink_test(col, data, BASELINE, regime=regime))
    tests.append(pooled(2, "no gain on large training sets: test accuracy", acc, BASELINE, NOT_HIGHER, BIG))
    # 3: margins up, norms not up, normalized margin up
    get = cat.metric
    tests += [
        pooled(3, "median training margin", get("margins.q50"), BASELINE, HIGHER, CLEAN),
        pooled(3, "Frobenius norm of all parameters", get("norms.frobenius_total"), BASELINE,
                    NOT_HIGHER, CLEAN),
        pooled(3, "log10 spectral complexity R", get("bound.log10_R"), BASELINE, NOT_HIGHER, CLEAN),
        pooled(3, "median normalized margin (margin / R)", get("margins.spectral_normalized_q50"),
                    BASELINE, HIGHER, CLEAN),
    ]
    # 4: flatter at every sigma; the Hessian as context
    found = members(get("flatness.increase_sigma_{sigma}"), numbers)
    for metric in found:
        sigma = metric.key[len("flatness.increase_sigma_"):]
        tests.append(pooled(4, f"training-loss increase at sigma {sigma}", metric, BASELINE, LOWER,
                                 CLEAN))
    if not found:
        tests.append(pooled(4, "training-loss increase under weight noise",
                                 get("flatness.increase_sigma_0.05"), BASELINE, LOWER, CLEAN))
    tests.append(pooled(4, "context: top Hessian eigenvalue", get("flatness.hessian_top_eigenvalue"),
                             BASELINE, LOWER, CLEAN, required=False))
    # 5: memorizes less under label noise; lower layers' features more general
    tests.append(pooled(5, "memorized fraction of the noisy examples",
                             get("memorization.memorized_fraction"), BASELINE, LOWER, NOISY))
    groups = [g.key[len(PROBE):] for g in members(get(PROBE + "{group}"), numbers)]
    tests.append(pooled(5, "linear-probe accuracy of the lower groups' features "
                             f"({', '.join(lower_groups(groups)) if groups else 'lower half below the head'})",
                             lower_probe_metric(groups), BASELINE, HIGHER, ALL))
    tests.append(pooled(5, "context: true-label accuracy of the noisy examples",
                             get("memorization.noisy_true_label_acc"), BASELINE, HIGHER, NOISY, required=False))
    for t in tests:
        t.regime = regime.text
    return [Claim(n, STATEMENTS[n], [t for t in tests if t.claim == n], claim_verdict([t for t in tests if t.claim == n]),
                  regime.text) for n in sorted(STATEMENTS)]


def claim_verdict(tests: list[Test]) -> str:
    required = [t for t in tests if t.required]
    testable = [t for t in required if t.verdict != NOT_TESTABLE]
    if not testable:
        return NOT_TESTABLE
    if any(t.verdict == NOT_SUPPORTED for t in testable):
        return NOT_SUPPORTED
    if len(testable) == len(required):
        return SUPPORTED
    return f"supported where testable ({len(testable)} of {len(required)} tests; the rest not testable with this study)"


# ---- rendering -------------------------------------------------------------------------------
def fmt_effect(t: Test) -> str:
    if t.sign is not None:
        return f"ahead in {t.sign.wins} of {t.combos} comb. ({t.sign.losses} behind, {t.sign.ties} tied)"
    d = t.diff
    if d is None:
        return "—"
    m = t.metric
    if d.n < 2:
        return f"{fmt(m, d.mean, True)} (1 pair)"
    return f"{fmt(m, d.mean, True)} [{fmt(m, d.lo, True)}, {fmt(m, d.hi, True)}] ({d.n} pairs, {d.k} comb.)"


def _p(t: Test) -> str:
    if t.sign is not None:
        return f"{fmt_p(t.sign.p)} (Holm {fmt_p(t.p_holm)})"
    return fmt_p(t.diff.p) if t.diff is not None and t.diff.n >= 2 else "n/a"


def test_used(t: Test) -> str:
    """Which test gave the row its interval and p."""
    if t.sign is not None:
        return f"exact sign test, Holm over {t.family}"
    d = t.diff
    if d is None or d.n < 2:
        return "—"
    if d.test == RANDOM_EFFECTS:
        return (f"random effects (Paule-Mandel) over {d.k} comb.: between-comb. SD "
                f"{fmt(t.metric, math.sqrt(d.tau2))}, Q {d.q:.3g} on {d.k - 1} df")
    if d.test == PAIRED_T:
        return f"paired t over {d.n} seeds (1 comb.)"
    return f"t over {d.k} combination means"


def _verdict_text(t: Test) -> str:
    v = t.verdict if t.required else f"({t.verdict})"
    return v + (f": {t.note}" if t.note else "")


def _source(t: Test) -> str:
    if DIAGNOSTICS in t.sources:
        return " †" if t.sources == {DIAGNOSTICS} else " ‡"
    return ""


def verdict_part(claims: list[Claim], has_long: bool = True) -> Part:
    """`has_long`: the study has long runs; without, the compute-matched column is left out."""
    header = ["claim", "test (scope)", "LW vs", "effect LW − ref [95% CI] (n)", "p", "statistical test", "verdict"]
    if has_long:
        header.append("same test vs long (compute-matched): effect [95% CI], p, verdict")
    rows = []
    for c in claims:
        for t in c.tests:
            ctx = t.context
            row = [str(c.number), t.text + _source(t), t.ref, fmt_effect(t), _p(t), test_used(t), _verdict_text(t)]
            if has_long:
                row.append("" if ctx is None else f"{fmt_effect(ctx)}, p {_p(ctx)}, {ctx.verdict}"
                           + (f": {ctx.note}" if ctx.note else ""))
            rows.append(row)
    lines = [f"**Claim {c.number}: {c.verdict}.** {c.statement}" + (f" (Regime: {c.regime}.)" if c.regime else "")
             for c in claims]
    intro = ("The claims are those of the specification's section \"The paper's claims\" (docs/SPEC.md). "
             "Each effect is LW − reference over the combinations in its scope (in the measure's unit, accuracies in "
             "points; n = seed pairs, comb. = combinations): seeds are paired within a combination, and the "
             "combinations are combined by a random-effects estimate (each combination's mean difference weighted "
             "by 1 / (its variance + the Paule-Mandel between-combination variance)) with a 95% normal "
             "interval and p; one combination alone gives the paired t-interval of its seeds. The column "
             "'statistical test' names the test of every row. Claim 1's 'in most combinations' is the exact "
             "two-sided sign test over the combination means, Holm-corrected over the compared methods. A claim is "
             "supported when all its tests are; rows in parentheses are context and do not enter the verdict, nor "
             "does the comparison with long. "
             "† from the final-round diagnostics (no analysis.json), ‡ partly so. The regime says which runs a "
             "verdict reads: a study's fixed budget; over budgets (a seed's differences averaged over the budgets "
             "before pairing, so a baseline that ignores R counts once); tuned (per method and seed the run picked "
             "by validation accuracy).")
    return Part("Verdict on the paper's claims", intro,
                [("Tests", "", header, rows)], lines=lines)


@report_part("claims", 90)
def _claims_part(ctx: ReportContext) -> Part | None:
    """Last: the verdict on the paper's claims, when runs of the paper's protocol (rounds) include lw.
    Runs trained in stages (warm_start, permuted, ...) answer other questions (the Stages part) and
    are left out: a warm start is not what the paper's claims are about."""
    runs = [r for r in ctx.col.runs if protocol_of(r) == "rounds"]
    if not any(r.method == LW for r in runs):
        return None
    col = ctx.col if len(runs) == len(ctx.col.runs) else dataclasses.replace(ctx.col, runs=runs)
    ids = {r.id for r in runs}
    data = {k: v for k, v in ctx.data.items() if k in ids}
    claims = ctx.found["claims"] = evaluate(col, data, ctx.catalog)
    return verdict_part(claims, has_long=any(r.method == "long" and r.status == "finished" for r in runs))
