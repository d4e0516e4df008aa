"""`reinitlab export-model`: a run's final model in a form that runs without reinitlab. Where LW's
frozen standardizations fold exactly into the next layers (or there are none) it is the
architecture's own plain state_dict; otherwise a self-contained program (torch.export or
TorchScript), which a process that cannot import reinitlab loads and runs to the same logits."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import synthetic_bundle

from reinitlab import TrainConfig, run
from reinitlab.cli import main
from reinitlab.core.fold import fold_standardizations
from reinitlab.core.reset import insert_standardize
from reinitlab.models import build_model
from reinitlab.train import init_from
from reinitlab.train.export import export_model, run_model
from reinitlab.util.errors import UserError

TINY = dict(width=0.25, epochs=1, batch_size=16, eval_batch_size=64, threads=1, round_log=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """LW on the plain CNN (its standardization sits before a padded conv: no exact fold), LW on
    MobileNetV2 (before a 1x1 conv + BatchNorm: exact), and a baseline CNN (nothing to fold)."""
    root = tmp_path_factory.mktemp("runs")
    b = synthetic_bundle()
    torch.set_num_threads(1)
    run(TrainConfig(method="lw", rounds=1, **TINY), root / "lw-cnn", progress=False, bundle=b)
    run(TrainConfig(method="lw", arch="mobilenetv2", rounds=1, **TINY), root / "lw-mb", progress=False, bundle=b)
    run(TrainConfig(method="baseline", **TINY), root / "base-cnn", progress=False, bundle=b)
    return root


def inputs(n=5):
    return torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(7))


# the child cannot import reinitlab: the name is blocked and its source is not on the path
BLOCK = "import sys; sys.modules['reinitlab'] = None\n"


def standalone(code: str, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reinitlab-free" in proc.stdout


@pytest.mark.parametrize("fmt,load", [
    pytest.param("auto", "torch.export.load(path).module()", marks=pytest.mark.slow),  # ~20 s: torch.export twice
    ("torchscript", "torch.jit.load(path)")])
def test_an_lw_program_runs_where_reinitlab_cannot_be_imported(runs, tmp_path, fmt, load):
    out = tmp_path / "lw.pt2"
    manifest = export_model(runs / "lw-cnn", out, format=fmt)
    assert manifest["format"] == ("torch.export" if fmt == "auto" else "torchscript")
    assert manifest["standardizations"] == ["block2"] and not manifest["folded"]
    if fmt == "auto":  # says why it is not a state_dict
        assert "block3.0 (Conv2d with padding" in manifest["not_folded_because"][0]
    x = inputs()
    torch.save(x, tmp_path / "x.pt")
    standalone(f"""
        import torch
        path = {str(out)!r}
        model = {load}
        torch.save(model(torch.load("x.pt")), "y.pt")
        assert not [m for m in sys.modules if m.startswith("reinitlab.")]
        print("reinitlab-free")
    """, tmp_path)
    model, _, _ = run_model(runs / "lw-cnn")
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), want, rtol=1e-5, atol=1e-6)
    program = torch.jit.load(out) if fmt == "torchscript" else torch.export.load(out).module()
    with torch.no_grad():  # any batch size
        torch.testing.assert_close(program(x[:2]), want[:2], rtol=1e-5, atol=1e-6)


def test_a_foldable_lw_model_becomes_the_architectures_plain_state_dict(runs, tmp_path):
    out = tmp_path / "mb.pt"
    manifest = export_model(runs / "lw-mb", out)
    assert manifest["format"] == "state_dict" and manifest["folded"] and manifest["standardizations"]
    state = torch.load(out, weights_only=True)
    fresh = build_model("mobilenetv2", 1, 4, 0.25, 16)
    assert list(state) == list(fresh.state_dict())  # no reinit_std_* keys: a plain load
    fresh.load_state_dict(state)
    model, _, _ = run_model(runs / "lw-mb")
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), model(x), rtol=1e-4, atol=1e-5)
    side = json.loads((tmp_path / "mb.pt.json").read_text())
    assert side["normalization"]["mean"] and side["resolution"] == 16 and side["classes"] == 4


def test_a_plain_state_dict_loads_into_a_copy_of_the_architecture_without_reinitlab(runs, tmp_path):
    """The baseline CNN, rebuilt from plain torch in a process that cannot import reinitlab."""
    out = tmp_path / "base.pt"
    assert export_model(runs / "base-cnn", out)["format"] == "state_dict"
    x = inputs()
    torch.save(x, tmp_path / "x.pt")
    standalone("""
        import torch, torch.nn as nn
        def stage(cin, cout, pool):
            layers = [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))
        net = nn.Sequential()
        for name, (cin, cout, pool) in zip(["stem", "block1", "block2", "block3"],
                                           [(1, 8, True), (8, 16, True), (16, 32, True), (32, 64, False)]):
            net.add_module(name, stage(cin, cout, pool))
        net.add_module("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4)))
        net.load_state_dict(torch.load("base.pt", weights_only=True))
        torch.save(net.eval()(torch.load("x.pt")), "y.pt")
        print("reinitlab-free")
    """, tmp_path)
    model, _, _ = run_model(runs / "base-cnn")
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "y.pt"), model(x), rtol=1e-5, atol=1e-6)


def test_a_state_dict_is_refused_where_the_fold_would_not_be_exact(runs, tmp_path):
    with pytest.raises(UserError, match=r"does not fold exactly.*block3.0 \(Conv2d with padding"):
        export_model(runs / "lw-cnn", tmp_path / "x.pt", format="state_dict")
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(UserError, match="not a finished reinitlab run folder"):
        export_model(tmp_path, tmp_path / "y.pt")


def test_the_command_line(runs, tmp_path, capsys):
    assert main(["export-model", str(runs / "lw-mb"), "--out", str(tmp_path / "m.pt")]) == 0
    line = capsys.readouterr().out
    assert line.startswith("state_dict -> ") and "folded into the weights" in line
    assert main(["export-model", str(runs / "lw-cnn"), "--out", str(tmp_path / "c.pt2")]) == 0
    assert "torch.export -> " in capsys.readouterr().out


@pytest.mark.parametrize("fmt", [
    "torchscript", pytest.param("torch.export", marks=pytest.mark.slow)])  # ~10 s: torch.export
def test_a_program_format_named_on_the_command_line(runs, tmp_path, capsys, fmt):
    """A program format named explicitly on an LW run that cannot fold once wrote the file and then
    died in an IndexError: no fold was tried, so no reason was recorded."""
    out = tmp_path / "lw.prog"
    assert main(["export-model", str(runs / "lw-cnn"), "--out", str(out), "--format", fmt]) == 0
    captured = capsys.readouterr()
    assert captured.out == (f"{fmt} -> {out} (+ lw.prog.json); not a state_dict because --format {fmt} was asked for "
                            "(a program keeps the standardizations as they are; no fold into plain weights was tried)\n")
    assert captured.err == ""
    side = json.loads((tmp_path / "lw.prog.json").read_text())
    assert side["format"] == fmt and not side["folded"] and side["standardizations"] == ["block2"]
    assert side["not_folded_because"] == [f"--format {fmt} was asked for (a program keeps the standardizations as "
                                          "they are; no fold into plain weights was tried)"]
    program = torch.jit.load(out) if fmt == "torchscript" else torch.export.load(out).module()
    model, _, _ = run_model(runs / "lw-cnn")
    with torch.no_grad():
        torch.testing.assert_close(program(inputs()), model(inputs()), rtol=1e-5, atol=1e-6)
    # a run without standardizations: nothing to say about folding
    assert main(["export-model", str(runs / "base-cnn"), "--out", str(tmp_path / "b.ts"), "--format", "torchscript"]) == 0
    assert capsys.readouterr().out == f"torchscript -> {tmp_path / 'b.ts'} (+ b.ts.json)\n"


def test_an_out_that_cannot_be_written_is_refused_before_anything_is_written(runs, tmp_path, capsys):
    """The atomic write's temp file used to be the only thing named (exit 1)."""
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "m.pt2"  # its folder is a file
    assert main(["export-model", str(runs / "lw-cnn"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"reinitlab: --out {out}: cannot write the model there: {tmp_path / 'a-file'} is not a folder; "
                   "nothing written\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    if Path("/proc/self").exists():  # not writable even by root
        assert main(["export-model", str(runs / "lw-cnn"), "--out", "/proc/m.pt2"]) == 2
        assert capsys.readouterr().err == ("reinitlab: --out /proc/m.pt2: cannot write the model there: /proc is not "
                                           "writable; nothing written\n")


class Payload:
    """Unpickled, it would create a file; no test may ever see that file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("damage,problem", [
    ("truncated", "not a complete checkpoint (BadZipFile"),
    ("holds code", "holds code, not only data (it would call io.open when unpickled)"),
])
def test_a_damaged_model_pt_is_named_in_the_commands_own_words(runs, tmp_path, capsys, damage, problem):
    """The reader of model.pt is init_from's, whose lines began with `init_from=RUN`, a setting
    export-model's user never gave."""
    run_dir = tmp_path / "run"
    shutil.copytree(runs / "base-cnn", run_dir)
    marker = tmp_path / "payload-ran"
    if damage == "truncated":
        data = (run_dir / "model.pt").read_bytes()
        (run_dir / "model.pt").write_bytes(data[: len(data) // 2])
    else:
        saved = torch.load(run_dir / "model.pt", weights_only=True)
        torch.save({**saved, "note": Payload(marker)}, run_dir / "model.pt")
    out = tmp_path / "m.pt"
    assert main(["export-model", str(run_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reinitlab: export-model: {run_dir}/model.pt: {problem}") and err.endswith("; not loaded\n")
    assert err.count("\n") == 1 and "init_from" not in err
    assert not out.exists() and not marker.exists()
    # the same reader, reached through the setting, still names it
    with pytest.raises(UserError, match=f"^init_from={run_dir}: {run_dir}/model.pt: "):
        init_from.load(run_dir)
    assert not marker.exists()


def _std(model, name, c, seed):
    g = torch.Generator().manual_seed(seed)
    insert_standardize(model, name, torch.randn(c, generator=g), torch.rand(c, generator=g) + 0.5)


@pytest.mark.parametrize("case", ["linear", "conv1x1+bn", "bn", "conv_bias", "chain"])
def test_each_exact_fold_keeps_the_logits(case):
    torch.manual_seed(0)
    if case == "linear":
        m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
        where = "1"
    elif case == "conv1x1+bn":
        m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 5, 1, bias=False),
                          nn.BatchNorm2d(5), nn.Flatten(), nn.Linear(5 * 16, 4))
        where = "1"
    elif case == "bn":
        m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(6 * 64, 4))
        where = "1"
    elif case == "conv_bias":
        m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 1), nn.Flatten(), nn.Linear(4 * 64, 2))
        where = "1"
    else:  # two standardizations in a row, the second on the layer that reads the first
        m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(5, 2))
        where = "1"
        _std(m, "2", 5, 3)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    _std(m, where, 6, 1)
    x = torch.randn(4, 3, 8, 8)
    folded, report = fold_standardizations(m, x)
    assert report.ok, report.problems
    assert not [k for k in folded.state_dict() if "reinit_std" in k]
    with torch.no_grad():
        torch.testing.assert_close(folded(x), m.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model,why", [
    (lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1)), "padding"),
    (lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()), "feeds 1 (ReLU)"),
    (lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 1, bias=False)), "neither a bias nor a BatchNorm"),
])
def test_what_does_not_fold_exactly_is_named(model, why):
    m = model()
    _std(m, "0", 6, 2)
    folded, report = fold_standardizations(m, torch.randn(2, 3, 8, 8))
    assert folded is None and why in report.problems[0]


@pytest.mark.slow  # ~19 s: torch.export, then the ONNX translation
def test_onnx_beside_the_program_gives_the_same_logits(runs, tmp_path):
    pytest.importorskip("onnx", reason="optional: ONNX export needs the onnx and onnxscript packages")
    ort = pytest.importorskip("onnxruntime", reason="optional: running the ONNX file needs onnxruntime")
    manifest = export_model(runs / "lw-cnn", tmp_path / "lw.pt2", onnx=True)
    assert manifest["onnx"] == "lw.pt2.onnx"
    x = inputs(3)
    got = ort.InferenceSession(str(tmp_path / "lw.pt2.onnx")).run(None, {"x": x.numpy()})[0]
    model, _, _ = run_model(runs / "lw-cnn")
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)


def test_onnx_without_the_package_is_refused_before_anything_is_written(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(UserError, match=r"--onnx needs the onnx package"):
        export_model(runs / "lw-cnn", tmp_path / "lw.pt2", onnx=True)
    assert not list(tmp_path.iterdir())
