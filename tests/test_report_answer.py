"""The report answers first: sentences computed from the paired differences (which methods beat
baseline, whether any beats the compute-matched long, the focus method's difference with its 95%
interval and n), a table of contents, the shared settings, methods-as-rows tables that stay narrow,
and plots that say what their bars are and are drawn only where they carry information."""
import json
import math
import re
from pathlib import Path

import pytest
from test_report_tables import run_id, write_run

from reinitlab.report import make_report
from reinitlab.report.answer import _names, answer, clause, kind
from reinitlab.report.collect import Combo, collect
from reinitlab.report.plots import wrap
from reinitlab.report.stats import PairedDiff
from reinitlab.report.tables import MAX_COMBO_COLUMNS, compute, sections


def write_study(root: Path, accs: dict, methods: list[str], name: str = "answer-study") -> Path:
    for combo, per in accs.items():
        for method, values in per.items():
            for seed, acc in enumerate(values):
                write_run(root, combo, method, seed, acc)
    (root / "study.json").write_text(json.dumps({"definition": {"name": name, "methods": methods}}))
    return root


S = Combo("toy", "cnn", 500, 0.0)
L = Combo("toy", "cnn", 2000, 0.0)
# at 500: lw trails long (differences -1, -2, -1.5 points), every method beats baseline;
# at 2000: nothing beats long, fc level with it, lw and baseline trail it
ACCS = {
    S: {"baseline": [0.50, 0.51, 0.52], "long": [0.60, 0.62, 0.61], "lw": [0.59, 0.60, 0.595],
        "fc": [0.55, 0.57, 0.56]},
    L: {"baseline": [0.70, 0.70, 0.71], "long": [0.80, 0.81, 0.80], "lw": [0.75, 0.76, 0.75],
        "fc": [0.80, 0.79, 0.82]},
}


@pytest.fixture
def answer_study(tmp_path):
    return write_study(tmp_path, ACCS, ["baseline", "long", "fc", "lw"])


def test_the_answer_states_the_conclusion_per_combination(answer_study):
    a = answer(compute(collect(answer_study)))
    assert a.focus == "lw" and a.scope == "toy, cnn, no label noise"
    items = dict(a.items)
    small, large = items["500 examples"], items["2,000 examples"]
    # the focus method's difference to long with its interval (points) and the number of seeds
    d = compute(collect(answer_study)).diffs["long"][S]["lw"]
    assert small.startswith(f"lw trails the compute-matched long by {-100 * d.mean:.2f} points "
                            f"[{-100 * d.hi:.2f}, {-100 * d.lo:.2f}] and beats baseline by ")
    assert "(3 seeds)." in small
    assert "Nothing beats long: fc trails it." in small
    assert "Every method beats baseline." in small
    assert "Nothing beats long: fc is level with it." in large
    assert "Every method beats baseline." in large


def test_clause_words_each_case():
    beats = PairedDiff(0.0248, 0.0085, 0.0412, 3, 0.02)
    level = PairedDiff(-0.01, -0.03, 0.01, 3, 0.3)
    single = PairedDiff(-0.012, float("nan"), float("nan"), 1, float("nan"))
    assert clause(beats, "baseline") == "beats baseline by 2.48 points [0.85, 4.12]"
    assert clause(PairedDiff(-0.0123, -0.0228, -0.0018, 3, 0.04), "long") == "trails long by 1.23 points [0.18, 2.28]"
    assert clause(level, "long") == "is level with long (-1.00 [-3.00, +1.00])"
    assert clause(single, "long") == "is 1.20 points below long (1 seed, no interval)"


def test_report_html_answers_first_with_contents_and_settings(answer_study):
    make_report(answer_study)
    html = (answer_study / "report.html").read_text()
    heads = re.findall(r'<h2 id="(s\d+)">(.*?)</h2>', html)
    titles = [t for _, t in heads]
    assert titles[:3] == ["Answer", "Settings", "Test accuracy (%)"]
    toc = re.search(r'<nav class="toc">(.*?)</nav>', html).group(1)
    assert re.findall(r'<a href="#(s\d+)">(.*?)</a>', toc) == heads  # every section, linked
    assert html.index('<nav class="toc">') < html.index(">Answer</h2>")
    assert "<b>500 examples</b>: lw trails the compute-matched long by" in html
    # the settings a reader compares: batch, width, lr, weight decay, augment, epochs, rounds, precision
    settings = html[html.index(">Settings</h2>"):html.index(">Test accuracy (%)</h2>")]
    for key in ("epochs", "rounds", "width"):
        assert f"<td class=t>{key}</td>" in settings
    assert "points on average over" not in html  # the old template bullets are gone


