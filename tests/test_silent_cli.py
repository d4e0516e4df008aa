"""Through the real entry point: a flag given twice with different values is
refused in one line (argparse would keep the last one silently); `analyze` on a damaged run folder
names the file; an output that cannot be written says so before anything runs, and never promises
a resume."""
import json
from pathlib import Path

import pytest

from reinitlab.cli import main

RUN = ["train", "--dataset", "fashion-mnist-small", "--train-size", "100", "--width", "0.25", "--set", "threads=1",
       "--set", "round_log=false", "--quiet"]

# the flags given, and the line's beginning
CONFLICTS = [
    (["--epochs", "3", "--set", "epochs=5"], "--epochs 3 and --set epochs=5 disagree; give epochs once"),
    (["--method", "lw", "--set", "method=fc"], "--method lw and --set method=fc disagree; give method once"),
    (["--epochs", "3", "--epochs", "5"], "--epochs 3 and --epochs 5 disagree; give --epochs once"),
    (["--set", "lr=0.1", "--set", "lr=0.2"], "--set lr=0.1 and --set lr=0.2 disagree; give lr once"),
    (["--seed", "1", "--set", "seed=2"], "--seed 1 and --set seed=2 disagree; give seed once"),
    (["--set", "augment=flip", "--set", "augment=crop"], "--set augment=flip and --set augment=crop disagree"),
    (["--width", "0.25", "--width", "0.5"], "--width 0.25 and --width 0.5 disagree"),
    (["--out", "x", "--out", "y"], "--out x and --out y disagree; give --out once"),
]


@pytest.mark.parametrize("flags,line", CONFLICTS, ids=[" ".join(c[0]) for c in CONFLICTS])
def test_a_flag_given_twice_with_different_values_is_refused(tmp_path, monkeypatch, capsys, flags, line):
    monkeypatch.chdir(tmp_path)
    assert main(RUN + flags + (["--dry-run"] if "--out" not in flags else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"reinitlab: {line}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [["--epochs", "3", "--set", "epochs=3"], ["--set", "lr=0.1", "--set", "lr=0.1"],
                                   ["--epochs", "2", "--epochs", "2"], ["--rounds", "1", "--set", "rounds=1.0"]])
def test_the_same_value_twice_is_accepted(capsys, flags):
    assert main(RUN + flags + ["--dry-run"]) == 0
    capsys.readouterr()


def test_other_commands_refuse_conflicting_flags_too(tmp_path, capsys):
    from reinitlab.study.definition import load_definition
    with pytest.raises(Exception, match="--set epochs=3 and --set epochs=5 disagree"):
        load_definition("quick", ["epochs=3", "epochs=5"])
    assert main(["analyze", str(tmp_path), "--set", "seed=1", "--set", "seed=2"]) == 2
    assert "--set seed=1 and --set seed=2 disagree" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--out", "a", "--out", "b"]) == 2
    assert "--out a and --out b disagree" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze") / "run"
    assert main(RUN + ["--method", "lw", "--epochs", "1", "--rounds", "1", "--out", str(out)]) == 0
    return out


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, **changes}))


def foreign_model(d):
    import torch
    torch.save({"model": {"w": torch.zeros(1)}, "reinit": {"init_norms": {}, "standardized": {}, "history": []}},
               d / "model.pt")


ANALYZE_DAMAGE = {
    "model.pt truncated": (lambda d: truncate(d / "model.pt"), "model.pt: not a complete checkpoint"),
    "model.pt emptied": (lambda d: (d / "model.pt").write_bytes(b""), "model.pt: not a complete checkpoint"),
    "model.pt of another model": (foreign_model, "model.pt: does not hold this run's model"),
    "config.json torn": (lambda d: truncate(d / "config.json"), "config.json: unreadable"),
    "config.json a list": (lambda d: (d / "config.json").write_text("[]"), "config.json: holds a list"),
    "config.json {}": (lambda d: (d / "config.json").write_text("{}"), "config.json: not a run config: it lacks"),
    "config.json unknown key": (lambda d: edit_config(d, colour="red"), "config.json: unknown run setting 'colour'"),
    "config.json bad value": (lambda d: edit_config(d, epochs=0), "config.json: epochs=0 is out of range"),
}


@pytest.mark.parametrize("damage", list(ANALYZE_DAMAGE))
def test_analyze_on_a_damaged_folder_is_one_line_naming_the_file(tmp_path, finished, capsys, damage):
    import shutil
    d = tmp_path / "run"
    shutil.copytree(finished, d)
    do, named = ANALYZE_DAMAGE[damage]
    do(d)
    before = sorted(p.name for p in d.iterdir())
    assert main(["analyze", str(d), "--only", "norms", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and f"{d}/{named}" in err, err
    assert sorted(p.name for p in d.iterdir()) == before  # no analysis.json


def test_analyze_of_the_intact_folder_works(finished, capsys):
    """The guard of the damage table: the same folder undamaged is analysed."""
    assert main(["analyze", str(finished), "--only", "norms", "--no-plots"]) == 0
    assert (finished / "analysis.json").exists()
    capsys.readouterr()


UNWRITABLE = Path("/proc/reinitlab-test")  # not writable even by root


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["train", "report", "plot", "export", "export-model"])
def test_an_unwritable_output_says_it_cannot_write_and_never_promises_a_resume(tmp_path, finished, capsys, command):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    argv = {
        "train": RUN + ["--method", "fc", "--epochs", "1", "--out", str(UNWRITABLE / "run")],
        "report": ["report", str(run), "--out", str(UNWRITABLE)],
        "plot": ["plot", str(run), "--out", str(UNWRITABLE / "c.png")],
        "export": ["export", "tensorboard", str(run), "--to", str(UNWRITABLE)],
        "export-model": ["export-model", str(run), "--out", str(UNWRITABLE / "m.pt2")],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/proc is not writable" in err and "resume" not in err, err


def test_an_oserror_promises_a_resume_only_where_the_command_resumes(monkeypatch, capsys):
    import errno

    import reinitlab.cli as cli

    def fails(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/x/y")

    for command, resumes in (("train", True), ("report", False), ("analyze", False)):
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if a.dest == "command")
        sub.choices[command].set_defaults(func=fails)
        monkeypatch.setattr(cli, "build_parser", lambda p=parser: p)
        argv = {"train": ["train", "--dry-run"], "report": ["report", "x"], "analyze": ["analyze", "x"]}[command]
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("reinitlab: /x/y: No space left on device") and ("resume" in err) is resumes
