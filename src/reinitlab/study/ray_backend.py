"""Ray backend: every run is one Ray task, on an existing cluster (`--address`) or a local instance.

Tasks run the same `worker.run_task` as local workers, so claims, resumption and failure records are
identical; results land in DIR on the task's node, which is why DIR must be on a filesystem every
node sees (the task refuses to run otherwise, rather than write results nobody collects).

At most `workers` tasks are in flight, so "running" in the progress display means running, and a
second study process pointed at the same DIR still finds runs left to claim.

Nodes come and go. A task whose node or worker process died is reported as "lost" (Ray's own
retries are off, so every loss is seen and recorded); the scheduler submits it again and the run
resumes from its checkpoint on whichever node takes it. The run's lock keeps a worker that lost
its node but still trains (a partition, a raylet killed alone) from being joined by the retry.
A head that stops answering ends the study command with one line (ClusterLost) before Ray's own
reconnect timeout kills the process; the same command against a running head resumes the study.
"""
from __future__ import annotations

import logging
import os
import socket
import time

from ..util.errors import UserError
from .worker import Outcome, Task, ray_execute, ray_probe, record_lost

# how often the head is looked at while tasks are in flight, and how long it may be unreachable
HEAD_CHECK_S = 1.0
HEAD_GRACE_S = 15.0


class ClusterLost(UserError):
    """The Ray head is gone: not bad input, but one line all the same (exit 1)."""

    exit_code = 1


def _lost_types(ray) -> tuple:
    """Exceptions of `ray.get` that mean the task's process or node died, not that the run failed
    (worker.run_task records a run's own failures and never raises)."""
    ex = ray.exceptions
    names = ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectLostError", "OutOfMemoryError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))


def head_grace_s() -> float:
    """Unreachable longer than this, the head counts as lost: shorter than the time after which Ray
    itself ends a driver that cannot reach it (RAY_gcs_rpc_server_reconnect_timeout_s, 60 s by
    default), so the study says so in its own words first."""
    try:
        ray_timeout = float(os.environ.get("RAY_gcs_rpc_server_reconnect_timeout_s", "60"))
    except ValueError:
        ray_timeout = 60.0
    return max(1.0, min(HEAD_GRACE_S, ray_timeout / 2))


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'reinitlab[ray]' (or 'ray[default]')") from None
    return ray


def connect(address: str | None) -> tuple[dict, bool]:
    """Attach to Ray (or start a local instance); returns the cluster's resources and whether we
    started it (then we also shut it down)."""
    ray = _ray()
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=len(os.sched_getaffinity(0)), **kwargs)
        except Exception as e:  # Ray raises ConnectionError, TimeoutError or its own types here
            where = f"--address {address}: cannot connect to the Ray cluster" if address else \
                "cannot start a local Ray instance"
            detail = str(e).splitlines()[0] if str(e) else ""
            raise UserError(f"{where} ({type(e).__name__}: {detail})") from None
        started = True
    return dict(ray.cluster_resources()), started


def probe_target(device: str, threads: int, gpus_per_task: float):
    """Where this study's tasks train: one small task on the cluster, with a run's resources, reports
    its node's device and result-changing machine fields (mixing.Target)."""
    from .mixing import Target
    ray = _ray()
    ref = ray.remote(ray_probe).options(num_cpus=threads, num_gpus=gpus_per_task, max_retries=2).remote(device)
    try:
        got = ray.get(ref, timeout=300)
    except ray.exceptions.GetTimeoutError:
        raise UserError(f"the Ray cluster started no task with {threads} CPU(s)"
                        + (f" and {gpus_per_task:g} GPU" if gpus_per_task else "") + " within 300 s; "
                        "are its nodes up (ray status)?") from None
    except Exception as e:
        if isinstance(e, UserError):
            raise
        raise UserError(f"the Ray cluster could not run reinitlab ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); is it installed on every node?") from None
    return Target(got["device"], got["machine"], got["info"])


def _head_address(ray) -> tuple[str, int] | None:
    try:
        host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
        return host.strip("[]"), int(port)
    except Exception:  # not connected, or an address form we do not know: no head check
        return None


