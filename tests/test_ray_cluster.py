"""A real two-node Ray cluster on this machine (`ray start` processes: a head and a second node,
addresses given as 127.0.0.1, the study folder the same path for both), a study submitted to it
with `--backend ray --address`, then:

1. the second node killed (all its processes: raylet and workers) while it trains a run: the lost
   task is journaled and resubmitted, resumes from its checkpoint on the head, and every run ends
   finished exactly once, never trained by two processes at once, with the numbers of a local study;
2. the head killed mid-study: the study command ends with one line; the same command against a new
   head finishes the study, again with the numbers of the local study.

Every process the test starts is stopped by its process id (each `ray start` runs in its own
session; whatever is left in those sessions is killed by pid) even when an assertion fails."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import reliability_common as rc
from conftest import wait_for

ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'reinitlab[ray]'")

RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command of this interpreter's Ray
# 3 methods x 2 seeds of tiny runs; one torch thread everywhere, so Ray tasks and local workers
# compute the same numbers
STUDY = rc.STUDY + "threads = 1\n"
# Ray's defaults take ~15-30 s to declare a node dead and 60 s before a driver without its head
# gives up: shortened so the test takes a minute or two
RAY_ENV = {"RAY_AUTH_MODE": "disabled",  # loopback only; a token would have to be handed to the second node
           "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4",
           "RAY_health_check_initial_delay_ms": "0", "RAY_gcs_rpc_server_reconnect_timeout_s": "20",
           "RAY_DISABLE_USAGE_STATS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`ray start --block` processes, each the leader of its own session; stop() kills every
    process of those sessions by pid."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.nodes: list[subprocess.Popen] = []

    def start(self, env: dict, head_port: int | None = None, address: str | None = None) -> subprocess.Popen:
        i = len(self.nodes)
        args = [*RAY_CLI, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                "--object-store-memory=80000000", "--disable-usage-stats", f"--temp-dir={self.tmp}/n{i}",
                f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]
        if head_port:
            args += ["--head", f"--port={head_port}", "--include-dashboard=false",
                     f"--ray-client-server-port={free_port()}"]
        else:
            args += [f"--address={address}"]
        log = open(self.tmp / f"node{i}.log", "w")
        p = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.nodes.append(p)
        return p

    def log(self, node: subprocess.Popen) -> str:
        return (self.tmp / f"node{self.nodes.index(node)}.log").read_text(errors="replace")

    def wait_up(self, node: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "Ray runtime started" in self.log(node):
                return
            assert node.poll() is None, "ray start exited:\n" + self.log(node)[-3000:]
            time.sleep(0.2)
        raise AssertionError("ray start did not come up:\n" + self.log(node)[-3000:])

    def kill(self, node: subprocess.Popen) -> float | None:
        """SIGKILL a node's whole session, what a machine that dies does to its processes, until none
        is left (one could be forked meanwhile). Returns when the first signals were sent."""
        sid, first = node.pid, None
        deadline = time.time() + 30
        while time.time() < deadline:
            pids = session_pids(sid) | ({sid} if node.poll() is None else set())
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            first = first or time.time()
            time.sleep(0.05)
        node.wait(timeout=30)
        return first

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node)
        left = {sid: session_pids(sid) for sid in (n.pid for n in self.nodes)}
        assert not any(left.values()), f"processes outlived their killed session: {left}"


def session_pids(sid: int) -> set[int]:
    """Live (not zombie) processes of session `sid`, from /proc."""
    out = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            out.add(int(d.name))
    return out


def start_study(toml: Path, out: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reinitlab", "study", str(toml), "--out", str(out),
                             "--workers", "2", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)


def started_in(out: Path, sid: int) -> dict | None:
    """The first journal 'start' of a worker in session `sid` whose run has a checkpoint now."""
    for row in rc.journal(out):
        if row["event"] != "start":
            continue
        try:
            if os.getsid(row["pid"]) != sid:
                continue
        except ProcessLookupError:
            continue
        if (out / "runs" / row["run"] / "ckpt.pt").exists():
            return row
    return None


def finished_once(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rc.journal(out):
        if row["event"] == "end" and row["status"] == "finished":
            counts[row["run"]] = counts.get(row["run"], 0) + 1
    return counts


def never_two_at_once(witness: list[dict], out: Path, t_kill: float) -> None:
    """Per run of `out`, the training intervals of different processes do not overlap; a process
    whose last epoch began and never ended was killed: it trained until `t_kill`."""
    runs: dict[str, dict[int, list]] = {}
    for row in witness:
        if not row["run"].startswith(str(out / "runs")):
            continue
        span = runs.setdefault(row["run"], {}).setdefault(row["pid"], [row["t"], row["t"], ""])
        span[0], span[1], span[2] = min(span[0], row["t"]), max(span[1], row["t"]), row["event"]
    for run, spans in runs.items():
        intervals = sorted((lo, t_kill if last == "begin" else hi, pid) for pid, (lo, hi, last) in spans.items())
        for (_, end, a), (begin, _, b) in zip(intervals, intervals[1:], strict=False):
            assert end <= begin, f"{run} was trained by {a} and {b} at once"


@pytest.mark.slow
def test_two_node_cluster_loses_a_node_then_its_head_and_loses_nothing(tmp_path, tmp_path_factory):
    base = rc.shared(tmp_path_factory)
    data = rc.small_npz(base)
    toml = rc.study_file(tmp_path, data, STUDY)
    cache = base / "cache"
    wit = tmp_path / "witness.jsonl"
    # Ray's session folders hold unix sockets: their paths must stay short
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="rl-ray-", dir="/tmp")))
    # the head's workers pause right after their first checkpoint in the second study (cluster2), so
    # that the head is killed mid-study however fast this CPU trains
    paused = tmp_path / "head-paused"
    driver_env = {**rc.env(cache, {"witness": str(wit), "pause": {"file": "ckpt.pt", "nth": 1, "flag": str(paused),
                                                                  "run": str(tmp_path / "cluster2") + "/"}}),
                  **RAY_ENV}
    studies: list[subprocess.Popen] = []

    def study(*args, **kw):
        studies.append(start_study(*args, **kw))
        return studies[-1]
    try:
        port = free_port()
        head = cluster.start(driver_env, head_port=port)
        # the local study to compare with, while the head comes up
        ref = tmp_path / "local"
        local = study(toml, ref, rc.env(cache))
        log = local.communicate(timeout=300)[0]
        assert local.returncode == 0, log[-3000:]
        expected = rc.fingerprint(ref)
        assert len(expected) == 6

        # 1. the second node dies while it trains a run
        cluster.wait_up(head)
        address = f"127.0.0.1:{port}"
        second = cluster.start({**rc.env(cache, {"witness": str(wit), "epoch_sleep": 1.0}), **RAY_ENV},
                               address=address)
        cluster.wait_up(second)
        out = tmp_path / "cluster"
        proc = study(toml, out, driver_env, "--backend", "ray", "--address", address)
        victim = wait_for(lambda: started_in(out, second.pid), proc, "the second node trained a run past an epoch")
        t_kill = cluster.kill(second)
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, log[-3000:]
        assert "6 finished, 0 diverged, 0 failed of 6 runs" in log
        assert "1 task(s) lost with their node or worker process, 1 submitted again" in log
        rows = rc.journal(out)
        lost = [r for r in rows if r["event"] == "lost"]
        assert [r["run"] for r in lost] == [victim["run"]], lost
        assert "NodeDiedError" in lost[0]["reason"] and lost[0]["again"] is True
        after = [r for r in rows if r["event"] == "start" and r["run"] == victim["run"] and r["t"] > lost[0]["t"]]
        assert len(after) == 1 and after[0]["how"] == "resume" and after[0]["pid"] != victim["pid"]
        assert after[0]["recovered_from"] == victim["pid"]  # it took over the dead worker's claim
        once = finished_once(out)
        assert set(once) == set(expected) and set(once.values()) == {1}
        assert rc.fingerprint(out) == expected  # the resumed run too: bit-identical to the local study
        never_two_at_once(rc.witness(wit), out, t_kill)
        print(f"node loss: {len(once)} runs, {len(lost)} task(s) lost, {len(after)} retried, "
              f"{sum(v == 1 for v in once.values())} finished exactly once")

        # 2. the head dies mid-study; a new head finishes the study
        out2 = tmp_path / "cluster2"
        proc = study(toml, out2, driver_env, "--backend", "ray", "--address", address)
        wait_for(paused.exists, proc, "the head trained a run past an epoch")
        assert os.getsid(int(paused.read_text().split()[0])) == head.pid
        t_kill = cluster.kill(head)
        log = proc.communicate(timeout=120)[0]
        (tmp_path / "head-lost.log").write_text(log)
        assert proc.returncode == 1, log[-3000:]
        last = log.strip().splitlines()[-1]
        assert last.startswith(f"reinitlab: the Ray head at {address} has not answered for 10 s"), log[-3000:]
        assert "Traceback" not in log and "rpc_client" not in log, log[-3000:]
        assert time.time() - t_kill < 60
        finished_before = set(rc.results(out2))
        assert len(finished_before) < 6
        port2 = free_port()
        head2 = cluster.start(driver_env, head_port=port2)
        cluster.wait_up(head2)
        proc = study(toml, out2, driver_env, "--backend", "ray", "--address", f"127.0.0.1:{port2}")
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, log[-3000:]
        assert "6 finished, 0 diverged, 0 failed of 6 runs" in log
        once = finished_once(out2)
        assert set(once.values()) == {1} and len(rc.results(out2)) == 6
        # a run killed between result.json and its journal line has no end line: it finished before
        assert set(expected) - set(once) <= finished_before
        assert rc.fingerprint(out2) == expected
        never_two_at_once(rc.witness(wit), out2, t_kill)
    finally:
        for p in studies:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)
        cluster.stop()
        shutil.rmtree(cluster.tmp, ignore_errors=True)
        print(json.dumps({"ray_tmp_removed": not cluster.tmp.exists()}))
