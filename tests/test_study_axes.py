"""Extra axes: any run setting given as a list crosses into runs. Paths, canonical values, budgets
per (arch, R, E) with `long` compute-matched at each, study.json, results.csv, resuming, and every
bad input refused before anything is written."""
import csv
import io
import json
from pathlib import Path

import pytest

from reinitlab.cli import main
from reinitlab.methods import make_method
from reinitlab.study import Store, StudyDefinition, expand, load_definition
from reinitlab.study.definition import FIXED, value_text
from reinitlab.study.runner import check_compatible, write_definition
from reinitlab.util.errors import UserError

AXES_TOML = """
name = "axes"
datasets = ["fashion-mnist-small"]
archs = ["cnn"]
methods = ["baseline", "long", "lw"]
train_sizes = [100]
label_noise = [0.0]
seeds = [0]
width = 0.25
epochs = 1
rounds = [1, 2]
weight_decay = [5e-4, 5e-3]
"""


def axes_file(tmp_path, text=AXES_TOML) -> Path:
    p = tmp_path / "axes.toml"
    p.write_text(text)
    return p


@pytest.fixture(autouse=True)
def fake_estimate(monkeypatch):
    """Plans without probing this machine: 10 s per epoch of the run's schedule."""
    import reinitlab.bench.throughput as tp

    def estimate_seconds(cfg):
        return 10.0 * sum(make_method(cfg.method).epochs(cfg.rounds, cfg.epochs))
    monkeypatch.setattr(tp, "estimate_seconds", estimate_seconds)


def test_extra_axes_cross_into_runs_with_their_values_in_the_path(tmp_path):
    defn = load_definition(str(axes_file(tmp_path)))
    assert defn.extra_axes == {"rounds": [1, 2], "weight_decay": [0.0005, 0.005]}
    assert "rounds" not in defn.settings and "weight_decay" not in defn.settings
    runs, budgets = expand(defn)
    assert len(runs) == 2 * 2 * 3 and len({r.id for r in runs}) == 12
    assert runs[0].id == "fashion-mnist-small/cnn/n100/noise0/rounds=1,weight_decay=0.0005/baseline/seed0"
    combos = {(r.axes["rounds"], r.axes["weight_decay"], r.axes["method"]) for r in runs}
    assert combos == {(R, wd, m) for R in (1, 2) for wd in (5e-4, 5e-3) for m in ("baseline", "long", "lw")}
    for r in runs:  # the config a run trains with holds its axis values
        assert r.config["rounds"] == r.axes["rounds"] and r.config["weight_decay"] == r.axes["weight_decay"]
    # long is compute-matched at every budget: (R+1)*E epochs in one round, the reinit methods R+1 rounds of E
    for r in runs:
        cfg = r.train_config(threads=1)
        plan = make_method(cfg.method).epochs(cfg.rounds, cfg.epochs)
        expected = {"baseline": [1], "long": [cfg.rounds + 1], "lw": [1] * (cfg.rounds + 1)}[cfg.method]
        assert plan == expected, r.id
    assert {k: (b.rounds, b.epochs, b.reinit_epochs) for k, b in budgets.items()} == \
        {"cnn R=1": (1, 1, 2), "cnn R=2": (2, 1, 3)}


def test_values_are_canonical_so_one_number_is_one_folder(tmp_path):
    a = expand(load_definition(str(axes_file(tmp_path)), ["weight_decay=[5e-3]", "width=[1]"]))[0]
    b = expand(load_definition(str(axes_file(tmp_path)), ["weight_decay=[0.005]", "width=[1.0]"]))[0]
    assert [r.id for r in a] == [r.id for r in b]
    assert a[0].id == "fashion-mnist-small/cnn/n100/noise0/rounds=1,weight_decay=0.005,width=1/baseline/seed0"
    assert [value_text(v) for v in (5e-3, 1.0, 0.1, 1e-5, True, 3, "flip+crop")] == \
        ["0.005", "1", "0.1", "1e-05", "true", "3", "flip+crop"]
    assert value_text(0.1 + 0.2) != value_text(0.3)  # different numbers, different folders