class RayBackend:
    name = "ray"

    def __init__(self, workers: int, threads: int, gpus_per_task: float, started: bool, address: str | None = None):
        ray = _ray()
        self.ray = ray
        self.started = started
        self.capacity = workers
        # no retries by Ray: a lost task comes back to the scheduler, which records and resubmits it
        self.remote = ray.remote(ray_execute).options(num_cpus=threads, num_gpus=gpus_per_task, max_retries=0)
        self.inflight: dict = {}  # ObjectRef -> Task
        self.lost_types = _lost_types(ray)
        self.head = _head_address(ray)
        self.address = address  # as the user gave it, for messages
        self.head_seen = time.monotonic()  # last time the head answered
        self.head_checked = 0.0
        self.head_lost = False
        self.describe = (f"Ray: up to {workers} task{'s' if workers != 1 else ''} at a time x {threads} CPU"
                         + (f" + {gpus_per_task:g} GPU" if gpus_per_task else "") + " each")

    @property
    def slots(self) -> int:
        return self.capacity

    def idle(self) -> int:
        return self.capacity - len(self.inflight)

    def submit(self, task: Task) -> None:
        ref = self.remote.remote(task)
        self.inflight[ref] = task

    def poll(self, timeout: float) -> list[tuple[str, object]]:
        if not self.inflight:
            return []
        ready, _ = self.ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=timeout)
        events, waiting = [], False
        for ref in ready:
            task = self.inflight[ref]
            try:
                outcome = self.ray.get(ref)
            except self.lost_types as e:  # its node or process died: the run is not at fault
                if not self._head_answers():
                    waiting = True  # the whole cluster may be gone, not one node: the check below decides
                    continue
                outcome = Outcome(task.run_id, "lost", reason=f"{type(e).__name__}: {_first_line(e)}")
            except Exception as e:  # anything else Ray raises about the task (it never raises itself)
                reason = f"Ray task failed: {type(e).__name__}: {_first_line(e)}"
                record_lost(task.study_dir, task.run_id, reason)
                outcome = Outcome(task.run_id, "failed", reason=reason)
            del self.inflight[ref]
            events.append(("outcome", outcome))
        if waiting:
            time.sleep(timeout)  # those refs stay ready: without a pause this loop would spin
        if not self._head_alive():
            self.head_lost = True
            _quiet_ray_error_printer()
            where = self.address or (f"{self.head[0]}:{self.head[1]}" if self.head else "?")
            raise ClusterLost(f"the Ray head at {where} has not answered for {head_grace_s():.0f} s: the cluster is "
                              f"gone; {len(self.inflight)} run(s) in flight resume from their checkpoints when the "
                              "same command is run against a running cluster (--address of its head)")
        return events

    def _head_alive(self) -> bool:
        """False once the head's GCS port has not accepted a connection for head_grace_s()."""
        if time.monotonic() - self.head_checked >= HEAD_CHECK_S:
            self._head_answers()
        return time.monotonic() - self.head_seen < head_grace_s()

    def _head_answers(self) -> bool:
        if self.head is None:
            return True
        self.head_checked = time.monotonic()
        try:
            socket.create_connection(self.head, timeout=2.0).close()
        except OSError:
            return False
        self.head_seen = time.monotonic()
        return True

    def close(self, force: bool = False) -> None:
        if self.head_lost:  # every call into Ray would wait for the head
            self.inflight.clear()
            return
        if force:
            for ref in list(self.inflight):
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:
                    pass
        elif self.inflight:
            self.ray.wait(list(self.inflight), num_returns=len(self.inflight))
        self.inflight.clear()
        if self.started:
            self.ray.shutdown()


def _quiet_ray_error_printer() -> None:
    """Ray's driver prints the cluster's error messages from a background thread (the dead head's
    raylet notice, sometimes twice, once after ClusterLost's line had been printed). With the head
    gone they say nothing that line does not, and the command's last line must be that one, so the
    thread's printer (a module global it looks up per message) is switched off from here on."""
    try:
        import ray._private.worker as ray_worker
        ray_worker.print_to_stdstream = lambda *args, **kwargs: None
    except (ImportError, AttributeError):  # another Ray layout: its messages stay
        pass


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else ""
