"""`report`, `plot` and `export` on what they should not merge: two folders that claim one run with
different results, and run folders whose files cannot be read, are refused in one line naming them
(or left out, named, with --skip-bad); a report folder holds the report alone, written fresh; a
loose comparison states each run's budget and whether the runs are compute-matched."""
import json
import pickle
import shutil

import pytest
import torch
from test_report_loose import train_folder

from reinitlab.cli import main
from reinitlab.report import make_report
from reinitlab.util.errors import UserError

MARKER = "reinitlab-test-payload-ran"


class Payload:
    """Unpickled, it would create a file; no test may ever see that file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def plant_torch(path, marker):
    torch.save({"model": {"w": torch.zeros(2)}, "extra": Payload(marker)}, path)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def broken_metrics(d):
    lines = (d / "metrics.jsonl").read_text().splitlines(keepends=True)
    (d / "metrics.jsonl").write_text(lines[0] + "{not json\n" + "".join(lines[1:]))


def model_pt(d):
    torch.save({"model": {"w": torch.zeros(2)}, "reinit": {}, "config": {}}, d / "model.pt")


# damage -> (what it does to a run folder, the file the line names)
DAMAGE = {
    "config.json torn": (lambda d, m: truncate(d / "config.json"), "config.json: unreadable"),
    "config.json a list": (lambda d, m: (d / "config.json").write_text("[1, 2]"), "config.json: holds a list"),
    # valid JSON, but not a run's config: once read as a group whose every setting is None
    "config.json {}": (lambda d, m: (d / "config.json").write_text("{}"),
                       "config.json: not a run config: it lacks dataset, arch, method, seed"),
    "config.json foreign keys": (lambda d, m: (d / "config.json").write_text('{"not": "a config"}'),
                                 "config.json: unknown run setting 'not'"),
    "config.json a wrong type": (lambda d, m: (d / "config.json").write_text('{"method": 5}'),
                                 "config.json: method=5 has the wrong type"),
    "result.json torn": (lambda d, m: truncate(d / "result.json"), "result.json: unreadable"),
    "result.json foreign": (lambda d, m: (d / "result.json").write_text('{"status": "maybe"}'),
                            "result.json: not a finished run's result"),
    "metrics.jsonl broken line": (lambda d, m: broken_metrics(d), "metrics.jsonl: a broken line"),
    "analysis.json torn": (lambda d, m: (d / "analysis.json").write_text('{"numbers": '), "analysis.json: unreadable"),
    "error.json torn": (lambda d, m: (d / "error.json").write_text("{"), "error.json: unreadable"),
    "model.pt truncated": (lambda d, m: (model_pt(d), truncate(d / "model.pt")), "model.pt: not a complete checkpoint"),
    "model.pt with code": (lambda d, m: plant_torch(d / "model.pt", m), "model.pt: holds code, not only data"),
    "ckpt.pt with code": (lambda d, m: plant_torch(d / "ckpt.pt", m), "ckpt.pt: holds code, not only data"),
}


@pytest.fixture
def pair(tmp_path):
    a = train_folder(tmp_path / "runs" / "a", "lw", acc=0.62)
    b = train_folder(tmp_path / "runs" / "b", "baseline", acc=0.55)
    for d in (a, b):
        model_pt(d)
        (d / "split.json").write_text("{}")  # export finds run folders by config.json and split.json
    return a, b


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_report_plot_and_export_refuse_a_damaged_folder_naming_the_file(tmp_path, pair, capsys, damage):
    a, b = pair
    do, named = DAMAGE[damage]
    marker = tmp_path / MARKER
    do(a, marker)
    for argv in (["report", str(a), str(b), "--out", str(tmp_path / "rep")],
                 ["plot", str(a), str(b), "--out", str(tmp_path / "c.png")],
                 ["export", "tensorboard", str(tmp_path / "runs"), "--to", str(tmp_path / "tb")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{a}/{named}" in err, (argv[0], err)
    assert not (tmp_path / "rep").exists() and not (tmp_path / "c.png").exists() and not (tmp_path / "tb").exists()
    assert not marker.exists()  # nothing in a planted file ran
    # --skip-bad: the report goes on without the folder and names it, on the terminal and in the report
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "rep"), "--skip-bad", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"reinitlab: warning: left out of the report: {a}/{named}" in err
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert md.startswith("# 1 runs compared") and f"{a}/{named}" in md
    assert not marker.exists()


def test_two_copies_of_a_run_with_different_results_are_refused(tmp_path, capsys):
    """The issue's case: a run folder copied and its result changed; the report used to count 1 seed
    and keep whichever came last."""
    a = train_folder(tmp_path / "lw", "lw", acc=0.1465)
    shutil.copytree(a, tmp_path / "lw_copy")
    res = json.loads((tmp_path / "lw_copy/result.json").read_text())
    (tmp_path / "lw_copy/result.json").write_text(json.dumps({**res, "test_acc": 0.6948}))
    base = train_folder(tmp_path / "base", "baseline", acc=0.5)
    argv = ["report", str(a), str(tmp_path / "lw_copy"), str(base), "--out", str(tmp_path / "rep")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (f"{a} and {tmp_path / 'lw_copy'} claim the same run (lw, seed 0, the same settings) with different "
            "results (test_acc 14.65% vs 69.48%); give one of them") in err
    assert not (tmp_path / "rep").exists()
    with pytest.warns(UserWarning, match="left out of the report: .* claim the same run"):
        rep = make_report([a, tmp_path / "lw_copy", base], tmp_path / "rep", skip_bad=True)
    assert {m for c in rep.tables.cells.values() for m in c} == {"baseline"}  # both copies left out
    assert "claim the same run" in rep.markdown


@pytest.mark.filterwarnings("always")  # each call warns again (in one process, a warning shows once per place)
def test_skip_bad_that_leaves_no_run_writes_nothing(tmp_path, capsys):
    """--skip-bad that left out every run once wrote a report of 0 runs and exited 0."""
    a = train_folder(tmp_path / "lw", "lw", acc=0.1465)
    shutil.copytree(a, tmp_path / "lw_copy")
    res = json.loads((tmp_path / "lw_copy/result.json").read_text())
    (tmp_path / "lw_copy/result.json").write_text(json.dumps({**res, "test_acc": 0.6948}))
    b = train_folder(tmp_path / "base", "baseline")
    (b / "config.json").write_text("{}")
    rep = tmp_path / "rep"
    # (folders given, folders left out, warnings: one per conflict and one per unreadable folder)
    for folders, n, warned in (([a, tmp_path / "lw_copy"], 2, 1), ([b], 1, 1), ([a, tmp_path / "lw_copy", b], 3, 2)):
        assert main(["report", *map(str, folders), "--out", str(rep), "--skip-bad", "--quiet"]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert lines[-1] == (f"reinitlab: no run left to report after skipping {n} bad folder{'s' * (n > 1)} "
                             "(--skip-bad); nothing written")
        assert len(lines) == 1 + warned and all("warning: left out of the report: " in x for x in lines[:-1])
        assert not rep.exists()
    # the default folder (<common parent>/report) is not made either
    assert main(["report", str(b), "--skip-bad", "--quiet"]) == 2
    assert not (tmp_path / "report").exists()
    # a study whose every run folder is left out
    study = tmp_path / "study"
    d = train_folder(study / "runs" / "toy" / "lw" / "seed0", "lw")
    (d / "config.json").write_text('{"method": 5}')
    (study / "study.json").write_text(json.dumps({"definition": {"name": "s", "methods": ["lw"]}}))
    before = sorted(p.name for p in study.iterdir())
    with pytest.warns(UserWarning, match="left out of the report"), \
            pytest.raises(UserError, match="^no run left to report after skipping 1 bad folder "):
        make_report(study, skip_bad=True)
    assert sorted(p.name for p in study.iterdir()) == before


def test_two_copies_with_the_same_results_count_once_and_say_so(tmp_path):
    a = train_folder(tmp_path / "lw", "lw", acc=0.62)
    shutil.copytree(a, tmp_path / "lw_copy")
    res = json.loads((tmp_path / "lw_copy/result.json").read_text())
    (tmp_path / "lw_copy/result.json").write_text(json.dumps({**res, "seconds": 99.0}))  # time is no finding
    rep = make_report([a, tmp_path / "lw_copy"], tmp_path / "rep")
    (cell,) = [c["lw"] for c in rep.tables.cells.values()]
    assert cell.stat.n == 1
    assert f"{tmp_path / 'lw_copy'}: the same run as {a} with the same results: counted once" in rep.markdown


def test_a_report_folder_is_written_fresh(tmp_path):
    out = tmp_path / "rep"
    a = train_folder(tmp_path / "a", "lw", acc=0.6)
    b = train_folder(tmp_path / "b", "baseline", acc=0.5)
    first = make_report([a, b], out)
    stale = out / "plots" / "acc_vs_epochs_an-earlier-dataset.png"
    stale.write_bytes((out / "plots" / "curves_toy.png").read_bytes())  # a figure of an earlier comparison
    (out / "plots" / ".results.csv.x.tmp").write_text("")  # a killed write's debris
    second = make_report([a, b], out)
    assert not stale.exists() and not (out / "plots" / ".results.csv.x.tmp").exists()
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        p.name for p in second.files if p.parent.name == "plots")
    assert {p.name for p in first.files} == {p.name for p in second.files}


@pytest.mark.parametrize("foreign", ["notes.txt", "runs/", "plots/sub/"])
def test_a_report_folder_that_holds_something_else_is_refused(tmp_path, capsys, foreign):
    out = tmp_path / "rep"
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    if foreign.endswith("/"):
        (out / foreign).mkdir(parents=True, exist_ok=True)
    else:
        (out / foreign).write_text("mine")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    a = train_folder(tmp_path / "a", "lw")
    assert main(["report", str(a), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "which is not part of a reinitlab report" in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before


def budget_runs(tmp_path, long_epochs: int):
    """lw: 2 rounds after round 0 of 3 epochs (9 trained), baseline 3, long `long_epochs`: as
    `train --rounds 2 --epochs 3` writes them, so they share one combination."""
    lw = train_folder(tmp_path / "lw", "lw", acc=0.62, rounds=2, epochs=3)
    base = train_folder(tmp_path / "base", "baseline", acc=0.55, rounds=2, epochs=3)
    long = train_folder(tmp_path / "long", "long", acc=0.60, rounds=2, epochs=3)
    res = json.loads((long / "result.json").read_text())
    (long / "result.json").write_text(json.dumps({**res, "epochs_total": long_epochs}))
    return lw, base, long


def answer_of(md: str) -> str:
    return md.split("## Answer", 1)[1].split("\n## ", 1)[0]


def test_a_loose_comparison_states_budgets_and_flags_unmatched_ones(tmp_path):
    lw = train_folder(tmp_path / "lw", "lw", acc=0.6465, rounds=2, epochs=3)
    base = train_folder(tmp_path / "base", "baseline", acc=0.50, rounds=2, epochs=3)
    text = answer_of(make_report([lw, base], tmp_path / "rep").markdown)
    assert "lw is 14.65 points above baseline (1 seed, no interval)." in text
    assert ("Epochs trained: baseline 3, lw 9; these runs are not compute-matched, so a difference between them "
            "may be the extra training alone.") in text


@pytest.mark.parametrize("long_epochs,matched", [(9, True), (6, False)])
def test_long_is_called_compute_matched_only_when_it_is(tmp_path, long_epochs, matched):
    lw, base, long = budget_runs(tmp_path, long_epochs)
    text = answer_of(make_report([lw, base, long], tmp_path / "rep").markdown)
    assert ("the compute-matched long" in text) is matched
    assert f"long {long_epochs}" in text and "lw 9" in text and "not compute-matched" in text  # baseline's 3
    text = answer_of(make_report([lw, long], tmp_path / "rep2").markdown)
    assert ("Compute-matched: every run trained 9 epochs." in text) is matched


def test_a_study_report_refuses_what_it_cannot_read_around(tmp_path):
    """A study redoes a run whose result.json is torn and lists every run's config in runs.json, so
    its report reads around those (tests/test_reliability_damage.py); a model.pt holding code, or the
    torn config.json of a run that runs.json does not list, it cannot."""
    study = tmp_path / "study"
    d = train_folder(study / "runs" / "toy" / "lw" / "seed0", "lw")
    train_folder(study / "runs" / "toy" / "baseline" / "seed0", "baseline")
    (study / "study.json").write_text(json.dumps({"definition": {"name": "s", "methods": ["baseline", "lw"]}}))
    marker = tmp_path / MARKER
    plant_torch(d / "model.pt", marker)
    with pytest.raises(UserError, match=f"{d}/model.pt: holds code, not only data"):
        make_report(study)
    (d / "model.pt").unlink()
    truncate(d / "config.json")
    with pytest.raises(UserError, match=f"{d}/config.json: unreadable"):
        make_report(study)
    with pytest.warns(UserWarning, match="left out of the report: .*config.json: unreadable"):
        rep = make_report(study, skip_bad=True)
    assert {m for c in rep.tables.cells.values() for m in c} == {"baseline"}
    assert not marker.exists()


def test_unpickling_the_payload_would_have_run_it(tmp_path):
    """The guard of the tests above: the planted file is a real payload (a plain torch.load runs it)."""
    marker = tmp_path / MARKER
    plant_torch(tmp_path / "x.pt", marker)
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.exists()
    assert pickle.dumps(Payload(marker))
