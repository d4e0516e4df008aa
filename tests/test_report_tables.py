"""The report on synthetic run folders with hand-checkable numbers: tables, statistics, listing of
failed/diverged/unfinished runs, results.csv, summary.md and the plots."""
import base64
import csv
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from reinitlab.cli import main
from reinitlab.report import make_report
from reinitlab.report.collect import Combo, collect
from reinitlab.report.tables import compute, fmt_cell, fmt_diff

A = Combo("toy", "cnn", 100, 0.0)
B = Combo("toy", "cnn", 200, 0.0)
ACC = {
    A: {"baseline": [0.50, 0.52, 0.54], "long": [0.55, 0.55, 0.58], "lw": [0.60, 0.61, 0.65]},
    B: {"baseline": [0.70, 0.70, 0.70], "long": [0.72, 0.71, 0.73], "lw": [0.71, "diverged", "failed"]},
}


def run_id(combo, method, seed):
    d, a, n, p = combo[:4]
    return f"{d}/{a}/n{n}/noise{p:g}/{method}/seed{seed}"


def write_run(root: Path, combo, method, seed, acc):
    d, a, n, p = combo[:4]
    folder = root / "runs" / run_id(combo, method, seed)
    folder.mkdir(parents=True)
    rounds = 0 if method in ("baseline", "long") else 2
    cfg = {"dataset": d, "arch": a, "method": method, "train_size": n, "label_noise": p, "seed": seed,
           "epochs": 2, "rounds": 2, "width": 0.5}
    (folder / "config.json").write_text(json.dumps(cfg))
    if acc == "failed":
        (folder / "error.json").write_text(json.dumps({"status": "failed", "reason": "RuntimeError: boom\nmore"}))
        return
    if acc == "diverged":
        res = {"status": "diverged", "test_acc": None, "per_round": [], "epochs_total": 3,
               "diverged_at": {"round": 1, "epoch": 1}}
    else:
        per_round = [{"round": r, "test_acc": acc - 0.01 * (rounds - r), "epochs_total": 2 * (r + 1)}
                     for r in range(rounds + 1)]
        res = {"status": "finished", "test_acc": acc, "val_acc": acc, "train_acc": 1.0, "rounds": rounds,
               "epochs_total": 6 if method != "baseline" else 2, "seconds": 1.5, "per_round": per_round}
    (folder / "result.json").write_text(json.dumps(res))


@pytest.fixture
def study(tmp_path):
    for combo, methods in ACC.items():
        for method, accs in methods.items():
            for seed, acc in enumerate(accs):
                write_run(tmp_path, combo, method, seed, acc)
    # one run listed by the study but never started, one interrupted (config.json only)
    pending = {"id": run_id(A, "baseline", 3), "axes": {"dataset": "toy", "arch": "cnn", "train_size": 100,
                                                          "label_noise": 0.0, "method": "baseline", "seed": 3},
               "config": {"dataset": "toy", "arch": "cnn", "method": "baseline", "train_size": 100,
                          "label_noise": 0.0, "seed": 3}}
    (tmp_path / "runs.json").write_text(json.dumps({"runs": [pending]}))
    partial = tmp_path / "runs" / run_id(A, "lw", 3)
    partial.mkdir(parents=True)
    (partial / "config.json").write_text(json.dumps({"dataset": "toy", "arch": "cnn", "method": "lw",
                                                     "train_size": 100, "label_noise": 0.0, "seed": 3}))
    (tmp_path / "study.json").write_text(json.dumps({"definition": {"name": "toy-study",
                                                                    "methods": ["baseline", "long", "lw"]}}))
    return tmp_path


def test_collect_reads_every_state(study):
    col = collect(study)
    status = {r.id: r.status for r in col.runs}
    assert len(status) == 20
    assert status[run_id(B, "lw", 1)] == "diverged"
    assert status[run_id(B, "lw", 2)] == "failed"
    assert status[run_id(A, "baseline", 3)] == "pending"
    assert status[run_id(A, "lw", 3)] == "partial"
    assert sum(s == "finished" for s in status.values()) == 16
    assert col.methods == ["baseline", "long", "lw"]


def test_cells_are_mean_se_n_over_finished_runs_only(study):
    t = compute(collect(study))
    assert t.combos == [A, B]
    assert fmt_cell(t.cells[A]["baseline"]) == "52.00 ± 1.15 (3) [1 unfinished]"  # se = 2/sqrt(3)
    assert fmt_cell(t.cells[A]["long"]) == "56.00 ± 1.00 (3)"
    assert fmt_cell(t.cells[B]["lw"]) == "71.00 (1) [1 diverged, 1 failed]"
    assert fmt_cell(t.cells[B]["baseline"]) == "70.00 ± 0.00 (3)"


