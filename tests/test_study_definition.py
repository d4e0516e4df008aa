"""Study definitions: presets, TOML files, --set overrides, expansion into named runs, and every
kind of bad input refused before anything is written."""
import contextlib

import pytest

from reinitlab.cli import main
from reinitlab.data import DATASETS
from reinitlab.study import PRESETS, StudyDefinition, expand, load_definition
from reinitlab.study.expand import canonical_method, run_id
from reinitlab.util.errors import UserError

TINY = """
name = "tiny"
datasets = ["fashion-mnist-small"]
archs = ["cnn"]
methods = ["baseline", "lw"]
train_sizes = [100]
label_noise = [0.0]
seeds = [0, 1]
width = 0.25
epochs = 1
rounds = 1
analyses = ["margins"]
"""


def tiny_file(tmp_path, text=TINY):
    p = tmp_path / "tiny.toml"
    p.write_text(text)
    return p


def test_quick_preset_expands_to_36_compute_matched_runs():
    defn = load_definition("quick")
    runs, budgets = expand(defn)
    assert len(runs) == 36
    assert {r.axes["method"] for r in runs} == {"baseline", "long", "fc", "ke", "llf", "lw"}
    assert {r.axes["train_size"] for r in runs} == {500, 2000}
    assert {r.axes["seed"] for r in runs} == {0, 1, 2}
    # one budget for all methods: the same R and E, so `long` = (R+1)*E epochs = every reinit method
    assert {(r.config["rounds"], r.config["epochs"]) for r in runs} == {(3, 11)}
    assert budgets["cnn"].reinit_epochs == 44 and budgets["cnn"].to_dict()["long_epochs"] == 44
    assert runs[0].id == "fashion-mnist-small/cnn/n500/noise0/baseline/seed0"
    # seed-major order: all 12 runs of seed 0 come before any of seed 1
    assert [r.axes["seed"] for r in runs[:12]] == [0] * 12
    assert len({r.id for r in runs}) == 36


def test_every_preset_documents_command_cost_and_expectation():
    for name, fn in PRESETS.items():
        doc = fn.__doc__
        for word in ("Command:", "Cost:", "Expect:"):
            assert word in doc, (name, word)
        assert f"reinitlab study {name}" in doc
        d = fn()  # R fixed for every arch: at the top, in every variant, or warm_start's one stage after the first
        fixed = "rounds" in d or (d.get("variants") and all("rounds" in v for v in d["variants"])) \
            or d.get("protocol") == "warm_start"
        assert fixed, f"{name} must fix R for all archs"


def test_paper_and_sizes_presets_expand():
    sizes = load_definition("sizes")
    runs, _ = expand(sizes, require_data=False)  # fashion-mnist's files may be absent here
    assert len(runs) == 7 * 5 * 3 and runs[0].config["train_size"] == 500
    assert any(r.id.split("/")[2] == "nfull" and r.config["train_size"] is None for r in runs)
    paper = load_definition("paper")
    with contextlib.ExitStack() as stack:
        for d in paper.datasets:  # found on every machine
            stack.enter_context(DATASETS.overriding(d, DATASETS["fashion-mnist-small"]))
        runs, budgets = expand(paper)
    assert len(runs) == 12 * 4 * 10 * 3
    assert set(budgets) == {"resnet50", "vgg", "mobilenetv2", "resnet18"}
    assert {b.rounds for b in budgets.values()} == {4}


def test_the_regimes_preset_has_enough_combinations_for_the_tree_on_two_offline_datasets():
    from reinitlab.report.tree import MIN_COMBINATIONS
    runs, budgets = expand(load_definition("regimes"))  # both datasets load here: nothing to download
    combos = {(r.config["dataset"], r.config["train_size"], r.config["label_noise"]) for r in runs}
    assert len(runs) == 144 and len(combos) == 12 >= MIN_COMBINATIONS
    assert {r.config["dataset"] for r in runs} == {"fashion-mnist-small", "digits"}
    assert {b.rounds for b in budgets.values()} == {2}