def test_string_and_bool_axes_and_a_one_value_list(tmp_path):
    defn = load_definition(str(axes_file(tmp_path)), ["rounds=1", "weight_decay=[5e-4]",
                                                      "augment=[none,flip+crop]", "nesterov=[true,false]",
                                                      "methods=[lw]"])
    runs, budgets = expand(defn)
    assert list(budgets) == ["cnn"]  # rounds and epochs shared: the study.json key stays the arch
    assert [r.id.split("/")[4] for r in runs] == [
        "augment=none,nesterov=true,weight_decay=0.0005", "augment=none,nesterov=false,weight_decay=0.0005",
        "augment=flip+crop,nesterov=true,weight_decay=0.0005", "augment=flip+crop,nesterov=false,weight_decay=0.0005"]


def test_without_extra_axes_paths_and_study_json_keys_are_unchanged(tmp_path):
    defn = load_definition(str(axes_file(tmp_path)), ["rounds=1", "weight_decay=5e-4"])
    runs, budgets = expand(defn)
    assert [r.id for r in runs] == [f"fashion-mnist-small/cnn/n100/noise0/{m}/seed0" for m in ("baseline", "long", "lw")]
    assert set(runs[0].axes) == {"dataset", "arch", "train_size", "label_noise", "method", "seed"}
    assert list(budgets) == ["cnn"] and defn.extra_axes == {}


def test_epochs_axis_gives_a_budget_per_rounds_and_epochs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", str(axes_file(tmp_path)), "--out", str(out), "--set", "epochs=[2,3]", "--set",
                 "weight_decay=5e-4", "--set", "patience=2", "--set", "fit_acc=0.99", "--workers", "1",
                 "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "12 runs (1 dataset x 1 arch x 1 size x 1 noise level x 2 epochs x 2 rounds x 3 methods x 1 seed)" in err
    for R, E in ((1, 2), (1, 3), (2, 2), (2, 3)):
        assert (f"budget cnn R={R} E={E}: R={R} rounds after round 0, E={E} epochs each: reinit methods and long "
                f"train {(R + 1) * E} epochs, baseline {E}") in err
    assert "patience 2: a round ends once training accuracy has been at least 99% for that many epochs" in err
    assert not out.exists()


@pytest.mark.parametrize("overrides, message", [
    (["lr=[]"], "lr=[] is empty"),
    (["weight_decay=[5e-3,0.005]"], "weight_decay: 0.005 is listed twice"),
    (["width=[1,1.0]"], "width: 1 is listed twice (1 and 1.0 are one value)"),
    (["rounds=[1,none]"], "rounds: none cannot be an axis value"),
    (["augment=[none,mirror]"], "augment='mirror' is not valid: expected one of 'none', 'flip', 'crop', 'flip+crop'"),
    (["epochs=[2,x]"], "epochs='x' has the wrong type: expected an integer"),
    (["device=[cpu]"], "device=['cpu']: device cannot vary within a study"),
    (["threads=[1,2]"], "threads cannot vary within a study (a speed setting)"),
    (["data_dir=[a,b]"], "data_dir cannot vary within a study"),
    (["data_seed=[0,1]"], "vary the seeds axis instead"),
    (["tune=[lr]"], "tune: 'lr' is not an extra axis of this study"),
    (["tune=[seeds]"], "tune: 'seeds' is not an extra axis"),
    (["tune=weight_decay"], "tune='weight_decay' has the wrong type: expected a list"),
])
def test_bad_axes_fail_in_the_definition(tmp_path, overrides, message):
    with pytest.raises(UserError) as e:
        load_definition(str(axes_file(tmp_path)), overrides)
    assert message in str(e.value)


def test_every_fixed_setting_is_a_run_setting():
    from reinitlab.train.config import TrainConfig
    assert set(FIXED) <= set(TrainConfig.field_names())


@pytest.mark.parametrize("overrides, message", [
    (["weight_decay=[5e-4,-1]"], "weight_decay=-1.0 is out of range"),
    (["lr=[0.1,0]"], "lr=0.0 is out of range"),
    (["tune=[weight_decay]", "val_fraction=0"], "have no validation split"),
    (["tune=[weight_decay]", "val_fraction=[0.1,0]"], "have no validation split"),
])
def test_bad_axis_values_fail_in_expansion(tmp_path, overrides, message):
    defn = load_definition(str(axes_file(tmp_path)), overrides)
    with pytest.raises(UserError) as e:
        expand(defn)
    assert message in str(e.value)


