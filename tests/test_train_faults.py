"""Environment faults during a run: unwritable output, disk full while checkpointing."""
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import reliability_common as rc
import torch
from conftest import synthetic_bundle

from reinitlab import TrainConfig, run
from reinitlab.util import files
from reinitlab.cli import main
from reinitlab.util.errors import UserError

TINY = dict(width=0.25, epochs=2, rounds=1, batch_size=16, eval_batch_size=64, threads=1, method="fc")


class FullDisk:
    """os.fdopen whose files accept `budget` bytes in total, then fail like a full disk."""

    def __init__(self, real, fail_on_call):
        self.real, self.fail_on_call, self.calls = real, fail_on_call, 0

    def __call__(self, fd, mode="r", *a, **k):
        f = self.real(fd, mode, *a, **k)
        self.calls += 1
        if self.calls < self.fail_on_call or "w" not in mode:
            return f
        write = f.write

        def half_then_enospc(data):
            write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        f.write = half_then_enospc
        return f


def test_disk_full_during_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    bundle = synthetic_bundle()
    cfg = TrainConfig(**TINY)
    ref = run(cfg, tmp_path / "ref", progress=False, bundle=bundle)
    out = tmp_path / "run"
    # writes: config, split, env, provenance, then ckpt after epoch 1 (5th), ckpt after epoch 2 (6th) fails
    monkeypatch.setattr(files.os, "fdopen", FullDisk(os.fdopen, fail_on_call=6))
    with pytest.raises(OSError) as e:
        run(cfg, out, progress=False, bundle=bundle)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out / "ckpt.pt")
    monkeypatch.undo()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")], "a torn temp file was left behind"
    ck = torch.load(out / "ckpt.pt", weights_only=False)
    assert ck["pos"]["epoch"] == 1 and ck["epochs_total"] == 1
    resumed = run(cfg, out, progress=False, bundle=bundle)
    assert resumed["test_acc"] == ref["test_acc"] and resumed["epochs_total"] == ref["epochs_total"]


def test_disk_full_through_the_cli_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    # config, split, env and provenance are written; the first checkpoint is not
    monkeypatch.setattr(files.os, "fdopen", FullDisk(os.fdopen, fail_on_call=5))
    code = main(["train", "--train-size", "60", "--epochs", "1", "--rounds", "1", "--width", "0.25",
                 "--method", "fc", "--set", "threads=1", "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "ckpt.pt: No space left on device" in err and "run the same command again" in err


def test_unwritable_output_is_refused_before_training(tmp_path):
    """As an unprivileged user (rc.unprivileged)."""
    base = Path(tempfile.mkdtemp(prefix="reinitlab-ro-"))
    try:
        base.chmod(0o755)
        ro = base / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        cmd = [sys.executable, "-m", "reinitlab", "train", "--train-size", "60", "--epochs", "1", "--width", "0.25",
               "--method", "fc", "--quiet", "--out", str(ro / "run")]
        cmd = rc.unprivileged() + cmd
        env = {**os.environ, "HOME": str(base), "MPLCONFIGDIR": str(base)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().endswith("ro is not writable; choose a folder you can write to")
        assert os.listdir(ro) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_output_that_is_a_file_or_foreign_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        run(TrainConfig(**TINY), tmp_path / "file", progress=False, bundle=synthetic_bundle())
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds no reinitlab run"):
        run(TrainConfig(**TINY), tmp_path / "other", progress=False, bundle=synthetic_bundle())
    assert os.listdir(tmp_path / "other") == ["notes.txt"]