def test_toml_file_and_overrides(tmp_path):
    defn = load_definition(str(tiny_file(tmp_path)), ["seeds=[3]", "methods=[lw:rescale=false,long]",
                                                      "train_sizes=[50,full]", "epochs=2", "lr=0.1"])
    assert defn.name == "tiny" and defn.seeds == [3] and defn.analyses == ["margins"]
    assert defn.methods == ["lw:rescale=false", "long"]
    assert defn.train_sizes == [50, None]
    assert defn.settings == {"width": 0.25, "epochs": 2, "rounds": 1, "lr": 0.1}
    runs, _ = expand(defn)
    assert [r.id for r in runs] == [
        "fashion-mnist-small/cnn/n50/noise0/lw-rescale=false/seed3",
        "fashion-mnist-small/cnn/n50/noise0/long/seed3",
        "fashion-mnist-small/cnn/nfull/noise0/lw-rescale=false/seed3",
        "fashion-mnist-small/cnn/nfull/noise0/long/seed3",
    ]
    assert runs[0].train_config(threads=1).method == "lw:rescale=false"


def test_a_preset_description_says_which_keys_set_changed():
    """The quick preset's text counts six methods; with other methods the report must not claim six."""
    plain = load_definition("quick").description
    assert "6 methods" in plain and "--set" not in plain
    assert load_definition("quick", ["seeds=[0, 1, 2]"]).description == plain  # the preset's own value
    changed = load_definition("quick", ['methods=["lw","fire"]', "seeds=[1]"]).description
    assert changed == plain + " (before --set methods, seeds)"
    assert load_definition("quick", ["methods=[lw]", "description=mine"]).description == "mine"


def test_method_specs_are_canonical():
    assert canonical_method("lw: rescale=False ,order=top_down") == "lw:rescale=false,order=top_down"
    assert canonical_method("baseline") == "baseline"
    assert run_id("folder:/data/x", "cnn", None, 0.25, "ke:mode=kels", 2) == \
        "folder--data-x/cnn/nfull/noise0.25/ke-mode=kels/seed2"


@pytest.mark.parametrize("overrides, message", [
    (["epoch=3"], "unknown study key 'epoch' (did you mean 'epochs'?)"),
    (["dataset=mnist"], "'dataset' is swept in a study: use the axis datasets"),
    (["seed=1"], "use the axis seeds"),
    (["method_options={}"], "method options go in the method spec"),
    (["epochs=three"], "epochs='three' has the wrong type: expected an integer"),
    (["width=[1,wide]"], "width='wide' has the wrong type: expected a number"),
    (["seeds=[]"], "seeds=[] is empty"),
    (["seeds=3"], "seeds=3 has the wrong type: expected a list"),
    (["seeds=[0,0]"], "seeds: 0 is listed twice"),
    (["methods=[lw,lw]"], "methods: 'lw' is listed twice"),
    (["train_sizes=[0]"], "train_sizes: 0 is out of range"),
    (["train_sizes=[huge]"], "train_sizes='huge' has the wrong type"),
    (["label_noise=[x]"], "label_noise='x' has the wrong type"),
    (["archs=[1]"], "archs=1 has the wrong type: expected a string"),
    (["noequals"], "expected key=value"),
])
def test_bad_keys_and_types_fail_in_the_definition(tmp_path, overrides, message):
    with pytest.raises(UserError) as e:
        load_definition(str(tiny_file(tmp_path)), overrides)
    assert message in str(e.value)


@pytest.mark.parametrize("overrides, message", [
    (["methods=[lw,nosuch]"], "unknown method 'nosuch'"),
    (["methods=[\"lw:rescale=maybe\"]"], "lw.rescale='maybe' has the wrong type"),
    (["methods=[\"lw:speed=2\"]"], "unknown option of method 'lw' 'speed'"),
    (["archs=[resnet7]"], "unknown arch 'resnet7'"),
    (["datasets=[nosuch]"], "unknown dataset 'nosuch'"),
    (["train_sizes=[999999]"], "larger than the training pool of fashion-mnist-small (4500 examples"),
    (["lr=-1"], "lr=-1.0 is out of range"),
    (["label_noise=[1.5]"], "label_noise=1.5 is out of range"),
    (["seeds=[-1]"], "seed=-1 is out of range"),
    (["device=cuda"], "no CUDA device"),
])
def test_bad_values_fail_in_expansion(tmp_path, overrides, message):
    defn = load_definition(str(tiny_file(tmp_path)), overrides)
    with pytest.raises(UserError) as e:
        expand(defn)
    assert message in str(e.value)


def test_missing_dataset_files_fail_before_anything_runs(tmp_path):
    defn = load_definition(str(tiny_file(tmp_path)), ["datasets=[fashion-mnist-small,cifar10]",
                                                      f"data_dir={tmp_path / 'nothing-here'}"])
    with pytest.raises(UserError, match=r"1 of the study's 2 datasets cannot be found: cifar10"):
        expand(defn)
    assert len(expand(defn, require_data=False)[0]) == 8


