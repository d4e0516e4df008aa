"""Help that teaches and feedback that is clear: --help generated from the config and registries,
--version, train --dry-run, the groups command, one error prefix, did-you-mean, LW's budget warning."""
import dataclasses
import re
import typing
import warnings

import pytest

from reinitlab.cli import build_parser, main
from reinitlab.core.groups import groups_of
from reinitlab.methods import METHODS
from reinitlab.models import ARCHS, build_model
from reinitlab.study.presets import PRESETS
from reinitlab.train.config import TrainConfig, setting_help
from reinitlab.version import __version__

RUN = ["train", "--dataset", "fashion-mnist-small", "--arch", "cnn", "--train-size", "200", "--width", "0.25",
       "--epochs", "1", "--set", "threads=1"]


def help_of(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    return capsys.readouterr().out


def test_every_config_field_has_a_description():
    assert set(setting_help()) == set(TrainConfig.field_names())
    assert all(len(text) > 5 for text in setting_help().values())


def test_train_help_lists_every_set_key_with_its_default_and_valid_values(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = help_of(capsys, ["train", "--help"])
    settings = text[text.index("run settings"):]
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "method_options":
            assert "method_options=" not in settings  # given in the method spec, never with --set
            continue
        default = {None: "none", True: "true", False: "false"}.get(f.default, f.default) \
            if not isinstance(f.default, (int, float)) or isinstance(f.default, bool) else f.default
        assert re.search(rf"^  {f.name}={re.escape(str(default))}\s", settings, re.M), f.name
        if typing.get_origin(hints[f.name]) is typing.Literal:
            assert "one of " + ", ".join(typing.get_args(hints[f.name])) in " ".join(settings.split())
    flat = " ".join(text.split())
    for names in (ARCHS, METHODS):
        assert "one of " + ", ".join(names) in flat
    assert "(default: cnn)" in flat and "(default: lw)" in flat and "--dry-run" in flat


def test_study_help_lists_every_preset_with_its_question(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = help_of(capsys, ["study", "--help"])
    flat = " ".join(text.split())
    assert f"a preset ({', '.join(PRESETS)})" in flat
    for name, fn in PRESETS.items():
        question = " ".join(fn.__doc__.strip().split("\n\n")[0].split())
        assert f"{name} {question}" in flat


def test_version(capsys):
    assert help_of(capsys, ["--version"]).strip() == f"reinitlab {__version__}"


@pytest.mark.parametrize("argv,line", [
    (["train", "--train-size", "ten"], "reinitlab: train: argument --train-size: invalid int value: 'ten'"),
    (["data", "info"], "reinitlab: data info: the following arguments are required: name"),
    (["trian"], "reinitlab: unknown command 'trian' (did you mean 'train'?); valid: train, list, groups"),
    (["list", "method"], "reinitlab: list: unknown choice 'method' (did you mean 'methods'?); valid: methods, protocols, archs"),
    (["study", "quick", "--backend", "rai"], "reinitlab: study: unknown --backend 'rai' (did you mean 'ray'?)"),
])
def test_parser_errors_have_one_prefix_and_suggest(capsys, argv, line):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(line), err
    assert "reinitlab: reinitlab" not in err and err.count("\n") == 1


def test_list_methods_shows_options_as_a_spec_writes_them(capsys):
    assert main(["list", "methods"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    llf = next(line for line in out.splitlines() if line.startswith("llf"))
    assert "[start=<top block>, peer=false]" in llf and "''" not in out
    assert "redraw=fresh (or init, rewind, peer)" in captured.err
    lw = next(line for line in out.splitlines() if line.startswith("lw "))
    assert "rescale=true, normalize=true, order=bottom_up (or top_down)" in lw


def test_dry_run_prints_config_split_and_groups_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(RUN + ["--method", "lw", "--set", "label_noise=0.1", "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert "200 train (of a pool of 4,500), 20 noisy labels / 500 val" in text and "/ 10,000 test" in text
    assert f"out     {out}: a new run" in text
    assert re.search(r'^  train_size\s+200$', text, re.M) and re.search(r'^  rounds\s+3$', text, re.M)
    assert re.search(r'^  method_options\s+\{"rescale": true, "normalize": true, "order": "bottom_up", "schedule": "ceil", '
                     r'"redraw": "fresh", "rewind_epoch": null\}$', text, re.M)
    g = groups_of(build_model("cnn", 1, 10, 0.25, 28))
    for name in g.names:
        assert re.search(rf"^  {name}\s", text, re.M)
    assert "4 rounds of 1 epochs, 4 in all" in text


def test_dry_run_needs_no_out_and_train_without_it_is_refused(tmp_path, capsys):
    assert main(RUN + ["--dry-run"]) == 0
    assert "resolved config" in capsys.readouterr().out
    assert main(RUN) == 2
    assert "--out DIR is required" in capsys.readouterr().err


def test_dry_run_refuses_bad_input_like_a_real_start(tmp_path, capsys):
    out = tmp_path / "run"
    big = [a if a != "200" else "4501" for a in RUN]  # RUN's own --train-size (a flag twice is refused)
    assert main(big + ["--dry-run", "--out", str(out)]) == 2
    assert "larger than the training pool" in capsys.readouterr().err
    assert not out.exists()


def test_groups_command_prints_the_table_of_a_registry_arch(capsys):
    assert main(["groups", "--arch", "resnet18", "--width", "0.25", "--dataset", "cifar10"]) == 0
    text = capsys.readouterr().out
    model = build_model("resnet18", 3, 10, 0.25, 32)
    g = groups_of(model)
    assert "LW's full budget is K-1 = 8 rounds" in text
    assert [line.split()[0] for line in text.splitlines()[3:3 + len(g.names)]] == g.names
    assert f"{sum(p.numel() for p in model.parameters()):,}" in text.splitlines()[-1]
    assert main(["groups", "--arch", "resnet1"]) == 2
    assert "did you mean 'resnet18'" in capsys.readouterr().err


def test_lw_rounds_beyond_its_distinct_steps_warn_once_at_resolve_time(capsys):
    assert main(RUN + ["--method", "lw", "--rounds", "5", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("reinitlab: warning: lw: rounds=5 but this model's 5 groups give only 3 distinct steps "
                          "(keep up to block1, block2, block3): 2 of the 5 rounds repeat")
    for argv in (RUN + ["--method", "lw", "--rounds", "3", "--dry-run"], RUN + ["--method", "fc", "--rounds", "5", "--dry-run"]):
        assert main(argv) == 0
        assert "warning" not in capsys.readouterr().err


def test_a_study_warns_once_for_lw_rounds_beyond_its_steps(tmp_path):
    from reinitlab.study.definition import load_definition
    from reinitlab.study.expand import expand
    from reinitlab.util.errors import ReinitlabWarning
    defn = load_definition("quick", ["rounds=5", "seeds=[0,1]"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        expand(defn)
    lw = [w for w in seen if issubclass(w.category, ReinitlabWarning)]
    assert len(lw) == 1 and "lw: rounds=5" in str(lw[0].message)


def test_every_subcommand_parses_its_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.format_help(), name


def test_a_finished_runs_reload_does_not_warn_again(tmp_path):
    from reinitlab.train.engine import load_run
    from reinitlab.train.loop import run
    from reinitlab.util.errors import ReinitlabWarning
    cfg = TrainConfig.from_dict({"method": "lw", "rounds": 4, "epochs": 1, "train_size": 100, "width": 0.25,
                                 "threads": 1, "round_log": False})
    with pytest.warns(ReinitlabWarning, match="rounds=4"):
        run(cfg, tmp_path / "run", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReinitlabWarning)
        assert load_run(tmp_path / "run").groups.K == 4
