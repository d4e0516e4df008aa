"""The answer first: what the runs found, in a few plain sentences per combination, made from the
paired differences of the summary tables (tables.py) and nothing else.

Per combination (dataset, arch, train size, label noise, settings), against the compute-matched
`long` and against `baseline`, e.g.

    500 examples: lw trails the compute-matched long by 1.23 points [0.18, 2.28] and beats
    baseline by 2.48 points [0.85, 4.12] (3 seeds). Nothing beats long: fc and ke are level with
    it, llf trails it. Every method beats baseline.

A method beats (trails) a reference where the 95% interval of its seed-paired difference lies above
(below) 0, and is level with it where the interval spans 0; a single pair has no interval and is
said to have none. The method of interest (collect.FOCUS: lw) is named first, and where a study has
none, the first method that is not a reference. A combination without either reference ranks its
methods by mean accuracy.

Loose runs (`reinitlab report runA runB`) have no study to fix their budgets, so each combination
also says how many epochs each method's runs trained and whether they are compute-matched; `long`
is called compute-matched only where its runs trained as many epochs as the method named first. A
method whose in-round events never fired in some runs (swr, redo:every, sp:every_epochs: result.json
`in_round_events` 0) is named with how many, so a method that never acted is not read as one that
did not help.
"""
from __future__ import annotations

from dataclasses import dataclass

from .collect import FOCUS, REFERENCES, Collected, Combo
from .part import Part
from .stats import PairedDiff
from .tables import Tables, fmt_p, labels, pct

LONG_TEXT = "the compute-matched long"


@dataclass
class Answer:
    focus: str | None  # the method named first
    scope: str  # what every combination shares ("fashion-mnist-small, cnn, no label noise"); "" if nothing
    items: list[tuple[str, str]]  # (combination label, its sentences); the label is "" for a single combination
    closing: list[str]  # the sign test across combinations, where there are pairs


def focus_of(methods: list[str]) -> str | None:
    if FOCUS in methods:
        return FOCUS
    return next((m for m in methods if m not in REFERENCES), None)


def _names(ms: list[str]) -> str:
    return ms[0] if len(ms) == 1 else ", ".join(ms[:-1]) + " and " + ms[-1]


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def clause(d: PairedDiff, ref_text: str) -> str:
    """The verb phrase of one method against one reference: "beats baseline by 2.48 points [0.85, 4.12]"."""
    m, lo, hi = 100 * d.mean, 100 * d.lo, 100 * d.hi
    if d.n < 2:
        return f"is {abs(m):.2f} points {'above' if m >= 0 else 'below'} {ref_text} (1 seed, no interval)"
    if d.excludes_zero and m > 0:
        return f"beats {ref_text} by {m:.2f} points [{lo:.2f}, {hi:.2f}]"
    if d.excludes_zero:
        return f"trails {ref_text} by {-m:.2f} points [{-hi:.2f}, {-lo:.2f}]"
    return f"is level with {ref_text} ({m:+.2f} [{lo:+.2f}, {hi:+.2f}])"


def kind(d: PairedDiff) -> str:
    if d.n < 2:
        return "single"
    return ("beats" if d.mean > 0 else "trails") if d.excludes_zero else "level"


def _focus_sentence(focus: str, vs: list[tuple[str, PairedDiff]]) -> str:
    """"lw trails the compute-matched long by ... and beats baseline by ... (3 seeds).\""""
    texts = [clause(d, LONG_TEXT if ref == "long" else ref) for ref, d in vs]
    if len(texts) == 2 and texts[0].startswith("is level with") and texts[1].startswith("is level with"):
        texts[1] = texts[1][len("is level "):]  # "... and with baseline (...)"
    ns = {d.n for _, d in vs}
    tail = f" ({_seeds(ns.pop())})" if len(ns) == 1 and min(d.n for _, d in vs) >= 2 else ""
    if not tail and any(d.n >= 2 for _, d in vs):  # different seed counts: each clause says its own
        texts = [t + (f" ({_seeds(d.n)})" if d.n >= 2 else "") for t, (_, d) in zip(texts, vs, strict=True)]
    return f"{focus} " + " and ".join(texts) + tail + "."


