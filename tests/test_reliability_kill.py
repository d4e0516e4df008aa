"""Kill anywhere, lose nothing: a study and its workers are SIGKILLed together at chosen and at random
moments, the same command is started again each time, and at the end every run exists once, no
finished run was trained again, and results.csv equals that of an uninterrupted study (timing
columns aside; every metric bit-identical on the CPU).

Every moment is a point in the study's own sequence of writes, never a time: a kill after a delay
races the training, and on a fast CPU (bf16 on AMD Zen 5) the study was over before its planned
kills. The writes are counted across the study and its workers, so each start trains at most a few
epochs before its kill and the study cannot run out of work before the last planned moment."""
import json
import random
import signal
import time

import pytest
import reliability_common as rc
from conftest import train_killed_after

# Each start is killed (with all its workers) at the nth write of a file, counted over the whole
# study: before anything of it is written, with half of it in a temp file (a kill in the middle of
# the write), or right after the rename. "random" draws the checkpoint and the phase from a seeded
# stream (the first one early, so that the chosen moments below still find work to interrupt).
# "metrics line written, checkpoint not" must leave a run with a checkpoint and a metrics line past
# it, whose resume rewrites metrics.jsonl (the next cycle dies there): it counts each run's own
# checkpoints, since the study's second one may be another worker's first (a run with no checkpoint
# starts again and rewrites nothing).
CYCLES = [
    ("random", (1, 3)),
    ("study.json torn", {"file": "study.json", "nth": 1, "phase": "tmp"}),
    ("checkpoint half written", {"file": "ckpt.pt", "nth": 2, "phase": "tmp"}),
    ("metrics line written, checkpoint not", {"file": "ckpt.pt", "nth": 2, "phase": "before", "per_run": True}),
    ("metrics rewrite at a resume", {"file": "metrics.jsonl", "nth": 1, "phase": "tmp"}),
    ("result.json written, journal not", {"file": "result.json", "nth": 1, "phase": "after"}),
    ("random", (1, 8)),
]


def random_kill(rng: random.Random, nth: tuple[int, int]) -> dict:
    return {"file": "ckpt.pt", "nth": rng.randint(*nth), "phase": rng.choice(["before", "tmp", "after"])}


