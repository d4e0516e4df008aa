import os

import pytest
import torch

from reinitlab.data import DataBundle

# Tests share 2 cores with nothing else in CI; one thread keeps small nets fast and results stable.
torch.set_num_threads(1)
os.environ.setdefault("REINITLAB_DATA", "/nonexistent-reinitlab-cache")


@pytest.fixture(autouse=True)
def _no_timed_precision_choice(monkeypatch):
    """precision=auto measures bf16 against fp32 (precision.py); a test's outcome must not hang on a
    timing, nor on what a subprocess measured into the probe cache, so in this process every shape
    reads as "bf16 no faster" (auto stays fp32) unless a test says otherwise. Tests of the choice
    itself put the cached measurement back, with a fixed ratio (test_precision.py)."""
    from reinitlab.speed import precision
    monkeypatch.setattr(precision, "speedup", lambda shape: 1.0)
    monkeypatch.setattr(precision, "measure_speedup", lambda shape, *a, **k: 1.0)
    monkeypatch.setattr(precision, "_memo", {})


def synthetic_bundle(n_train=64, n_test=32, classes=4, channels=1, size=16, seed=0) -> DataBundle:
    """Class-dependent blobs plus noise: learnable in a few steps, cheap to build."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, channels, size, size, generator=g) * 255

    def make(n):
        y = torch.arange(n) % classes
        y = y[torch.randperm(n, generator=g)]
        x = protos[y] * 0.6 + torch.rand(n, channels, size, size, generator=g) * 255 * 0.4
        return x.round().clamp(0, 255).to(torch.uint8), y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return DataBundle(name="synthetic", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                      classes=[f"c{i}" for i in range(classes)], source={"fingerprint": f"synthetic-{seed}"})


@pytest.fixture
def bundle():
    return synthetic_bundle()


class Killed(BaseException):
    """A kill in the middle of training: not an Exception, so no `except Exception` in the code under
    test (a study worker records a run's own failures) can take it for a failure of the run."""


def train_killed_after(epochs, cfg, out, monkeypatch, **run_kw):
    """Train `cfg` into `out` as a process killed after `epochs` epochs (counted over all rounds)
    leaves it: the checkpoint of the last finished epoch, no result. Engine.train_epoch is the real
    one again afterwards, whatever happened."""
    from reinitlab import run
    from reinitlab.train.engine import Engine
    real, calls = Engine.train_epoch, {"n": 0}

    def dies(self, *a, **k):
        if calls["n"] == epochs:
            raise Killed
        calls["n"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(Engine, "train_epoch", dies)
    try:
        with pytest.raises(Killed):
            run(cfg, out, progress=False, **run_kw)
    finally:
        monkeypatch.setattr(Engine, "train_epoch", real)


def wait_for(cond, proc, what: str, timeout: float = 120):
    """Poll cond() every 50 ms until it gives something and return that; fail, with the end of the
    process's output, if `proc` (a Popen with piped stdout) ends first or `timeout` s pass."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {what}:\n{(proc.communicate()[0] or '')[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting until {what}")


def killed_at_checkpoint(args: list, out, nth: int):
    """Run the command line `args` (a `reinitlab` process writing into `out`) and SIGKILL it right
    after its `nth` checkpoint is written (tests/faultinject): the moment is a point in the run's own
    writes, never a time, so it holds on a CPU of any speed. The process gets its own session, since
    the fault kills its whole process group."""
    import json
    import subprocess
    from pathlib import Path
    here = Path(__file__).resolve().parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(here / "faultinject"), str(here.parent / "src")]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["REINITLAB_FAULTS"] = json.dumps({"kill": {"file": "ckpt.pt", "nth": nth, "phase": "after"}})
    proc = subprocess.run([*args, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300,
                          start_new_session=True)
    assert proc.returncode == -9, f"not killed at checkpoint {nth}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    return proc
