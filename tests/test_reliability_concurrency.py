"""Concurrency: a study is killed (its claims left behind, held by dead processes), then two study
commands with two workers each start on the same folder at once. An independent witness (every
training epoch logged by the process that trains it) shows that no run was trained by two
processes, the dead claims were taken over, no file is torn, and the results equal an
uninterrupted study's."""
import json
import time

import pytest
import reliability_common as rc

from reinitlab.study.lock import owner_of
from reinitlab.util.files import checkpoint_problem


@pytest.mark.slow
def test_two_studies_after_a_kill_share_the_folder_without_training_a_run_twice(tmp_path, tmp_path_factory):
    ref_out, ref_rows, ref_runs = rc.reference(tmp_path_factory)
    base = rc.shared(tmp_path_factory)
    toml = rc.study_file(tmp_path, rc.small_npz(base))
    out, wit = tmp_path / "out", tmp_path / "witness.jsonl"

    # 1. a study killed while its workers are mid-run: a checkpoint due, the metrics line written
    first = rc.start(toml, out, base / "cache", {"witness": str(wit),
                                                  "kill": {"file": "ckpt.pt", "nth": 3, "phase": "before"}})
    log = rc.wait_group_gone(first, out)
    assert first.returncode == -9, log[-3000:]
    done_before = rc.results(out)
    stale = {p: owner_of(p)["pid"] for p in (out / "runs").rglob("*.lock")}
    assert stale, "the killed workers left their claims"
    assert len(done_before) < 6
    t_second = time.time()  # every process of the first study is gone

    # 2. two study commands at once on that folder, 2 workers each
    procs = [rc.start(toml, out, base / "cache", {"witness": str(wit)}) for _ in range(2)]
    logs = [rc.wait_group_gone(p, out) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [log[-2000:] for log in logs]

    # each unfinished run was trained by exactly one process, finished ones by none
    trainers: dict[str, set] = {}
    fresh_starts: dict[str, int] = {}
    for row in rc.witness(wit):
        if row["t"] <= t_second:
            continue
        rid = row["run"].split("/runs/", 1)[1]
        trainers.setdefault(rid, set()).add(row["pid"])
        if row["event"] == "begin" and (row["round"], row["epoch"]) == (0, 0):
            fresh_starts[rid] = fresh_starts.get(rid, 0) + 1
    assert not set(trainers) & set(done_before), "a finished run was trained again"
    assert set(trainers) | set(done_before) == set(ref_runs)
    assert all(len(pids) == 1 for pids in trainers.values()), trainers
    assert all(n == 1 for n in fresh_starts.values()), fresh_starts
    starts = [r for r in rc.journal(out) if r["event"] == "start" and r["t"] > t_second]
    assert sorted(r["run"] for r in starts) == sorted(set(ref_runs) - set(done_before))  # one claim each
    # the claims of the killed workers were recovered, each by one claimant that names the dead pid
    by_run = {r["run"]: r for r in starts}
    for lock, pid in stale.items():
        rid = lock.relative_to(out / "runs").as_posix()[: -len(".lock")]
        if rid in done_before:  # killed between its result and the release of its claim: nothing to redo
            continue
        assert by_run[rid]["recovered_from"] == pid and by_run[rid]["pid"] != pid
        assert by_run[rid]["how"] in ("resume", "restart")

    # no file torn or interleaved
    with open(out / "journal.jsonl") as f:
        for line in f:
            json.loads(line)
    for rid, d in rc.run_dirs(out).items():
        rows = rc.read_jsonl(d / "metrics.jsonl")
        assert [r["epoch_total"] for r in rows] == list(range(1, len(rows) + 1)), rid
        assert checkpoint_problem(d / "model.pt") is None
        json.loads((d / "config.json").read_text())
    assert rc.fingerprint(out) == ref_runs
    assert rc.without_timing(rc.results_csv(out)) == rc.without_timing(ref_rows)