def _group_sentence(ref: str, others: list[tuple[str, PairedDiff]], focus_kind: str | None) -> str:
    """How the other methods stand against `ref`: "Nothing beats long: fc and ke are level with it,
    llf trails it." / "Every method beats baseline.\""""
    by: dict[str, list[str]] = {"beats": [], "level": [], "trails": [], "single": []}
    for m, d in others:
        by[kind(d)].append(m)
    kinds = [kind(d) for _, d in others] + ([focus_kind] if focus_kind else [])
    if len(kinds) > 1 and all(k == "beats" for k in kinds):
        return f"Every method beats {ref}."
    if len(kinds) > 1 and all(k == "level" for k in kinds):
        return f"Every method is level with {ref}."
    nothing = "beats" not in kinds and any(k != "single" for k in kinds)
    parts: list[str] = []

    def obj() -> str:  # "it" once the reference is named in this sentence
        return "it" if parts or nothing else ref

    if by["beats"]:
        parts.append(f"{_names(by['beats'])} beat{'s' if len(by['beats']) == 1 else ''} {ref}")
    if by["level"]:
        parts.append(f"{_names(by['level'])} {'is' if len(by['level']) == 1 else 'are'} level with {obj()}")
    if by["trails"]:
        parts.append(f"{_names(by['trails'])} trail{'s' if len(by['trails']) == 1 else ''} {obj()}")
    if by["single"]:
        lead = "without" if parts or nothing else "Without"  # a method name never starts a sentence in capitals
        parts.append(f"{lead} an interval (1 seed) against {obj()}: " + ", ".join(
            f"{m} {100 * d.mean:+.2f}" for m, d in others if kind(d) == "single"))
    if nothing:
        return f"Nothing beats {ref}" + (": " + ", ".join(parts) if parts else "") + "."
    return ", ".join(parts) + "." if parts else ""


def _ranking(t: Tables, combo: Combo) -> str:
    cells = [(m, c.stat) for m, c in t.cells.get(combo, {}).items() if c.stat.n]
    if not cells:
        return "No finished run yet."
    cells.sort(key=lambda mc: -mc[1].mean)
    text = ", ".join(f"{m} {pct(s.mean)}%" + (f" ± {pct(s.se)}" if s.n > 1 else "") + f" ({_seeds(s.n)})"
                     for m, s in cells)
    return f"No baseline or long to compare with; test accuracy: {text}."


def combo_sentences(t: Tables, combo: Combo, focus: str | None, budgets: dict[str, list[int]] | None = None) -> str:
    refs = [ref for ref in ("long", "baseline") if combo in t.diffs.get(ref, {})]
    if not refs:
        return _ranking(t, combo)
    out = []
    subject = focus if focus is not None and any(focus in t.diffs[ref][combo] for ref in refs) else None
    if subject is None and "baseline" in refs and "long" in t.diffs["baseline"][combo]:
        subject = "long"  # only the references ran: how much the extra epochs bring
    vs = [(ref, t.diffs[ref][combo][subject]) for ref in refs if subject and subject in t.diffs[ref][combo]]
    if vs:
        out.append(_focus_sentence(subject, vs))
    for ref in refs:
        row = t.diffs[ref][combo]
        others = [(m, row[m]) for m in t.methods if m in row and m != subject and not (ref == "long" and m == "baseline")]
        if others:
            d = row.get(subject) if subject else None
            text = _group_sentence(ref, others, kind(d) if d is not None else None)
            if text:
                out.append(text)
    if not out:
        return _ranking(t, combo)
    text = " ".join(out)
    matched = budgets is None or (subject is not None and set(budgets.get("long", [])) == set(budgets.get(subject, [])))
    if not matched:  # loose runs: long is compute-matched only if it trained what the subject trained
        text = text.replace(LONG_TEXT, "long")
    elif "long" in refs and LONG_TEXT not in text:  # the first mention says what long is
        text = text.replace(" long", " " + LONG_TEXT, 1)
    return text