def test_two_values_that_share_a_folder_name_are_refused():
    # No setting has such values today (strings are Literal choices); the guard is for new ones.
    defn = StudyDefinition("x", ["fashion-mnist-small"], ["cnn"], ["lw"], [100], [0.0], [0],
                           {"rounds": 1}, extra_axes={"augment": ["flip crop", "flip-crop"]})
    with pytest.raises(UserError, match=r"augment: 'flip crop' and 'flip-crop' map to the same folder name"):
        expand(defn)


def test_cli_refuses_bad_axes_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    for args in (["--set", "weight_decay=[5e-3,0.005]"], ["--set", "device=[cpu,auto]"], ["--set", "lr=[]"],
                 ["--set", "tune=[momentum]"], ["--set", "weight_decay=[-1]"]):
        assert main(["study", str(axes_file(tmp_path)), "--out", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("reinitlab: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_set_a_list_and_tune(tmp_path):
    defn = load_definition(str(axes_file(tmp_path)), ["weight_decay=[5e-4,5e-3,5e-2]", "augment=[none,flip]",
                                                      "tune=[weight_decay,augment]"])
    assert defn.extra_axes["weight_decay"] == [5e-4, 5e-3, 5e-2] and defn.tune == ["weight_decay", "augment"]
    d = defn.to_dict()
    assert d["extra_axes"] == {"augment": ["none", "flip"], "rounds": [1, 2], "weight_decay": [5e-4, 5e-3, 5e-2]}
    assert d["tune"] == ["weight_decay", "augment"]


def test_study_json_records_extra_axes_and_they_may_grow_between_starts(tmp_path):
    store = Store(tmp_path / "out")
    store.check_writable()
    defn = load_definition(str(axes_file(tmp_path)))
    runs, budgets = expand(defn)
    write_definition(store, defn, runs, budgets, ["test"])
    study = json.loads(store.study_file.read_text())
    assert study["definition"]["extra_axes"] == {"rounds": [1, 2], "weight_decay": [5e-4, 5e-3]}
    assert study["budgets"]["cnn R=2"] == {"arch": "cnn", "rounds": 2, "epochs": 1, "reinit_epochs": 3,
                                           "long_epochs": 3, "baseline_epochs": 1, "patience": [0]}
    assert [r["axes"]["weight_decay"] for r in json.loads(store.runs_file.read_text())["runs"][:2]] == [5e-4, 5e-4]
    # axes grow or shrink: fine
    check_compatible(store, load_definition(str(axes_file(tmp_path)), ["weight_decay=[5e-4,5e-3,5e-2]"]))
    check_compatible(store, load_definition(str(axes_file(tmp_path)), ["rounds=[2]", "threads=1"]))
    # a shared setting still may not change, and an axis may not become one value or the reverse
    with pytest.raises(UserError, match="with lr=0.05, not 0.1"):
        check_compatible(store, load_definition(str(axes_file(tmp_path)), ["lr=0.1"]))
    with pytest.raises(UserError, match=r"where weight_decay is an axis \(weight_decay = \[0.0005, 0.005\]\); keep "
                                        r"it a list \(a one-value list such as weight_decay = \[0.0005\] is fine\)"):
        check_compatible(store, load_definition(str(axes_file(tmp_path)), ["weight_decay=5e-4"]))
    with pytest.raises(UserError, match="where lr is one value shared by all runs, not an axis"):
        check_compatible(store, load_definition(str(axes_file(tmp_path)), ["lr=[0.05,0.1]"]))


def read_csv(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(Path(path).read_text())))


def result_times(out) -> dict[str, int]:
    return {str(p.parent.relative_to(Path(out) / "runs")): p.stat().st_mtime_ns
            for p in (Path(out) / "runs").rglob("result.json")}


@pytest.mark.slow
def test_axes_study_end_to_end_results_csv_and_resume(tmp_path, capsys):
    out = tmp_path / "out"
    toml = axes_file(tmp_path)
    assert main(["study", str(toml), "--out", str(out), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "study axes: 12 finished, 0 diverged, 0 failed of 12 runs; 12 trained now" in err
    base = out / "runs" / "fashion-mnist-small" / "cnn" / "n100" / "noise0"
    for R in (1, 2):
        for wd in ("0.0005", "0.005"):
            for m in ("baseline", "long", "lw"):
                d = base / f"rounds={R},weight_decay={wd}" / m / "seed0"
                result = json.loads((d / "result.json").read_text())
                config = json.loads((d / "config.json").read_text())
                assert result["status"] == "finished"
                assert config["rounds"] == R and config["weight_decay"] == float(wd)
                # long trains (R+1)*E epochs at each R, as many as lw; baseline E
                assert result["epochs_total"] == {"baseline": 1, "long": R + 1, "lw": R + 1}[m], d
    # baseline ignores R: its runs at R=1 and R=2 are the same computation
    b1 = json.loads((base / "rounds=1,weight_decay=0.0005/baseline/seed0/result.json").read_text())
    b2 = json.loads((base / "rounds=2,weight_decay=0.0005/baseline/seed0/result.json").read_text())
    assert b1["test_acc"] == b2["test_acc"]

    assert main(["report", str(out)]) == 0
    rows = read_csv(out / "results.csv")
    header = list(rows[0])
    assert header[:10] == ["run", "status", "dataset", "arch", "train_size", "label_noise", "method", "seed",
                           "rounds", "weight_decay"]
    assert len(rows) == 12
    assert {(r["rounds"], r["weight_decay"], r["method"]) for r in rows} == \
        {(R, wd, m) for R in ("1", "2") for wd in ("0.0005", "0.005") for m in ("baseline", "long", "lw")}
    for r in rows:  # rounds is the budget's R; the rounds a run trained are result.rounds
        assert r["result.rounds"] == ("0" if r["method"] in ("baseline", "long") else r["rounds"])
    capsys.readouterr()

    before = result_times(out)
    assert main(["study", str(toml), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "already finished 12" in err and "to run now: 0" in err and "0 trained now" in err
    assert result_times(out) == before


@pytest.mark.slow
def test_a_study_folder_written_before_extra_axes_existed_resumes(tmp_path, capsys):
    """study.json as the code before extra axes wrote it: no extra_axes or tune in the definition,
    budgets without arch and patience. Its runs are found where they are; nothing is retrained."""
    out = tmp_path / "out"
    toml = axes_file(tmp_path)
    args = ["study", str(toml), "--out", str(out), "--set", "rounds=1", "--set", "weight_decay=5e-4",
            "--set", "methods=[baseline,lw]", "--workers", "2"]
    assert main(args) == 0
    capsys.readouterr()
    study = json.loads((out / "study.json").read_text())
    for key in ("extra_axes", "tune"):
        del study["definition"][key]
    for b in study["budgets"].values():
        del b["arch"], b["patience"]
    (out / "study.json").write_text(json.dumps(study))
    before = result_times(out)
    assert sorted(before) == [f"fashion-mnist-small/cnn/n100/noise0/{m}/seed0" for m in ("baseline", "lw")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "already finished 2" in err and "0 trained now" in err
    assert result_times(out) == before
    # more seeds later: only the new runs train, into the same layout
    assert main(args + ["--set", "seeds=[0,1]"]) == 0
    assert set(result_times(out)) == set(before) | {f"fashion-mnist-small/cnn/n100/noise0/{m}/seed1"
                                                    for m in ("baseline", "lw")}
    assert all(result_times(out)[k] == v for k, v in before.items())


def test_budget_tuned_and_converged_presets_expand():
    runs, budgets = expand(load_definition("budget"))
    assert len(runs) == 1 * 3 * 6 * 5  # 500 examples x R x methods x seeds
    assert {k: b.reinit_epochs for k, b in budgets.items()} == {"cnn R=1": 16, "cnn R=2": 24, "cnn R=3": 32}
    long_epochs = {r.config["rounds"]: sum(make_method("long").epochs(r.config["rounds"], r.config["epochs"]))
                   for r in runs if r.axes["method"] == "long"}
    assert long_epochs == {1: 16, 2: 24, 3: 32}
    tuned = load_definition("tuned")
    assert set(tuned.tune) <= set(tuned.extra_axes) and len(tuned.extra_axes["weight_decay"]) >= 2
    runs, _ = expand(tuned)
    assert len(runs) == 2 * 2 * 4 * 4 and all(r.config.get("val_fraction", 0.1) > 0 for r in runs)
    converged = load_definition("converged")
    assert converged.settings["patience"] > 0 and converged.extra_axes == {}
    runs, budgets = expand(converged)
    assert list(budgets) == ["cnn"] and runs[0].id == "fashion-mnist-small/cnn/n500/noise0/baseline/seed0"
