"""Ray backend: every run is one Ray task, on an existing cluster (`--address`) or a local instance.

Tasks run the same `worker.execute` as local workers, so claims, resumption and failure records are
identical; results land in DIR on the task's node, which is why DIR must be on a filesystem every
node sees (the task refuses to run otherwise, rather than write results nobody collects).

At most `workers` tasks are in flight, so "running" in the progress display means running, and a
second study process pointed at the same DIR still finds runs left to claim.
"""
from __future__ import annotations

import logging
import os

from ..errors import UserError
from .worker import Outcome, Task, ray_execute, record_lost


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


class RayBackend:
    name = "ray"

    def __init__(self, workers: int, threads: int, gpus_per_task: float, started: bool):
        ray = _ray()
        self.ray = ray
        self.started = started
        self.capacity = workers
        self.remote = ray.remote(ray_execute).options(num_cpus=threads, num_gpus=gpus_per_task, max_retries=1)
        self.inflight: dict = {}  # ObjectRef -> Task
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
        events = []
        for ref in ready:
            task = self.inflight.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except Exception as e:  # the task's process or node died; the run itself never raises
                reason = f"Ray task lost: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                record_lost(task.study_dir, task.run_id, reason)
                outcome = Outcome(task.run_id, "failed", reason=reason)
            events.append(("outcome", outcome))
        return events

    def close(self, force: bool = False) -> None:
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
