"""`reinitlab report RUN_DIR [RUN_DIR ...]`: loose run folders (train outputs, folders holding them,
quoted globs) compared side by side, and the per-epoch training curves from metrics.jsonl, in the
report and as `reinitlab plot`."""
import json
import math
from pathlib import Path

import pytest

from reinitlab.cli import main
from reinitlab.report import make_report
from reinitlab.report.collect import collect_runs, find_run_folders
from reinitlab.report.curves import mean_curve, read_curve, resets
from reinitlab.util.errors import UserError


def train_folder(folder: Path, method: str, seed: int = 0, acc: float = 0.5, rounds: int = 2, epochs: int = 2,
                 lr: float = 0.05, losses=None) -> Path:
    """A finished `train` output: config.json, result.json and metrics.jsonl (one line per epoch)."""
    folder.mkdir(parents=True)
    n_rounds = 0 if method in ("baseline", "long") else rounds
    cfg = {"dataset": "toy", "arch": "cnn", "method": method, "method_options": {}, "train_size": 100,
           "label_noise": 0.0, "seed": seed, "data_seed": seed, "epochs": epochs, "rounds": rounds, "lr": lr,
           "batch_size": 128, "width": 0.5, "weight_decay": 5e-4, "augment": "none", "precision": "fp32",
           "threads": 1}
    (folder / "config.json").write_text(json.dumps(cfg))
    rows, total = [], 0
    for r in range(n_rounds + 1):
        for e in range(epochs):
            total += 1
            loss = losses[total - 1] if losses else 2.0 / total
            rows.append({"round": r, "epoch": e + 1, "epoch_total": total, "train_loss": loss, "train_acc": 0.1 * total,
                         "val_loss": loss + 0.1, "val_acc": 0.05 * total})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    per_round = [{"round": r, "test_acc": acc, "epochs_total": epochs * (r + 1)} for r in range(n_rounds + 1)]
    (folder / "result.json").write_text(json.dumps({
        "status": "finished", "test_acc": acc, "val_acc": acc, "train_acc": 0.9, "rounds": n_rounds,
        "epochs_total": total, "seconds": 2.0, "per_round": per_round}))
    return folder


def test_two_train_outputs_are_compared(tmp_path, capsys):
    a = train_folder(tmp_path / "runA", "lw", acc=0.62)
    b = train_folder(tmp_path / "runB", "baseline", acc=0.55)
    out = tmp_path / "cmp"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    md = capsys.readouterr().out
    assert (out / "report.html").exists() and (out / "summary.md").read_text() == md.rstrip("\n") + "\n"
    assert md.startswith("# 2 runs compared")
    assert "## Runs compared" in md
    assert "| runA | lw | finished | 62.00 | 62.00 | 90.00 | 2 | 6 | 2.0 |" in md
    assert "| runB | baseline | finished | 55.00 | 55.00 | 90.00 | 0 | 2 | 2.0 |" in md
    # only the method differs: the runs pair, and the answer says so in words
    assert "lw is 7.00 points above baseline (1 seed, no interval)." in md
    assert "| width | 0.5 | lr | 0.05 | weight_decay | 0.0005 |" in md  # the shared settings are shown
    assert "## Training curves" in md and (out / "plots" / "curves_toy.png").exists()
    html = (out / "report.html").read_text()
    assert ">Runs compared</h2>" in html and ">Training curves</h2>" in html
    assert not (a / "report.html").exists() and not (a / "plots").exists()  # the run folders stay as they were


def test_runs_that_differ_in_a_setting_are_never_paired(tmp_path):
    train_folder(tmp_path / "runs" / "lw-lr05", "lw", lr=0.05, acc=0.6)
    train_folder(tmp_path / "runs" / "base-lr1", "baseline", lr=0.1, acc=0.5)
    rep = make_report([tmp_path / "runs"])  # a folder holding run folders
    assert (tmp_path / "runs" / "report" / "report.html").exists()  # default: next to the runs
    t = rep.tables
    assert [dict(c.settings) for c in t.combos] == [{"lr": 0.05}, {"lr": 0.1}]
    assert not any(t.diffs.get("baseline", {}).get(c, {}).get("lw") for c in t.combos)
    md = rep.markdown
    assert "Differ between runs: **lr** (0.1, 0.05)." in md
    assert "| lw-lr05 | lw | 0.05 | finished |" in md


