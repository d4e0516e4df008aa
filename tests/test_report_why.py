"""The report's "why" section on synthetic run folders whose analysis.json files are written by hand:
mean ± SE (n) and the seed-paired differences vs baseline and vs long of each topic, the fallback to
the final-round diagnostics, the per-round table, the memorization topic only where there is label
noise, and the files (summary.md, report.html, one decodable PNG per topic)."""
import io
import math

import pytest
from PIL import Image
from why_common import A, B, N, make_why_study

from reinitlab.paper.claims import lower_groups
from reinitlab.report import make_report
from reinitlab.report.collect import collect
from reinitlab.report.values import DIAGNOSTICS, load
from reinitlab.report.why import compute, fmt_paired, fmt_stat

T2 = 4.302652729911275  # Student t, 2 degrees of freedom, 97.5%


@pytest.fixture
def why_study(tmp_path):
    return make_why_study(tmp_path)


def _row(why, topic, combo, label):
    t = next(t for t in why.topics if t.key == topic)
    return next(r for r in t.rows if r.combo == combo and r.metric.label == label)


def test_margin_statistics_by_hand(why_study):
    why = compute(collect(why_study))
    row = _row(why, "margins", A, "margin median")
    # baseline 1.0, 1.5, 2.0: mean 1.5, sd 0.5, SE 0.5 / sqrt(3)
    s = row.cells["baseline"]
    assert (s.mean, s.n) == (1.5, 3) and s.se == pytest.approx(0.5 / math.sqrt(3))
    assert fmt_stat(row.metric, s) == "1.5 ± 0.2887 (3)"
    # lw - baseline per seed: 1.0, 0.5, 1.5 -> mean 1, SE 0.5/sqrt(3), interval 1 ± t(2) * SE
    d = row.diffs["baseline"]["lw"]
    half = T2 * 0.5 / math.sqrt(3)
    assert d.n == 3 and d.mean == pytest.approx(1.0)
    assert (d.lo, d.hi) == (pytest.approx(1 - half), pytest.approx(1 + half))
    assert fmt_paired(row.metric, d) == "+1 [-0.242, +2.24] (3)"
    # lw - long per seed: 0.8, 0.8, 2.3 -> mean 1.3, sd sqrt(0.75), SE 0.5; vs long also for baseline (mirror)
    d = row.diffs["long"]["lw"]
    assert d.mean == pytest.approx(1.3) and d.hi - d.mean == pytest.approx(T2 * 0.5)
    assert row.diffs["long"]["baseline"].mean == pytest.approx(0.3)  # -0.2, 0.3, 0.8
    assert row.sources == {"analysis.json"}


def test_norms_flatness_and_interval_excluding_zero(why_study):
    why = compute(collect(why_study))
    frob = _row(why, "norms", A, "Frobenius norm, all parameters")
    d = frob.diffs["baseline"]["lw"]  # 9,10,11 - 10,11,12 = -1 every seed: no spread, a point interval
    assert (d.mean, d.lo, d.hi, d.p) == (-1.0, -1.0, -1.0, 0.0) and d.excludes_zero
    assert fmt_paired(frob.metric, d) == "-1 [-1, -1] (3) *"
    inc = _row(why, "flatness", A, "loss increase, sigma 0.05")
    d = inc.diffs["baseline"]["lw"]  # -0.1, -0.1, -0.2
    assert d.mean == pytest.approx(-0.4 / 3)
    labels = [r.metric.label for t in why.topics if t.key == "flatness" for r in t.rows if r.combo == A]
    # sigma 0 (increase 0 by construction) is not a row; each sigma > 0 and the Hessian are
    assert labels == ["loss increase, sigma 0.05", "loss increase, sigma 0.1", "top Hessian eigenvalue"]


def test_diagnostics_stand_in_where_analysis_json_is_missing(why_study):
    data = load(collect(why_study))
    why = compute(collect(why_study), data)
    row = _row(why, "margins", B, "margin median")
    assert row.sources == {DIAGNOSTICS}
    assert row.cells["lw"].mean == pytest.approx(1.0)
    assert row.diffs["baseline"]["lw"].mean == pytest.approx(0.4)
    # numbers only the analyses have (flatness) leave the combination out of that topic
    assert all(r.combo != B for t in why.topics if t.key == "flatness" for r in t.rows)


def test_per_round_table_and_memorization_only_with_label_noise(why_study):
    why = compute(collect(why_study))
    norms = next(t for t in why.topics if t.key == "norms")
    rows = [r for r in norms.round_rows if r.combo == A and r.metric.key == "diagnostics.frobenius_total"]
    assert [r.round for r in rows] == [0, 1, 2, 3]
    # baseline and long train in one round: a value only at round 0; lw's round 1 is half its final
    assert set(rows[0].cells) == {"baseline", "long", "lw"} and set(rows[1].cells) == {"lw"}
    assert rows[1].cells["lw"].mean == pytest.approx(10.0 * 2 / 4)
    mem = next(t for t in why.topics if t.key == "memorization")
    assert {r.combo for r in mem.rows} == {N}
    frac = next(r for r in mem.rows if r.metric.key == "memorization.memorized_fraction")
    assert fmt_stat(frac.metric, frac.cells["lw"]) == "40.00 ± 5.77 (3)"  # percent
    assert fmt_paired(frac.metric, frac.diffs["baseline"]["lw"]) == "-30.00 [-30.00, -30.00] (3) *"


def test_lower_groups():
    assert lower_groups(["stem", "block1", "block2", "block3", "head"]) == ["stem", "block1"]
    assert lower_groups(["stem", "b1", "b2", "head"]) == ["stem", "b1"]
    assert lower_groups(["stem", "head"]) == ["stem"]


def test_report_files_hold_the_why_section(why_study):
    rep = make_report(why_study)
    md = (why_study / "summary.md").read_text()
    for title in ("## Why: training margins", "## Why: weight norms and the margin bound", "## Why: flatness",
                  "## Why: memorization under label noise", "## Why: where general features live (layer probes)",
                  "### Training margins: paired difference vs baseline", "## Verdict on the paper's claims"):
        assert title in md, title
    # one column names the combination by what differs (the why tables stay narrow)
    assert "| 100 examples, no label noise | margin median | 1.5 ± 0.2887 (3) |" in md
    assert "| 200 examples, no label noise | margin median † |" in md  # from the diagnostics, marked
    why_pngs = sorted(p.name for p in rep.files if p.name.startswith("why_"))
    assert why_pngs == ["why_flatness_toy.png", "why_margins_toy.png", "why_memorization_toy.png",
                        "why_norms_toy.png", "why_probes_toy.png"]
    for p in rep.files:
        if p.suffix == ".png":
            with Image.open(io.BytesIO(p.read_bytes())) as im:
                assert im.size[0] > 200 and im.size[1] > 200
            assert f"plots/{p.name}" in md
    html = (why_study / "report.html").read_text()
    assert html.count("<figure>") == 2 + 5 and "Why: flatness" in html
    assert rep.markdown == md