def test_file_problems(tmp_path):
    with pytest.raises(UserError, match="neither a preset"):
        load_definition(str(tmp_path / "missing.toml"))
    with pytest.raises(UserError, match="not valid TOML"):
        load_definition(str(tiny_file(tmp_path, "datasets = [")))
    with pytest.raises(UserError, match="missing axis 'seeds'"):
        load_definition(str(tiny_file(tmp_path, TINY.replace("seeds = [0, 1]", ""))))
    with pytest.raises(UserError, match="is a folder"):
        load_definition(str(tmp_path))


def test_cli_refuses_bad_input_with_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    for args in (["--set", "epoch=1"], ["--set", "archs=[nosuch]"], ["--workers", "0"]):
        assert main(["study", str(tiny_file(tmp_path)), "--out", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("reinitlab: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert main(["study", "--presets"]) == 0
    assert "Command: reinitlab study quick" in capsys.readouterr().out


def test_to_dict_round_trips_through_from_mapping():
    defn = load_definition("sizes")
    d = defn.to_dict()
    again = StudyDefinition.from_mapping({k: v for k, v in d.items() if k not in ("settings", "source", "extra_axes")}
                                         | d["settings"] | d["extra_axes"], "copy")
    assert again.train_sizes == defn.train_sizes and again.settings == defn.settings
    assert again.extra_axes == defn.extra_axes and again.tune == defn.tune


def test_label_noise_may_be_left_out_and_means_none(tmp_path):
    defn = load_definition(str(tiny_file(tmp_path, TINY.replace("label_noise = [0.0]\n", ""))))
    assert defn.label_noise == [0.0]
    assert {r.axes["label_noise"] for r in expand(defn)[0]} == {0.0}


@pytest.mark.parametrize("text,suggested", [("[0,1", "seeds=[0,1]"), ("3", "seeds=[3]"), ("0 1", "seeds=[0,1]")])
def test_a_seeds_value_that_is_no_list_gets_a_valid_list_suggested(tmp_path, text, suggested):
    with pytest.raises(UserError) as e:
        load_definition(str(tiny_file(tmp_path)), [f"seeds={text}"])
    assert str(e.value).endswith(f"e.g. {suggested}"), str(e.value)


def test_train_sizes_are_checked_against_the_pool_after_the_validation_split(tmp_path, capsys):
    # fashion-mnist-small: 5,000 training images, 500 held out by the default val_fraction 0.1
    assert len(expand(load_definition(str(tiny_file(tmp_path)), ["train_sizes=[4500]"]))[0]) == 4
    for sets, pool in ((["train_sizes=[4600]"], 4500), (["train_sizes=[4100]", "val_fraction=0.2"], 4000)):
        out = tmp_path / "out"
        assert main(["study", str(tiny_file(tmp_path)), "--out", str(out), "--dry-run",
                     *[x for s in sets for x in ("--set", s)]]) == 2
        err = capsys.readouterr().err
        assert f"is larger than the training pool of fashion-mnist-small ({pool} examples" in err, err
        assert err.count("\n") == 1 and not out.exists()


def test_check_data_checks_sizes_on_the_loaded_data():
    from reinitlab.study.expand import RunSpec
    from reinitlab.study.runner import check_data
    base = {"dataset": "fashion-mnist-small", "arch": "cnn", "method": "fc", "seed": 0}
    check_data([RunSpec("a", {**base, "train_size": 4500}, {})])
    with pytest.raises(UserError, match=r"train_sizes: train_size=4501 is larger than the training pool .*4500"):
        check_data([RunSpec("a", {**base, "train_size": 4500}, {}), RunSpec("b", {**base, "train_size": 4501}, {})])
    with pytest.raises(UserError, match=r"train_size=5 is too small"):
        check_data([RunSpec("a", {**base, "train_size": 5}, {})])


def test_out_that_is_a_file_fails_before_the_plan_is_printed(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    for out, message in ((f, "exists and is not a folder"), (f / "sub", f"{f} is a file, not a folder")):
        for dry in ([], ["--dry-run"]):
            assert main(["study", str(tiny_file(tmp_path)), "--out", str(out), *dry]) == 2
            captured = capsys.readouterr()
            assert captured.err == f"reinitlab: --out {out}: {message}\n", captured.err
    assert f.read_text() == "x"