def test_find_run_folders_reads_globs_and_refuses_what_is_not_a_run(tmp_path):
    for name in ("r1", "r2", "other"):
        train_folder(tmp_path / name, "lw")
    found = find_run_folders([str(tmp_path / "r*"), tmp_path / "r1"])
    assert [f.name for f in found] == ["r1", "r2"]  # each once, in order
    with pytest.raises(UserError, match="no such folder"):
        find_run_folders([tmp_path / "missing"])
    with pytest.raises(UserError, match="matches no file"):
        find_run_folders([str(tmp_path / "zz*")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run folders in it"):
        find_run_folders([tmp_path / "empty"])


def test_report_of_a_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope"), str(tmp_path / "nope2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err
    assert list(tmp_path.iterdir()) == []


def test_curves_mean_over_seeds_and_resets(tmp_path):
    f0 = train_folder(tmp_path / "s0", "lw", seed=0, losses=[2.0, 1.0, 1.5, 0.5, 1.0, 0.4])
    f1 = train_folder(tmp_path / "s1", "lw", seed=1, losses=[4.0, 3.0, 2.5, 1.5, 1.0, 0.6])
    rows0, rows1 = read_curve(f0), read_curve(f1)
    assert resets(rows0) == [2, 4]  # rounds 1 and 2 begin after epochs 2 and 4
    xs, mu, se = mean_curve([rows0, rows1], "train_loss")
    assert xs == [1, 2, 3, 4, 5, 6]
    assert mu == pytest.approx([3.0, 2.0, 2.0, 1.0, 1.0, 0.5])
    assert se[0] == pytest.approx(1.0) and se[4] == pytest.approx(0.0)  # SE of (2, 4) is 1
    xs, mu, _ = mean_curve([rows0], "val_acc", percent=True)
    assert mu[0] == pytest.approx(5.0)
    (tmp_path / "s2").mkdir()
    assert read_curve(tmp_path / "s2") == []


def test_study_report_has_curves_per_method(tmp_path):
    for seed in (0, 1):
        for m in ("baseline", "lw"):
            train_folder(tmp_path / "study" / "runs" / "toy" / "cnn" / "n100" / "noise0" / m / f"seed{seed}", m,
                         seed=seed)
    (tmp_path / "study" / "study.json").write_text(json.dumps({"definition": {"name": "c", "methods": ["baseline", "lw"]}}))
    rep = make_report(tmp_path / "study")
    assert (tmp_path / "study" / "plots" / "curves_toy.png") in rep.files
    assert "per method the mean over its finished seeds with a ± SE band (mean ± SE over 2 seeds)" in rep.markdown
    assert "## Runs compared" not in rep.markdown  # a study averages its seeds; no per-run table


def test_plot_command_draws_single_runs(tmp_path, capsys):
    a = train_folder(tmp_path / "runA", "lw")
    b = train_folder(tmp_path / "runB", "baseline")
    fig = tmp_path / "c.png"
    assert main(["plot", str(a), str(b), "--out", str(fig)]) == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(a), "--out", str(tmp_path / "c.txt")]) == 2
    assert "must end in .png, .pdf, .svg" in capsys.readouterr().err
    assert not (tmp_path / "c.txt").exists()


def test_loose_collection_keeps_diverged_out_of_means(tmp_path):
    a = train_folder(tmp_path / "a", "lw", acc=0.6)
    b = tmp_path / "b"
    train_folder(b, "lw", seed=1, acc=0.6)
    (b / "result.json").write_text(json.dumps({"status": "diverged", "test_acc": None, "per_round": [],
                                               "epochs_total": 1, "diverged_at": {"round": 0, "epoch": 1}}))
    col = collect_runs([a, b], tmp_path / "r")
    assert sorted(r.status for r in col.runs) == ["diverged", "finished"]
    rep = make_report([a, b], tmp_path / "r")
    cell = next(iter(rep.tables.cells.values()))["lw"]
    assert cell.stat.n == 1 and cell.diverged == 1 and not math.isnan(cell.stat.mean)
