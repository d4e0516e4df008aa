"""`reinitlab train` and `list` through the real entry point: output, errors, exit codes."""
import json
import subprocess
import sys

import pytest

from reinitlab.cli import main
from reinitlab.data import DATASETS
from reinitlab.methods import METHODS
from reinitlab.models import ARCHS

BASE = ["train", "--dataset", "fashion-mnist-small", "--arch", "cnn", "--method", "fc", "--epochs", "1",
        "--rounds", "1", "--train-size", "100", "--width", "0.25", "--set", "threads=1", "--quiet"]


def replaced(base: list[str], args: list[str]) -> list[str]:
    """`base` with the options that `args` gives taken out, then `args`: a flag given twice with
    different values is refused, so a test changes BASE's value instead of repeating it."""
    given = {a for a in args if a.startswith("--") and a != "--set"}
    out, skip = [], False
    for a in base:
        if skip:
            skip = False
        elif a in given:
            skip = True
        else:
            out.append(a)
    return out + args


@pytest.mark.parametrize("args,fragment", [
    (["--dataset", "cifar11"], "unknown dataset 'cifar11' (did you mean 'cifar10'?); valid: "),
    (["--arch", "resnet19"], f"unknown arch 'resnet19' (did you mean 'resnet18'?); valid: {', '.join(sorted(ARCHS))}"),
    (["--method", "lww"], f"unknown method 'lww' (did you mean 'lw'?); valid: {', '.join(sorted(METHODS))}"),
    (["--set", "epoch=3"], "unknown run setting 'epoch' (did you mean 'epochs'?)"),
    (["--set", "lr=fast"], "lr='fast' has the wrong type: expected a number"),
    (["--set", "augment=rotate"], "augment='rotate' is not valid"),
    (["--train-size", "4501"], "train_size=4501 is larger than the training pool of fashion-mnist-small (4500"),
    (["--train-size", "ten"], "argument --train-size: invalid int value: 'ten'"),
    (["--method", "lw:rescale=maybe"], "lw.rescale='maybe' has the wrong type: expected true or false"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, fragment):
    out = tmp_path / "run"
    code = main(replaced(BASE, args) + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_train_writes_the_run_folder_and_prints_the_result(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(BASE + ["--out", str(out)]) == 0
    line = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert f"test_acc {result['test_acc']:.4f}" in line
    assert result["rounds"] == 1 and result["epochs_total"] == 2 and result["train_size"] == 100


def test_list_prints_one_row_per_registry_name_in_registry_order(capsys):
    for what, registry in [("methods", METHODS), ("archs", ARCHS), ("datasets", DATASETS)]:
        assert main(["list", what]) == 0
        assert [row.split()[0] for row in capsys.readouterr().out.splitlines()] == list(registry)


def test_module_entry_point_exit_code():
    proc = subprocess.run([sys.executable, "-m", "reinitlab", "train", "--method", "nope", "--out", "/tmp/x-never"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("reinitlab: unknown method 'nope'")


LOUD = [a for a in BASE if a != "--quiet"]


def test_train_prints_a_header_then_says_already_finished(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(LOUD + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    head = text.splitlines()
    assert head[0] == f"run     {out}"
    keys = [line.split()[0] for line in head[1:7]]
    assert keys == ["data", "split", "model", "method", "device", "groups"]
    assert "100 train (of a pool of 4,500)" in head[2] and "parameters in 5 groups" in head[3]
    assert "fp32" in head[5] and head[6].startswith("groups  stem (")
    assert "resume" not in text
    # the same command again: nothing trained, and it says so and where
    assert main(LOUD + ["--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert again.startswith(f"already finished: {out} holds this run (test_acc ")
    assert "data    " not in again


class StopAtRound:
    def __init__(self, r):
        self.r = r

    def on_round_start(self, ctx, reset):
        if ctx.state.round == self.r:
            raise KeyboardInterrupt


def test_a_resumed_run_says_from_where(tmp_path, capsys):
    from reinitlab.cli import _train_config, build_parser
    from reinitlab.train.loop import run
    out = tmp_path / "run"
    args = build_parser().parse_args(BASE + ["--out", str(out)])
    with pytest.raises(KeyboardInterrupt):
        run(_train_config(args), out, progress=False, hooks=[StopAtRound(1)])
    assert not (out / "result.json").exists()
    capsys.readouterr()
    assert main(LOUD + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("resume"))
    assert line.startswith("resume  from round 1 epoch 0 of 1 (1 of 2 epochs done earlier")