def test_paired_differences(study):
    t = compute(collect(study))
    d = t.diffs["baseline"][A]["lw"]  # differences 10, 9, 11 points
    assert d.n == 3 and d.mean == pytest.approx(0.10)
    half = 4.302652729911275 * 0.01 / 3 ** 0.5
    assert (d.lo, d.hi) == (pytest.approx(0.10 - half), pytest.approx(0.10 + half))
    assert fmt_diff(d) == "+10.00 [+7.52, +12.48] (3) *"
    assert fmt_diff(t.diffs["baseline"][B]["lw"]) == "+1.00 (1 seed)"  # only seed 0 finished for both
    assert t.diffs["long"][A]["lw"].mean == pytest.approx(0.06)
    assert "long" not in t.diffs["long"][A]


def test_sign_tests_with_holm(study):
    t = compute(collect(study))
    rows = {(r.a, r.b): r for r in t.pairs}
    assert list(rows) == [("baseline", "long"), ("baseline", "lw"), ("long", "lw")]
    bl = rows[("baseline", "long")]
    assert (bl.test.wins, bl.test.losses) == (0, 2) and bl.test.p == pytest.approx(0.5)
    lw = rows[("baseline", "lw")]
    assert (lw.test.wins, lw.test.losses) == (0, 2)
    # combination B pairs seed 0 only: long 0.72 vs lw 0.71; A: 0.56 vs 0.62
    ll = rows[("long", "lw")]
    assert (ll.test.wins, ll.test.losses, ll.test.ties) == (1, 1, 0) and ll.test.p == pytest.approx(1.0)
    assert ll.mean_diff == pytest.approx(((0.56 - 0.62) + (0.72 - 0.71)) / 2 * 100)
    assert [r.p_holm for r in t.pairs] == pytest.approx([1.0, 1.0, 1.0])  # 3 x 0.5 capped at 1


def test_problems_listed_and_counted(study):
    t = compute(collect(study))
    assert sorted(r.status for r in t.problems) == ["diverged", "failed"]
    assert sorted(r.status for r in t.unfinished) == ["partial", "pending"]
    assert t.status_counts == {"finished": 16, "diverged": 1, "failed": 1, "pending": 1, "partial": 1}


def test_make_report_writes_every_file(study):
    rep = make_report(study)
    md = (study / "summary.md").read_text()
    assert md == rep.markdown
    assert "20 runs: 16 finished, 1 diverged, 1 failed, 1 partial, 1 pending" in md
    # methods as rows, one column per combination, named by what differs between them
    assert "| method | 100 examples | 200 examples |" in md
    assert "| baseline | 52.00 ± 1.15 (3) [1 unfinished] | 70.00 ± 0.00 (3) |" in md
    assert "| lw | 62.00 ± 1.53 (3) [1 unfinished] | 71.00 (1) [1 diverged, 1 failed] |" in md
    assert "Every run: toy, cnn, no label noise." in md
    assert "RuntimeError: boom" in md and "round 1, epoch 1" in md
    # the answer in sentences, computed from the paired differences; no template bullets
    assert ("- **100 examples**: lw beats the compute-matched long by 6.00 points [" in md
            and "and beats baseline by 10.00 points [7.52, 12.48] (3 seeds)." in md)
    assert "- **200 examples**: lw is 1.00 points below the compute-matched long (1 seed, no interval)" in md
    assert "points on average over" not in md and "95% interval above 0 in" not in md
    assert md.index("## Answer") < md.index("## Settings") < md.index("## Test accuracy (%)")
    assert "| epochs | 2 | rounds | 2 | width | 0.5 |" in md  # the shared settings

    rows = list(csv.DictReader(io.StringIO((study / "results.csv").read_text())))
    assert len(rows) == 20
    by_id = {r["run"]: r for r in rows}
    assert by_id[run_id(A, "lw", 0)]["test_acc"] == "0.6"
    assert by_id[run_id(A, "lw", 0)]["width"] == "0.5"
    assert by_id[run_id(B, "lw", 2)]["status"] == "failed"
    assert by_id[run_id(B, "lw", 2)]["error"] == "RuntimeError: boom"
    assert by_id[run_id(B, "lw", 1)]["diverged_round"] == "1"
    assert by_id[run_id(A, "baseline", 3)]["status"] == "pending"

    pngs = sorted(p.name for p in (study / "plots").glob("*.png"))
    # one accuracy-per-round-vs-epochs figure (no near-duplicate per-round one); no metrics.jsonl: no curves
    assert pngs == ["acc_vs_epochs_toy.png", "acc_vs_size_toy.png"]
    for p in (study / "plots").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (study / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == 2
    for data in embedded:  # each decodes completely to the plot written to plots/
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        img.load()
        assert img.size[0] > 300 and img.size[1] > 200
    assert "52.00 ± 1.15 (3)" in html and html.count("<script>") == 1 and "<script src" not in html
    assert "http" not in html.split("</style>")[1]  # nothing from the network


def test_cli_prints_tables_and_refuses_non_study(study, tmp_path_factory, capsys):
    assert main(["report", str(study)]) == 0
    out = capsys.readouterr().out
    assert "## Sign test across combinations" in out and "| baseline | lw | 0 | 2 | 0 |" in out
    empty = tmp_path_factory.mktemp("empty")
    assert main(["report", str(empty)]) == 2
    assert "no run folders" in capsys.readouterr().err
    assert list(empty.iterdir()) == []