def test_tables_have_methods_as_rows_and_stay_narrow(tmp_path):
    sizes = [100 * (i + 1) for i in range(MAX_COMBO_COLUMNS + 2)]
    methods = ["baseline", "long", "lw", "fc", "ke", "llf", "dsd", "sp", "welsr", "fire"]
    accs = {Combo("npz:/a/very/long/path/to/some/dataset.npz", "cnn", n, 0.0): {m: [0.5, 0.6] for m in methods}
            for n in sizes}
    root = write_study(tmp_path, accs, methods)
    t = compute(collect(root))
    acc_tables = [s for s in sections(t) if s[0].startswith("Test accuracy")]
    assert [s[0] for s in acc_tables] == ["Test accuracy (%) (1 of 2)", "Test accuracy (%) (2 of 2)"]
    for _title, expl, header, rows in acc_tables:
        assert len(header) <= 1 + MAX_COMBO_COLUMNS  # wide as the combinations shown, not the methods
        assert [r[0] for r in rows][:3] == ["baseline", "long", "lw"]  # references, then the method of interest
        assert "npz:/a/very/long/path" in expl  # what every column shares is said once
    assert acc_tables[0][2][1] == "100 examples"


def test_plots_say_their_error_bars_and_only_where_informative(answer_study, tmp_path):
    rep = make_report(answer_study)
    html = (answer_study / "report.html").read_text()
    caps = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert caps and all("standard error over 3 seeds" in c or "SE over 3 seeds" in c for c in caps), caps
    names = sorted(p.name for p in rep.files if p.suffix == ".png")
    assert names == ["acc_vs_epochs_toy.png", "acc_vs_size_toy.png"]
    # one size: no accuracy-vs-size plot (the table says it all)
    one = write_study(tmp_path / "one", {S: ACCS[S]}, ["baseline", "long", "fc", "lw"])
    names = sorted(p.name for p in make_report(one).files if p.suffix == ".png")
    assert names == ["acc_vs_epochs_toy.png"]


def test_size_ticks_are_plain_numbers(answer_study, monkeypatch):
    from reinitlab.report import plots
    seen = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.setdefault(path.name, fig))
    col = collect(answer_study)
    plots.acc_vs_size(col, answer_study, "toy", plots._colors(col.methods))
    ax = seen["acc_vs_size_toy.png"].axes[0]
    assert ax.get_xscale() == "log"  # 500 to 2,000
    assert [t.get_text() for t in ax.get_xticklabels()] == ["500", "2,000"]
    assert ax.xaxis.get_minorticklocs().size == 0


def test_wrap_keeps_every_character_and_the_width():
    title = "npz:/home/someone/projects/data/a_rather_long_dataset_file_name_without_spaces.npz: test accuracy"
    text = wrap(title, 30)
    assert all(len(line) <= 30 for line in text.splitlines())
    assert "".join(text.split()) == "".join(title.split())
    assert len(text.splitlines()) > 1


def test_a_pending_run_id_is_not_in_the_answer(answer_study):
    # an unfinished run is counted, never averaged into a sentence
    folder = answer_study / "runs" / run_id(S, "lw", 9)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"dataset": "toy", "arch": "cnn", "method": "lw",
                                                    "train_size": 500, "label_noise": 0.0, "seed": 9}))
    a = answer(compute(collect(answer_study)))
    assert "(3 seeds)" in dict(a.items)["500 examples"]


