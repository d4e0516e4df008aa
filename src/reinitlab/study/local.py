"""Local backend: N long-lived worker processes (spawn), each training one run at a time.

Why own processes and not a ProcessPoolExecutor: a worker killed by the OOM killer breaks a whole
executor; here the dead worker's run is recorded as failed, a new worker takes its place and the
study goes on. Workers live for the whole study, so torch is imported and the dataset read once per
worker, not once per run.

Threads: each worker gets `threads` torch threads (the caller splits the cores), and one inter-op
thread, so N workers never oversubscribe the machine. On CUDA, worker i sees only GPU i % count.

Workers die with the study process: they ask the kernel for SIGKILL when their parent exits
(PR_SET_PDEATHSIG), so a killed study leaves no orphan holding a run; its half-trained run resumes
from its checkpoint on the next start. Ctrl-C stops the study process, which stops its workers.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from dataclasses import dataclass

from .worker import Outcome, Task, record_lost, run_task


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(1)


def worker_main(index: int, parent: int, inbox, outbox, threads: int, gpu: int | None) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    from ..speed.runtime import configure
    configure(threads=threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set; only the intra-op count matters for speed here
    while True:
        task = inbox.get()
        if task is None:
            return
        outbox.put(("start", index, task.run_id))
        outbox.put(("outcome", index, run_task(task)))


@dataclass
class _Worker:
    index: int
    process: mp.process.BaseProcess
    inbox: object
    task: Task | None = None


class LocalBackend:
    name = "local"

    def __init__(self, workers: int, threads: int, gpus: int = 0):
        self.ctx = mp.get_context("spawn")
        self.outbox = self.ctx.Queue()
        self.threads = threads
        self.gpus = gpus
        self.workers = [self._spawn(i) for i in range(workers)]
        self.describe = (f"{workers} local worker process{'es' if workers != 1 else ''} x {threads} torch "
                         f"thread{'s' if threads != 1 else ''}" + (f", {gpus} GPU(s)" if gpus else ""))

    @property
    def slots(self) -> int:
        return len(self.workers)

    def _spawn(self, i: int) -> _Worker:
        inbox = self.ctx.Queue()
        gpu = i % self.gpus if self.gpus else None
        p = self.ctx.Process(target=worker_main, args=(i, os.getpid(), inbox, self.outbox, self.threads, gpu),
                             name=f"reinitlab-worker-{i}", daemon=True)
        p.start()
        return _Worker(i, p, inbox)

    def idle(self) -> int:
        return sum(w.task is None for w in self.workers)

    def submit(self, task: Task) -> None:
        w = next(w for w in self.workers if w.task is None)
        w.task = task
        w.inbox.put(task)

    def poll(self, timeout: float) -> list[tuple[str, object]]:
        """Events: ("start", run_id) when a worker picks a run up, ("outcome", Outcome)."""
        events = []
        try:
            msg = self.outbox.get(timeout=timeout)
            while True:
                events.append(self._handle(msg))
                msg = self.outbox.get_nowait()
        except queue.Empty:
            pass
        for w in list(self.workers):
            if w.process.is_alive():
                continue
            events.extend(self._handle(m) for m in self._drain())
            task = self.workers[w.index].task
            if task is not None:  # it died mid-run, not after reporting
                code = w.process.exitcode
                killed = code is not None and code < 0
                reason = (f"worker process died (exit code {code}"
                          + (", killed by a signal: out of memory?" if killed else "") + ")")
                record_lost(task.study_dir, task.run_id, reason)
                events.append(("outcome", Outcome(task.run_id, "failed", reason=reason)))
            self.workers[w.index] = self._spawn(w.index)
        return [e for e in events if e is not None]

    def _drain(self) -> list:
        msgs = []
        try:
            while True:
                msgs.append(self.outbox.get_nowait())
        except queue.Empty:
            return msgs

    def _handle(self, msg):
        kind, index, payload = msg
        if kind == "start":
            return ("start", payload)
        self.workers[index].task = None
        return ("outcome", payload)

    def close(self, force: bool = False) -> None:
        for w in self.workers:
            if force and w.process.is_alive():
                w.process.terminate()
            else:
                try:
                    w.inbox.put(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + (5 if force else 30)
        for w in self.workers:
            w.process.join(max(deadline - time.monotonic(), 0.1))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1)
