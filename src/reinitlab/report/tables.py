"""The report's numbers, computed once from the collected runs and rendered as Markdown (summary.md
and the terminal) or HTML. Accuracies are shown in percent, differences in percentage points.

Only finished runs enter a mean. Diverged and failed runs are counted in their cell and listed in
their own table, never averaged silently; pairs need both methods finished on the same seed.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .catalog import TEST_ACC
from .collect import REFERENCES, Collected, Combo, RunRecord, combo_order
from .stats import MeanSE, PairedDiff, SignTest, holm, mean_se, paired_vs, sign_test
from .values import value_table


@dataclass
class Cell:
    stat: MeanSE
    diverged: int
    failed: int
    other: int  # partial, running or pending


@dataclass
class PairRow:
    a: str
    b: str
    test: SignTest
    p_holm: float
    mean_diff: float  # mean over the combinations of the per-combination mean difference (points)


@dataclass
class Tables:
    combos: list[Combo]  # sorted
    methods: list[str]
    cells: dict[Combo, dict[str, Cell]]  # combo -> method -> cell
    diffs: dict[str, dict[Combo, dict[str, PairedDiff]]]  # reference -> combo -> method -> diff
    pairs: list[PairRow]
    status_counts: dict[str, int]
    problems: list[RunRecord]  # failed, diverged
    unfinished: list[RunRecord]  # partial, running, pending


def compute(col: Collected) -> Tables:
    combos = sorted({r.combo for r in col.runs}, key=combo_order)
    acc = value_table(col.runs, TEST_ACC, {}).by_combo
    methods = col.methods
    cells: dict = {}
    for combo in combos:
        row = {}
        for m in methods:
            rs = [r for r in col.runs if r.combo == combo and r.method == m]
            if not rs:
                continue
            vals = [v for _, v in sorted(acc.get(combo, {}).get(m, {}).items())]
            row[m] = Cell(mean_se(vals), sum(r.status == "diverged" for r in rs), sum(r.status == "failed" for r in rs),
                          sum(r.status in ("partial", "running", "pending") for r in rs))
        cells[combo] = row

    diffs: dict = {}
    for ref in REFERENCES:
        if ref not in methods:
            continue
        per = {}
        for combo in combos:
            seeds = acc.get(combo, {})
            if ref not in seeds:
                continue
            per[combo] = paired_vs(seeds, ref, methods)
        diffs[ref] = per

    pairs = []
    for a, b in itertools.combinations(methods, 2):
        xa, xb = [], []
        for combo in combos:
            seeds = acc.get(combo, {})
            if a in seeds and b in seeds:
                common = sorted(set(seeds[a]) & set(seeds[b]))
                if common:
                    xa.append(sum(seeds[a][s] for s in common) / len(common))
                    xb.append(sum(seeds[b][s] for s in common) / len(common))
        if xa:
            t = sign_test(xa, xb)
            md = 100 * sum(x - y for x, y in zip(xa, xb, strict=True)) / len(xa)
            pairs.append(PairRow(a, b, t, math.nan, md))
    for row, adj in zip(pairs, holm([p.test.p for p in pairs]), strict=True):
        row.p_holm = adj

    counts: dict[str, int] = {}
    for r in col.runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    problems = [r for r in col.runs if r.status in ("failed", "diverged")]
    unfinished = [r for r in col.runs if r.status in ("partial", "running", "pending")]
    return Tables(combos, methods, cells, diffs, pairs, counts, problems, unfinished)


# ---- rendering -----------------------------------------------------------------------------
def pct(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.{digits}f}"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def fmt_cell(c: Cell | None) -> str:
    if c is None:
        return ""
    s = c.stat
    if s.n == 0:
        text = "—"
    elif s.n == 1:
        text = f"{pct(s.mean)} (1)"
    else:
        text = f"{pct(s.mean)} ± {pct(s.se)} ({s.n})"
    notes = []
    if c.diverged:
        notes.append(f"{c.diverged} diverged")
    if c.failed:
        notes.append(f"{c.failed} failed")
    if c.other:
        notes.append(f"{c.other} unfinished")
    return text + (" [" + ", ".join(notes) + "]" if notes else "")


def fmt_diff(d: PairedDiff | None) -> str:
    if d is None:
        return ""
    if d.n < 2:
        return f"{100 * d.mean:+.2f} (1 seed)"
    star = " *" if d.excludes_zero else ""
    return f"{100 * d.mean:+.2f} [{100 * d.lo:+.2f}, {100 * d.hi:+.2f}] ({d.n}){star}"


COMBO_HEAD = ["dataset", "arch", "train size", "noise"]


def combo_columns(combos: list[Combo]) -> list[str]:
    """The header of a table's combination columns: the standard four, then each extra setting
    (a study's extra axes) that any of `combos` has."""
    return COMBO_HEAD + sorted({k for c in combos for k, _ in c.settings})


def _setting_text(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def combo_text(combo: Combo, columns: list[str] = COMBO_HEAD) -> list[str]:
    settings = dict(combo.settings)
    return ([str(combo.dataset), str(combo.arch), str(combo.train_size), f"{combo.label_noise:g}"]
            + [_setting_text(settings[k]) if k in settings else "" for k in columns[len(COMBO_HEAD):]])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def _size_text(n) -> str:
    return f"{n:,} examples" if isinstance(n, (int, float)) and not isinstance(n, bool) else "the full training set"


def _noise_text(p: float) -> str:
    return f"label noise {p:g}" if p else "no label noise"


def labels(combos: list[Combo]) -> tuple[str, list[str]]:
    """(what every combination shares, each combination's label by what differs): "fashion-mnist-small,
    cnn, no label noise" and ["100 examples", "200 examples"]. A single combination's label is ""."""
    fields = [lambda c: str(c.dataset), lambda c: str(c.arch), lambda c: _size_text(c.train_size),
              lambda c: _noise_text(c.label_noise)]
    keys = sorted({k for c in combos for k, _ in c.settings})
    fields += [lambda c, k=k: f"{k}={_setting_text(dict(c.settings).get(k))}" for k in keys]
    shared, varying = [], []
    for f in fields:
        (shared if len({f(c) for c in combos}) == 1 else varying).append(f)
    scope = ", ".join(f(combos[0]) for f in shared) if combos else ""
    return scope, [", ".join(f(c) for f in varying) for c in combos]


# At most this many combinations side by side: more go into further tables of the same kind, so a
# table stays about as wide as a screen however many combinations a study has.
MAX_COMBO_COLUMNS = 5


def _by_method(title: str, expl: str, combos: list[Combo], names: dict[Combo, str], methods: list[str],
               cell) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """Methods as rows, combinations as columns (in chunks of MAX_COMBO_COLUMNS)."""
    out = []
    chunks = [combos[i:i + MAX_COMBO_COLUMNS] for i in range(0, len(combos), MAX_COMBO_COLUMNS)]
    for i, chunk in enumerate(chunks):
        rows = [[m] + [cell(c, m) for c in chunk] for m in methods]
        rows = [row for row in rows if any(row[1:])]
        if not rows:
            continue
        part = f" ({i + 1} of {len(chunks)})" if len(chunks) > 1 else ""
        out.append((title + part, expl, ["method"] + [names[c] or "all runs" for c in chunk], rows))
    return out


def sections(t: Tables) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, explanation, header, rows) of every table, shared by Markdown and HTML: one row per
    method (the references first, then the method of interest), one column per combination."""
    out = []
    scope, texts = labels(t.combos)
    names = dict(zip(t.combos, texts, strict=True))
    where = f" Every run: {scope}." if scope else ""
    out += _by_method("Test accuracy (%)", "mean ± standard error (n seeds) over finished runs; diverged, failed "
                      "and unfinished runs are counted in brackets, not averaged." + where, t.combos, names, t.methods,
                      lambda c, m: fmt_cell(t.cells[c].get(m)))
    for ref in REFERENCES:
        per = t.diffs.get(ref)
        if not per:
            continue
        others = [m for m in t.methods if m != ref and not (ref == "long" and m == "baseline")]
        out += _by_method(f"Paired difference vs {ref} (points)",
                          f"mean of (method − {ref}) over the seeds where both finished, 95% t-interval, (n); "
                          "* = the interval excludes 0." + where, [c for c in t.combos if c in per], names, others,
                          lambda c, m, per=per: fmt_diff(per[c].get(m)))
    if t.pairs:
        out.append(("Sign test across combinations",
                    "per combination the seed-paired mean accuracies of A and B are compared; exact two-sided "
                    "binomial test over the untied combinations; Holm correction over all pairs.",
                    ["A", "B", "A better", "B better", "ties", "mean A−B (points)", "p", "p (Holm)", "significant"],
                    [[r.a, r.b, str(r.test.wins), str(r.test.losses), str(r.test.ties), f"{r.mean_diff:+.2f}",
                      fmt_p(r.test.p), fmt_p(r.p_holm), "yes" if r.p_holm <= 0.05 else "no"] for r in t.pairs]))
    if t.problems:
        out.append(("Failed and diverged runs", "not included in any mean or test above.",
                    ["run", "status", "reason"],
                    [[r.id, r.status, _reason(r)] for r in t.problems]))
    return out


def _reason(r: RunRecord) -> str:
    if r.status == "diverged":
        at = (r.result or {}).get("diverged_at") or {}
        return f"non-finite loss or weights at round {at.get('round')}, epoch {at.get('epoch')}"
    return ((r.error or {}).get("reason") or "").splitlines()[0] if r.error else ""


def status_line(t: Tables) -> str:
    order = ["finished", "diverged", "failed", "running", "partial", "pending"]
    parts = [f"{t.status_counts[s]} {s}" for s in order if t.status_counts.get(s)]
    return f"{sum(t.status_counts.values())} runs: " + ", ".join(parts)


def to_markdown(t: Tables, title: str, plots: list[tuple[str, str]] = (), head: list[str] = ()) -> str:
    """summary.md up to the parts: the status, `head` (the answer and the settings, as Markdown
    lines), every table and the plots."""
    lines = [f"# {title}", "", status_line(t) + ".", ""]
    if t.unfinished:
        lines += [f"{len(t.unfinished)} run(s) are not finished yet (running, interrupted or not started); "
                  "re-run the study command to complete them.", ""]
    lines += list(head)
    for title_, expl, header, rows in sections(t):
        lines += [f"## {title_}", "", expl, "", markdown_table(header, rows), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{cap}]({path})" for path, cap in plots] + [""]
    return "\n".join(lines)