@pytest.mark.slow
@pytest.mark.parametrize("precision", rc.PRECISIONS)
def test_sigkill_anywhere_then_rerun_loses_nothing(tmp_path, tmp_path_factory, precision):
    ref_out, ref_rows, ref_runs = rc.reference(tmp_path_factory, precision)
    base = rc.shared(tmp_path_factory)
    toml = rc.study_file(tmp_path, rc.small_npz(base), precision=precision)
    out, wit = tmp_path / "out", tmp_path / "witness.jsonl"
    rng = random.Random(6)
    first_seen: dict[str, tuple[int, int]] = {}
    done_by: dict[str, float] = {}  # run -> a moment after its result appeared and its writers died
    killed = []
    for i, (what, kill) in enumerate(CYCLES):
        kill = random_kill(rng, kill) if what == "random" else kill
        faults = {"witness": str(wit), "kill": kill, "counters": str(tmp_path / f"counters{i}")}
        proc = rc.start(toml, out, base / "cache", faults)
        log = rc.wait_group_gone(proc, out)
        if proc.returncode == -signal.SIGKILL:
            killed.append(what)
        else:
            # only the last draw may come after the study's last checkpoint
            assert i == len(CYCLES) - 1 and proc.returncode == 0, f"{what}: exit {proc.returncode}\n{log[-3000:]}"
        # never a torn or foreign result; a result, once there, is never replaced (no retraining)
        now = rc.results(out)
        for rid, stamp in first_seen.items():
            assert now.get(rid) == stamp, f"after '{what}': the finished run {rid} was redone or lost"
        for rid, stamp in now.items():
            first_seen.setdefault(rid, stamp)
            done_by.setdefault(rid, time.time())
    injected = [w for w, _ in CYCLES if w != "random"]
    assert set(injected) <= set(killed), f"fault points that never fired: {set(injected) - set(killed)}"
    assert len(killed) >= 6, killed  # the first draw always finds a checkpoint to die at

    proc = rc.start(toml, out, base / "cache", {"witness": str(wit)})
    log = rc.wait_group_gone(proc, out)
    assert proc.returncode == 0, log[-3000:]
    assert "6 finished, 0 diverged, 0 failed of 6 runs" in log

    # every run exists once, nothing half-written is left, finished runs kept their first result
    dirs = rc.run_dirs(out)
    assert set(dirs) == set(ref_runs) and len(dirs) == 6
    assert {json.loads((d / "config.json").read_text())["precision"] for d in dirs.values()} == {precision}
    final = rc.results(out)
    assert set(final) == set(dirs)
    assert {rid: final[rid] for rid in first_seen} == first_seen
    assert not list((out / "runs").rglob("*.tmp"))
    # a lock file left by a killed holder is stale by construction (nobody holds its flock); the
    # run killed between result.json and the end of `train` keeps its last ckpt.pt: both harmless
    assert not any(rc.is_held(p) for p in (out / "runs").rglob("*.lock"))
    # no training of a run began in a start after the one that finished it
    for row in rc.witness(wit):
        rid = row["run"].split("/runs/", 1)[1]
        assert row["t"] < done_by.get(rid, float("inf")), f"{rid} trained again after it finished"
    # the numbers: every metrics line and result as in the uninterrupted study, and the same table
    assert rc.fingerprint(out) == ref_runs
    assert rc.without_timing(rc.report_csv(out)) == rc.without_timing(ref_rows)
    # each start found what the previous one left and resumed it: partial runs went on from their
    # checkpoints, not from scratch
    starts = [r for r in rc.journal(out) if r["event"] == "start"]
    assert any(r["how"] == "resume" for r in starts)
    assert any(r["recovered_from"] for r in starts), "no claim of a killed worker was taken over"


@pytest.mark.slow
@pytest.mark.parametrize("precision", rc.PRECISIONS)
def test_a_restart_with_one_run_left_resumes_it_as_the_uninterrupted_study_would(tmp_path, tmp_path_factory,
                                                                                   monkeypatch, precision):
    """The kill test's rare case made certain: every run finished but one, which stopped after 3 of
    its 4 epochs. The restart starts one worker for it, with the threads the study had (it once got
    every core, and the resumed epoch came out a few ulps off), and ends with the reference's numbers.
    The run is a few-channel cnn in channels-last on the CPU: its first BatchNorm trains in
    few_channel_bn.py's arithmetic."""
    import shutil

    from reinitlab import TrainConfig
    from reinitlab.speed.few_channel_bn import few_channel_batchnorm
    from reinitlab.study.runner import cores
    from reinitlab.train.engine import initial_model
    ref_out, _, ref_runs = rc.reference(tmp_path_factory, precision)
    base = rc.shared(tmp_path_factory)
    toml = rc.study_file(tmp_path, rc.small_npz(base), precision=precision)
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    rid = next(r for r in ref_runs if r.endswith("/lw/seed0"))
    d = out / "runs" / rid
    cfg = TrainConfig.from_dict(json.loads((d / "config.json").read_text()))
    assert cfg.precision == precision and cfg.channels_last and cfg.device == "cpu"
    from reinitlab.data import load_dataset
    assert few_channel_batchnorm(initial_model(cfg, load_dataset(cfg.dataset))) > 0  # the path is on
    shutil.rmtree(d)
    monkeypatch.setenv("REINITLAB_DATA", str(base / "cache"))
    train_killed_after(3, cfg, d, monkeypatch)
    assert (d / "ckpt.pt").exists() and len(rc.results(out)) == 5

    proc = rc.start(toml, out, base / "cache")
    log = rc.wait_group_gone(proc, out)
    assert proc.returncode == 0, log[-3000:]
    assert f"on 1 local worker process x {max(1, cores() // 2)} torch thread" in log, log[-3000:]
    assert "1 trained now" in log
    assert rc.fingerprint(out) == ref_runs
