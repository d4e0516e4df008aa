"""`reinitlab train` and `list` through the real entry point: output, errors, exit codes."""
import json
import subprocess
import sys

import pytest

from reinitlab.cli import main

BASE = ["train", "--dataset", "fashion-mnist-small", "--arch", "cnn", "--method", "fc", "--epochs", "1",
        "--rounds", "1", "--train-size", "100", "--width", "0.25", "--set", "threads=1", "--quiet"]


@pytest.mark.parametrize("args,fragment", [
    (["--dataset", "cifar11"], "unknown dataset 'cifar11' (did you mean 'cifar10'?); valid: "),
    (["--arch", "resnet19"], "unknown arch 'resnet19' (did you mean 'resnet18'?); valid: cnn, mobilenetv2, resnet18, resnet50, vgg"),
    (["--method", "lww"], "unknown method 'lww' (did you mean 'lw'?); valid: baseline, dash, dnr, dsd, fc, fire, ke, l2init, llf, long, lw, redo, rewind, sp, swr, welsr"),
    (["--set", "epoch=3"], "unknown run setting 'epoch' (did you mean 'epochs'?)"),
    (["--set", "lr=fast"], "lr='fast' has the wrong type: expected a number"),
    (["--set", "augment=rotate"], "augment='rotate' is not valid"),
    (["--train-size", "4501"], "train_size=4501 is larger than the training pool of fashion-mnist-small (4500"),
    (["--train-size", "ten"], "argument --train-size: invalid int value: 'ten'"),
    (["--method", "lw:rescale=maybe"], "lw.rescale='maybe' has the wrong type: expected true or false"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, fragment):
    out = tmp_path / "run"
    code = main(BASE + args + ["--out", str(out)])
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


def test_list_prints_registry_names_first(capsys):
    for what, names in [("methods", {"baseline", "long", "fc", "llf", "ke", "welsr", "dsd", "sp", "lw", "dnr",
                                    "fire", "redo", "dash", "rewind", "l2init", "swr"}),
                        ("archs", {"cnn", "vgg", "resnet18", "resnet50", "mobilenetv2"})]:
        assert main(["list", what]) == 0
        first = {row.split()[0] for row in capsys.readouterr().out.splitlines()}
        assert first == names
    assert main(["list", "datasets"]) == 0
    assert "fashion-mnist-small" in {row.split()[0] for row in capsys.readouterr().out.splitlines()}


def test_module_entry_point_exit_code():
    proc = subprocess.run([sys.executable, "-m", "reinitlab", "train", "--method", "nope", "--out", "/tmp/x-never"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("reinitlab: unknown method 'nope'")