@pytest.mark.slow
def test_why_figures_labels_do_not_overlap_their_neighbours(tmp_path, monkeypatch):
    """Every panel's y label stays clear of every other panel (constrained layout)."""
    from why_common import make_why_study

    from reinitlab.report import why_plots
    checked = []
    real_save = why_plots._save

    def save(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        axes = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
        for ax in axes:
            label = ax.yaxis.label.get_window_extent(renderer)
            for other in axes:
                if other is not ax:
                    assert not label.overlaps(other.get_window_extent(renderer)), (path.name, ax.get_ylabel())
        checked.append(path.name)
        real_save(fig, path)

    monkeypatch.setattr(why_plots, "_save", save)
    make_report(make_why_study(tmp_path / "why"))
    assert "why_norms_toy.png" in checked and len(checked) == 5


def test_one_combination_has_no_sign_test_sentence(tmp_path):
    root = write_study(tmp_path, {S: ACCS[S]}, ["baseline", "long", "fc", "lw"])
    a = answer(compute(collect(root)))
    assert a.closing == [] and len(a.items) == 1 and a.items[0][0] == ""


def test_a_sentence_about_single_seed_runs_starts_with_a_capital():
    """Two `train` runs compared (one seed each): the sentence on the other methods begins the
    sentence itself, so it is capitalized; after another clause it is not."""
    from reinitlab.report.answer import _group_sentence
    one = PairedDiff(0.0364, float("nan"), float("nan"), 1, float("nan"))
    level = PairedDiff(0.001, -0.01, 0.012, 3, 0.8)
    assert _group_sentence("baseline", [("long", one)], "single") == \
        "Without an interval (1 seed) against baseline: long +3.64."
    assert _group_sentence("baseline", [("fc", level), ("long", one)], None) == \
        "Nothing beats baseline: fc is level with it, without an interval (1 seed) against it: long +3.64."


def test_answer_only_prints_the_answer_and_where_the_report_is_not_the_tables(answer_study, capsys):
    """What `make run` ends with: the Answer section, then the path of report.html; the whole
    summary (tables, plots, parts) stays in the files."""
    from reinitlab.cli import main
    assert main(["report", str(answer_study), "--answer-only"]) == 0
    out = capsys.readouterr().out
    summary = (answer_study / "summary.md").read_text()
    answer_md = summary[summary.index("## Answer"):summary.index("\n## ", summary.index("## Answer") + 1)].strip()
    assert out.startswith(answer_md) and "lw trails the compute-matched long by" in out
    assert out.rstrip().splitlines()[-1].startswith(f"The whole report: {answer_study / 'report.html'} ")
    assert "## Settings" in summary and "## Settings" not in out and "|" not in out


# ---- the words every sentence is built from ----------------------------------------------------------
def test_method_names_are_listed_with_commas_and_a_final_and():
    assert _names(["fc"]) == "fc"
    assert _names(["fc", "ke"]) == "fc and ke"
    assert _names(["fc", "ke", "llf"]) == "fc, ke and llf"
    assert _names(["fc", "ke", "llf", "dsd"]) == "fc, ke, llf and dsd"


def test_the_verb_follows_the_interval():
    above, below, spans = PairedDiff(0.02, 0.01, 0.03, 3, 0.01), PairedDiff(-0.02, -0.03, -0.01, 3, 0.01), \
        PairedDiff(0.01, -0.01, 0.03, 3, 0.3)
    single = PairedDiff(-0.015, math.nan, math.nan, 1, math.nan)
    assert [kind(d) for d in (above, below, spans, single)] == ["beats", "trails", "level", "single"]
    assert clause(above, "baseline") == "beats baseline by 2.00 points [1.00, 3.00]"
    assert clause(below, "long") == "trails long by 2.00 points [1.00, 3.00]"
    assert clause(spans, "long") == "is level with long (+1.00 [-1.00, +3.00])"
    assert clause(single, "baseline") == "is 1.50 points below baseline (1 seed, no interval)"


def test_group_sentences_by_hand():
    from reinitlab.report.answer import _group_sentence
    beats, level = PairedDiff(0.02, 0.01, 0.03, 3, 0.01), PairedDiff(0.01, -0.01, 0.03, 3, 0.3)
    two = PairedDiff(0.02, 0.01, 0.03, 2, 0.01)
    assert kind(two) == "beats"  # two seeds give an interval
    assert _group_sentence("baseline", [("fc", beats), ("ke", beats)], None) == "Every method beats baseline."
    assert _group_sentence("baseline", [("fc", beats)], "beats") == "Every method beats baseline."  # lw counts
    assert _group_sentence("baseline", [("fc", beats)], None) == "fc beats baseline."
    assert _group_sentence("baseline", [("fc", beats), ("ke", beats), ("llf", level)], None) == \
        "fc and ke beat baseline, llf is level with it."
    assert _group_sentence("long", [("fc", level), ("ke", level)], None) == "Every method is level with long."
    assert _group_sentence("long", [("fc", level)], None) == "Nothing beats long: fc is level with it."
    assert _group_sentence("long", [("fc", level)], "trails") == "Nothing beats long: fc is level with it."


def test_more_group_sentences_focus_intro_and_part_by_hand():
    from reinitlab.report.answer import Answer, _focus_sentence, _group_sentence, _seeds, answer_part, focus_of, intro
    beats, level = PairedDiff(0.02, 0.01, 0.03, 3, 0.01), PairedDiff(0.01, -0.01, 0.03, 3, 0.3)
    trails, single = PairedDiff(-0.02, -0.03, -0.01, 3, 0.01), PairedDiff(0.015, math.nan, math.nan, 1, math.nan)
    assert _group_sentence("long", [("fc", level), ("ke", level), ("llf", trails), ("dsd", trails)], "beats") == \
        "fc and ke are level with long, llf and dsd trail it."
    assert _group_sentence("long", [("fc", trails)], None) == "Nothing beats long: fc trails it."
    assert _group_sentence("long", [("fc", single), ("ke", single)], None) == \
        "Without an interval (1 seed) against long: fc +1.50, ke +1.50."
    assert _group_sentence("long", [("fc", level), ("ke", single)], None) == \
        "Nothing beats long: fc is level with it, without an interval (1 seed) against it: ke +1.50."
    assert _group_sentence("baseline", [("fc", beats), ("ke", single)], None) == \
        "fc beats baseline, without an interval (1 seed) against it: ke +1.50."
    assert _group_sentence("baseline", [], None) == ""
    assert _group_sentence("long", [], "trails") == "Nothing beats long."  # only the focus method, and it trails
    assert [_seeds(n) for n in (1, 2, 3)] == ["1 seed", "2 seeds", "3 seeds"]
    assert focus_of(["baseline", "long", "fc", "lw"]) == "lw" and focus_of(["baseline", "long", "fc"]) == "fc"
    assert focus_of(["baseline", "long"]) is None
    a = Answer("lw", "fashion-mnist-small, cnn", [("500 examples", "lw beats baseline."), ("", "x.")], ["Sign."])
    assert intro(a) == ("Test accuracy: seed-paired differences in points with 95% t-intervals; fashion-mnist-small, "
                        "cnn; method of interest lw.")
    assert intro(Answer(None, "", [], [])) == "Test accuracy: seed-paired differences in points with 95% t-intervals."
    part = answer_part(a)
    assert part.title == "Answer" and part.intro == intro(a)
    assert part.lines == ["**500 examples**: lw beats baseline.", "x.", "Sign."]
    assert answer_part(Answer(None, "", [], [])) is None
    assert _focus_sentence("lw", [("long", trails), ("baseline", beats)]) == (
        "lw trails the compute-matched long by 2.00 points [1.00, 3.00] and beats baseline by 2.00 points "
        "[1.00, 3.00] (3 seeds).")
    assert _focus_sentence("lw", [("long", level), ("baseline", level)]) == (
        "lw is level with the compute-matched long (+1.00 [-1.00, +3.00]) and with baseline (+1.00 [-1.00, +3.00]) "
        "(3 seeds).")
    two = PairedDiff(0.02, 0.01, 0.03, 2, 0.01)
    assert _focus_sentence("lw", [("long", level), ("baseline", two)]) == (
        "lw is level with the compute-matched long (+1.00 [-1.00, +3.00]) (3 seeds) and beats baseline by 2.00 "
        "points [1.00, 3.00] (2 seeds).")
    assert _focus_sentence("lw", [("long", single), ("baseline", beats)]) == (
        "lw is 1.50 points above the compute-matched long (1 seed, no interval) and beats baseline by 2.00 points "
        "[1.00, 3.00] (3 seeds).")
    assert _focus_sentence("fc", [("baseline", single)]) == "fc is 1.50 points above baseline (1 seed, no interval)."


# ---- whole sentences from tables built by hand ---------------------------------------------------------
# A combination's sentences and the sign-test lines are compared whole: a changed word, a dropped clause
# or a reordered list is a different answer.
BEATS, TRAILS = PairedDiff(0.02, 0.01, 0.03, 3, 0.01), PairedDiff(-0.02, -0.03, -0.01, 3, 0.01)
LEVEL = PairedDiff(0.01, -0.01, 0.03, 3, 0.3)
TWO = S, L


def by_hand(methods, diffs=None, cells=None, pairs=(), combos=(S,)):
    from reinitlab.report.tables import Tables
    return Tables(list(combos), methods, cells or {}, diffs or {}, list(pairs), {}, [], [])


def cell(mean, se, n):
    from reinitlab.report.stats import MeanSE
    from reinitlab.report.tables import Cell
    return Cell(MeanSE(mean, se, n), 0, 0, 0)


def record(combo, method, seed, status="finished", **result):
    """A collected run as report/collect.py reads it, with only what the answer reads."""
    from reinitlab.report.collect import RunRecord
    axes = {"dataset": combo.dataset, "arch": combo.arch, "train_size": combo.train_size,
            "label_noise": combo.label_noise, "method": method, "seed": seed}
    return RunRecord(f"{method}-{seed}-{combo.train_size}", status, {}, result, None, axes)


def test_the_focus_method_then_the_others_against_each_reference():
    from reinitlab.report.answer import combo_sentences
    t = by_hand(["baseline", "long", "fc", "lw"], {
        "long": {S: {"baseline": TRAILS, "fc": LEVEL, "lw": TRAILS}},
        "baseline": {S: {"long": BEATS, "fc": BEATS, "lw": BEATS}}})
    # baseline is no method compared with long: it is not among the "others" of long
    assert combo_sentences(t, S, "lw") == (
        "lw trails the compute-matched long by 2.00 points [1.00, 3.00] and beats baseline by 2.00 points "
        "[1.00, 3.00] (3 seeds). Nothing beats long: fc is level with it. Every method beats baseline.")
    # the focus method's own verb takes part in "every method": here lw is level with baseline
    t.diffs["baseline"][S]["lw"] = LEVEL
    assert combo_sentences(t, S, "lw") == (
        "lw trails the compute-matched long by 2.00 points [1.00, 3.00] and is level with baseline "
        "(+1.00 [-1.00, +3.00]) (3 seeds). Nothing beats long: fc is level with it. long and fc beat baseline.")


def test_long_is_compute_matched_only_where_it_trained_what_the_focus_method_trained():
    from reinitlab.report.answer import combo_sentences
    t = by_hand(["baseline", "long", "lw"], {"long": {S: {"baseline": TRAILS, "lw": LEVEL}},
                                             "baseline": {S: {"long": BEATS, "lw": BEATS}}})
    matched = ("lw is level with the compute-matched long (+1.00 [-1.00, +3.00]) and beats baseline by 2.00 points "
               "[1.00, 3.00] (3 seeds). Every method beats baseline.")
    assert combo_sentences(t, S, "lw") == matched  # a study: its budgets match by construction
    assert combo_sentences(t, S, "lw", {"long": [9], "lw": [9], "baseline": [3]}) == matched
    assert combo_sentences(t, S, "lw", {"long": [9, 3], "lw": [3, 9]}) == matched  # the same set of budgets
    loose = matched.replace("the compute-matched long", "long")
    assert combo_sentences(t, S, "lw", {"long": [9], "lw": [3]}) == loose
    assert combo_sentences(t, S, "lw", {"long": [9, 3], "lw": [3]}) == loose
    assert combo_sentences(t, S, "lw", {"lw": [3]}) == loose  # long's runs say nothing of their epochs
    assert combo_sentences(t, S, "lw", {"long": [3]}) == loose


def test_without_the_focus_method_long_is_the_subject_or_nobody_is():
    from reinitlab.report.answer import combo_sentences
    # only the references ran: what the extra epochs of long bring
    refs = by_hand(["baseline", "long"], {"long": {S: {"baseline": TRAILS}}, "baseline": {S: {"long": BEATS}}})
    assert combo_sentences(refs, S, None) == "long beats baseline by 2.00 points [1.00, 3.00] (3 seeds)."
    assert combo_sentences(refs, S, "lw") == "long beats baseline by 2.00 points [1.00, 3.00] (3 seeds)."
    # no baseline: nobody is named first, and the first mention of long says what it is
    no_base = by_hand(["long", "fc", "ke"], {"long": {S: {"fc": LEVEL, "ke": TRAILS}}})
    assert combo_sentences(no_base, S, "lw") == \
        "Nothing beats the compute-matched long: fc is level with it, ke trails it."
    assert combo_sentences(no_base, S, None) == \
        "Nothing beats the compute-matched long: fc is level with it, ke trails it."
    # loose runs: nobody trained what long trained, so long is just long
    assert combo_sentences(no_base, S, None, {"long": [9], "fc": [9]}) == \
        "Nothing beats long: fc is level with it, ke trails it."


def test_the_first_mention_of_long_says_what_it_is_and_only_the_first():
    from reinitlab.report.answer import combo_sentences
    # lw shares seeds with baseline only: its sentence names baseline, the others' name long twice
    t = by_hand(["baseline", "long", "fc", "lw"], {"long": {S: {"baseline": TRAILS, "fc": LEVEL}},
                                                   "baseline": {S: {"long": BEATS, "fc": LEVEL, "lw": BEATS}}})
    assert combo_sentences(t, S, "lw") == (
        "lw beats baseline by 2.00 points [1.00, 3.00] (3 seeds). Nothing beats the compute-matched long: fc is "
        "level with it. long beats baseline, fc is level with it.")


def test_a_combination_without_references_ranks_its_methods_by_accuracy():
    from reinitlab.report.answer import combo_sentences
    cells = {S: {"fc": cell(0.55, 0.005, 2), "ke": cell(float("nan"), float("nan"), 0), "lw": cell(0.6, float("nan"), 1),
                 "llf": cell(0.5, 0.01, 3)}}
    t = by_hand(["fc", "ke", "llf", "lw"], cells=cells, combos=TWO)
    assert combo_sentences(t, S, "lw") == ("No baseline or long to compare with; test accuracy: lw 60.00% (1 seed), "
                                           "fc 55.00% ± 0.50 (2 seeds), llf 50.00% ± 1.00 (3 seeds).")
    assert combo_sentences(t, L, "lw") == "No finished run yet."  # no cell at all
    t.cells[L] = {"lw": cell(float("nan"), float("nan"), 0)}
    assert combo_sentences(t, L, "lw") == "No finished run yet."  # cells of runs that did not finish
    # baseline ran alone: a reference without a method to pair with it, ranked too
    alone = by_hand(["baseline"], {"baseline": {S: {}}}, {S: {"baseline": cell(0.5, 0.01, 3)}})
    assert combo_sentences(alone, S, "lw") == \
        "No baseline or long to compare with; test accuracy: baseline 50.00% ± 1.00 (3 seeds)."


def test_the_sign_test_names_the_winner_of_each_significant_pair():
    from reinitlab.report.answer import sign_lines
    from reinitlab.report.stats import SignTest
    from reinitlab.report.tables import PairRow
    pairs = [PairRow("baseline", "lw", SignTest(1, 7, 0, 0.07), 0.04, -2.0),  # the second one wins
             PairRow("fc", "lw", SignTest(8, 0, 1, 0.008), 0.05, 1.0),  # at the threshold: significant
             PairRow("fc", "ke", SignTest(6, 1, 0, 0.125), 0.0500001, 0.5),
             PairRow("ke", "lw", SignTest(9, 0, 0, 0.0039), 0.00049, 3.0)]
    t = by_hand(["baseline", "fc", "ke", "lw"], pairs=pairs, combos=TWO)
    assert sign_lines(t) == [
        "Sign test across combinations: **lw** wins significantly in baseline vs lw (1-7, Holm p = 0.040).",
        "Sign test across combinations: **fc** wins significantly in fc vs lw (8-0, Holm p = 0.050).",
        "Sign test across combinations: **ke** wins significantly in ke vs lw (9-0, Holm p = 0.00049)."]
    assert sign_lines(by_hand(["baseline", "fc", "ke", "lw"], pairs=pairs)) == []  # one combination


def test_without_a_significant_pair_the_sign_test_says_how_small_p_could_be():
    from reinitlab.report.answer import sign_lines
    from reinitlab.report.stats import SignTest
    from reinitlab.report.tables import PairRow

    def lines(*ns):
        return sign_lines(by_hand(["a", "b"], pairs=[PairRow("a", "b", SignTest(n, 0, 1, 1.0), 1.0, 0.0) for n in ns],
                                  combos=TWO))
    head = "No method pair differs significantly by the sign test across combinations after Holm correction "
    assert lines(3, 5, 4) == [head + "(at most 5 untied combinations per pair; the smallest possible two-sided p "
                                     "with n=5 is 0.062)."]
    assert lines(1) == [head + "(at most 1 untied combination per pair; the smallest possible two-sided p with "
                               "n=1 is 1.000)."]
    assert lines(0) == [head + "(at most 0 untied combinations per pair; the smallest possible two-sided p with "
                               "n=0 is 1.000)."]  # every combination tied
    assert lines(12) == [head + "(at most 12 untied combinations per pair; the smallest possible two-sided p with "
                                "n=12 is 0.00049)."]
    assert lines() == []  # no pair at all


def test_loose_runs_answer_with_their_budgets_and_the_methods_that_never_acted():
    from reinitlab.report.answer import answer
    from reinitlab.report.collect import Collected
    run = record
    runs = [run(S, "lw", 0, epochs_total=3, in_round_events=0), run(S, "lw", 1, epochs_total=3, in_round_events=2),
            run(S, "long", 0, epochs_total=9), run(S, "long", 1, epochs_total=9),
            run(S, "long", 2, "failed", epochs_total=3),  # not finished: its budget is not a budget trained
            run(L, "lw", 0, epochs_total=9, in_round_events=1), run(L, "long", 0, epochs_total=9),
            run(L, "long", 1, epochs_total=None)]
    t = by_hand(["long", "lw"], {"long": {S: {"lw": TRAILS}, L: {"lw": LEVEL}}}, combos=TWO)
    col = Collected(Path("."), runs, None, ["long", "lw"], loose=True)
    a = answer(t, col)
    assert a.focus == "lw" and a.scope == "toy, cnn, no label noise"
    assert a.items == [
        ("500 examples", "lw trails long by 2.00 points [1.00, 3.00] (3 seeds). Epochs trained: long 9, lw 3; these "
                         "runs are not compute-matched, so a difference between them may be the extra training alone."),
        ("2,000 examples", "lw is level with the compute-matched long (+1.00 [-1.00, +3.00]) (3 seeds). "
                           "Compute-matched: every run trained 9 epochs.")]
    assert a.closing == ["**lw** never acted in 1 of its 3 finished runs (0 in-round events in result.json): those "
                         "runs trained as if without it."]
    # a study fixes the budgets: no epochs sentence, long is compute-matched
    col.loose = False
    assert [text for _, text in answer(t, col).items] == [
        "lw trails the compute-matched long by 2.00 points [1.00, 3.00] (3 seeds).",
        "lw is level with the compute-matched long (+1.00 [-1.00, +3.00]) (3 seeds)."]
    assert answer(t).items == answer(t, col).items and answer(t).closing == []


def test_the_epochs_each_method_trained_and_whether_they_match():
    from reinitlab.report.answer import budget_sentence, epochs_trained
    from reinitlab.report.collect import Collected
    runs = [record(S, "lw", 0, epochs_total=9), record(S, "lw", 1, epochs_total=3), record(S, "lw", 2, epochs_total=6),
            record(S, "lw", 3, epochs_total=9),
            record(S, "long", 0, epochs_total=9), record(S, "baseline", 0, "diverged", epochs_total=1),
            record(S, "baseline", 1, epochs_total=3), record(S, "fc", 0, epochs_total="9"),
            record(L, "fc", 0, epochs_total=5)]
    col = Collected(Path("."), runs, None, ["baseline", "long", "fc", "lw"], loose=True)
    # finished runs of this combination with a whole number of epochs, each budget once, in order
    budgets = epochs_trained(col, S)
    assert budgets == {"lw": [3, 6, 9], "long": [9], "baseline": [3]}
    assert epochs_trained(col, L) == {"fc": [5]}
    assert budget_sentence(budgets, ["baseline", "long", "fc", "lw"]) == (
        "Epochs trained: baseline 3, long 9, lw 3-9; these runs are not compute-matched, so a difference between "
        "them may be the extra training alone.")
    assert budget_sentence({"lw": [3], "long": [3], "ke": [9]}, ["long", "lw"]) == \
        "Compute-matched: every run trained 3 epochs."  # ke is not among the methods shown
    assert budget_sentence({"lw": [3], "ke": [9]}, ["long", "lw"]) == ""  # one method: nothing compared
    assert budget_sentence({}, ["long", "lw"]) == ""


def test_a_method_that_never_acted_is_named_with_how_often():
    from reinitlab.report.answer import never_acted
    from reinitlab.report.collect import Collected
    runs = [record(S, "swr", 0, in_round_events=0), record(S, "swr", 1, in_round_events=4),
            record(L, "swr", 0, in_round_events=0), record(S, "swr", 2, "failed", in_round_events=0),
            record(S, "redo", 0, in_round_events=0), record(S, "sp", 0, in_round_events=3),
            record(S, "lw", 0), record(S, "lw", 1, in_round_events=None)]
    col = Collected(Path("."), runs, None, ["lw", "redo", "sp", "swr"])
    assert never_acted(col) == [
        "**swr** never acted in 2 of its 3 finished runs (0 in-round events in result.json): those runs trained as "
        "if without it.",
        "**redo** never acted in 1 of its 1 finished run (0 in-round events in result.json): those runs trained as "
        "if without it."]


def test_the_seed_count_is_said_once_where_every_clause_shares_it():
    from reinitlab.report.answer import _focus_sentence
    two_b, two_l = PairedDiff(0.02, 0.01, 0.03, 2, 0.01), PairedDiff(0.01, -0.01, 0.03, 2, 0.3)
    one = PairedDiff(0.015, math.nan, math.nan, 1, math.nan)
    assert _focus_sentence("lw", [("long", two_l), ("baseline", two_b)]) == (
        "lw is level with the compute-matched long (+1.00 [-1.00, +3.00]) and beats baseline by 2.00 points "
        "[1.00, 3.00] (2 seeds).")
    assert _focus_sentence("lw", [("baseline", two_b)]) == "lw beats baseline by 2.00 points [1.00, 3.00] (2 seeds)."
    assert _focus_sentence("lw", [("long", one), ("baseline", one)]) == (
        "lw is 1.50 points above the compute-matched long (1 seed, no interval) and is 1.50 points above baseline "
        "(1 seed, no interval).")
    assert _focus_sentence("lw", [("long", one), ("baseline", two_b)]) == (  # the single pair has no count to say
        "lw is 1.50 points above the compute-matched long (1 seed, no interval) and beats baseline by 2.00 points "
        "[1.00, 3.00] (2 seeds).")
    assert _focus_sentence("lw", [("long", LEVEL), ("baseline", two_l)]) == (
        "lw is level with the compute-matched long (+1.00 [-1.00, +3.00]) (3 seeds) and with baseline "
        "(+1.00 [-1.00, +3.00]) (2 seeds).")


def test_two_seeds_have_an_interval_and_a_single_zero_is_above():
    two = PairedDiff(-0.02, -0.03, -0.01, 2, 0.01)
    assert clause(two, "baseline") == "trails baseline by 2.00 points [1.00, 3.00]"
    assert clause(PairedDiff(0.0, math.nan, math.nan, 1, math.nan), "baseline") == \
        "is 0.00 points above baseline (1 seed, no interval)"
    # under one point is still a win where the interval says so (the points are not the test)
    assert clause(PairedDiff(0.005, 0.001, 0.009, 3, 0.03), "baseline") == "beats baseline by 0.50 points [0.10, 0.90]"