def epochs_trained(col: Collected, combo: Combo) -> dict[str, list[int]]:
    """method -> the sorted distinct epochs trained (result.json epochs_total) of its finished runs."""
    out: dict[str, set[int]] = {}
    for r in col.runs:
        e = (r.result or {}).get("epochs_total")
        if r.combo == combo and r.status == "finished" and isinstance(e, int):
            out.setdefault(r.method, set()).add(e)
    return {m: sorted(v) for m, v in out.items()}


def budget_sentence(budgets: dict[str, list[int]], methods: list[str]) -> str:
    """"Epochs trained: lw 9, baseline 3; not compute-matched: ..." for loose runs."""
    names = [m for m in methods if m in budgets]
    if len(names) < 2:
        return ""  # nothing compared
    values = {e for m in names for e in budgets[m]}
    if len(values) == 1:
        return f"Compute-matched: every run trained {values.pop()} epochs."
    text = ", ".join(f"{m} {budgets[m][0]}" if len(budgets[m]) == 1 else f"{m} {budgets[m][0]}-{budgets[m][-1]}"
                     for m in names)
    return (f"Epochs trained: {text}; these runs are not compute-matched, so a difference between them may be the "
            "extra training alone.")


def never_acted(col: Collected) -> list[str]:
    """A sentence per method whose in-round events never fired in some of its finished runs."""
    by: dict[str, list[int]] = {}
    for r in col.runs:
        n = (r.result or {}).get("in_round_events")
        if r.status == "finished" and isinstance(n, int):
            by.setdefault(r.method, []).append(n)
    return [f"**{m}** never acted in {sum(n == 0 for n in ns)} of its {len(ns)} finished run{'s' if len(ns) != 1 else ''} "
            "(0 in-round events in result.json): those runs trained as if without it." for m, ns in by.items()
            if any(n == 0 for n in ns)]


def sign_lines(t: Tables) -> list[str]:
    """The sign test across combinations, in words (Markdown **bold**)."""
    lines: list[str] = []
    if len(t.combos) < 2:  # one combination: a sign test across combinations says nothing
        return lines
    for row in t.pairs:
        if row.p_holm <= 0.05:
            better = row.a if row.test.wins > row.test.losses else row.b
            lines.append(f"Sign test across combinations: **{better}** wins significantly in {row.a} vs {row.b} "
                         f"({row.test.wins}-{row.test.losses}, Holm p = {fmt_p(row.p_holm)}).")
    if t.pairs and not lines:
        n_max = max(r.test.n for r in t.pairs)
        lines.append(f"No method pair differs significantly by the sign test across combinations after Holm "
                     f"correction (at most {n_max} untied combination{'s' if n_max != 1 else ''} per pair; the "
                     f"smallest possible two-sided p with n={n_max} is {fmt_p(min(1.0, 2 * 0.5 ** n_max))}).")
    return lines


def answer(t: Tables, col: Collected | None = None) -> Answer:
    """The answer from the tables; with the collected runs `col`, also what the tables cannot show:
    each loose combination's budgets and the methods that never acted."""
    focus = focus_of(t.methods)
    scope, names = labels(t.combos)
    items = []
    for name, c in zip(names, t.combos, strict=True):
        budgets = epochs_trained(col, c) if col is not None and col.loose else None
        text = combo_sentences(t, c, focus, budgets)
        extra = budget_sentence(budgets, t.methods) if budgets else ""
        items.append((name, f"{text} {extra}" if extra else text))
    return Answer(focus, scope, items, (never_acted(col) if col is not None else []) + sign_lines(t))


def intro(a: Answer) -> str:
    what = "Test accuracy: seed-paired differences in points with 95% t-intervals"
    return what + (f"; {a.scope}" if a.scope else "") + (f"; method of interest {a.focus}" if a.focus else "") + "."


def answer_part(a: Answer) -> Part | None:
    """The answer as the report's first part: the sentences of each combination, then the sign test."""
    if not a.items:
        return None
    lines = [f"**{name}**: {text}" if name else text for name, text in a.items]
    return Part("Answer", intro(a), [], [], lines + a.closing)
