"""Where a training step's time goes: `reinitlab bench --profile CASE`.

The real Engine trains the case (batch 128, the run's default settings) for a few hundred steps
under torch.profiler, and every recorded operator is put in one category: convolutions,
normalization, pooling/activations, the linear head and loss, memory-format copies and casts, the
optimizer, data gathering/augmentation, other operators, and Python overhead (the time between
operators: the loop, module calls, hooks, the dispatcher). Categories come from the profiler's
operator names, so the engine carries no profiling code; while profiling, hooks on the model wrap its
forward pass in a named range, because the same operator name (an in-place add, a copy) can belong
to the model or to the loop.

On the CPU every operator of a step, backward included, runs on the calling thread, so the
top-level events of that thread partition the step; their sum subtracted from the step's wall time
is the Python overhead. The profiler costs about a microsecond per recorded operator, which inflates
the shares of small operators and of the overhead a little; the table shows the unprofiled step time
beside the profiled one. On a GPU the shares are those of the host (launch) time, not of the device.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import torch

CATEGORIES = ["convolutions", "normalization", "pooling/activations", "linear head + loss",
              "memory-format copies/casts", "optimizer", "data gathering/augmentation", "other operators",
              "Python overhead"]
FORWARD = "reinitlab.forward"
BACKWARD_PREFIX = "autograd::engine::evaluate_function: "
OPTIMIZER_PREFIXES = ("Optimizer.step#", "Optimizer.zero_grad#")
# The loop's own arithmetic between steps: the running loss and accuracy, the backward seed.
BOOKKEEPING = {"aten::add_", "aten::mul", "aten::argmax", "aten::eq", "aten::sum", "aten::detach", "aten::item",
               "aten::zeros", "aten::div", "aten::_local_scalar_dense", "aten::ones_like", "aten::fill_",
               "aten::empty"}
_LOSS = ("cross_entropy", "nll", "log_softmax")
# (category, name fragments), checked in order on the lower-cased operator or backward-node name.
_RULES = [
    ("convolutions", ("conv",)),
    ("normalization", ("batch_norm", "batchnorm", "group_norm", "groupnorm", "layer_norm", "layernorm")),
    ("pooling/activations", ("relu", "threshold", "pool", "hardtanh", "sigmoid", "silu", "gelu", "meanbackward",
                             "aten::mean")),
    ("linear head + loss", ("linear", "addmm", "aten::mm", "mmbackward", "tbackward", "nll", "log_softmax",
                            "logsoftmax", "cross_entropy", "flatten", "viewbackward", "asstridedbackward")),
    ("memory-format copies/casts", ("contiguous", "clone", "copy_", "aten::to", "_to_copy", "tocopybackward")),
]


def category_of(name: str, in_forward: bool = False) -> str:
    """The category of one top-level operator of a step: a forward operator (`in_forward`), a
    backward node, an optimizer range, or an operator of the loop itself (batch gathering,
    augmentation, the loss, the running loss and accuracy)."""
    if name.startswith(OPTIMIZER_PREFIXES):
        return "optimizer"
    low = name.lower()
    if in_forward or name.startswith(BACKWARD_PREFIX):
        for cat, fragments in _RULES:
            if any(f in low for f in fragments):
                return cat
        return "other operators"
    if any(f in low for f in _LOSS):
        return "linear head + loss"
    return "other operators" if name in BOOKKEEPING else "data gathering/augmentation"


@dataclass
class StepProfile:
    case: str
    steps: int
    threads: int
    precision: str
    device: str
    step_ms: float  # profiled wall time per step
    unprofiled_step_ms: float
    ms: dict[str, float] = field(default_factory=dict)  # category -> ms per step
    top_ops: list[tuple[str, float]] = field(default_factory=list)  # (operator, self ms per step)

    def share(self, category: str) -> float:
        return 100.0 * self.ms.get(category, 0.0) / max(self.step_ms, 1e-12)

    def to_dict(self) -> dict:
        return {"case": self.case, "steps": self.steps, "threads": self.threads, "precision": self.precision,
                "device": self.device, "step_ms": self.step_ms, "unprofiled_step_ms": self.unprofiled_step_ms,
                "categories": {c: {"ms": self.ms.get(c, 0.0), "share": self.share(c)} for c in CATEGORIES},
                "top_ops": [{"op": n, "ms": ms} for n, ms in self.top_ops]}


class _Trainer:
    """Steps of the real loop on a prepared Engine, epoch after epoch of at most its own length, on a
    long schedule (the learning rate stays sane), as `bench` runs it."""

    def __init__(self, case, bundle, device: str, threads: int | None, batch_size: int, overrides: dict):
        from ..speed.runtime import configure
        from ..train.config import TrainConfig
        from ..train.engine import Engine
        from ..train.resolve import prepare
        cfg = TrainConfig(dataset=bundle.name, arch=case.arch, width=case.width, method="baseline",
                          batch_size=batch_size, device=device, threads=threads)
        for k, v in overrides.items():
            cfg.set(k, v)
        cfg.validate()
        p = prepare(cfg, bundle)
        configure(threads=p.cfg.threads, device=p.device)  # as a run's process (bench is an entry point)
        self.cfg, self.device = p.cfg, p.device
        self.eng = Engine(p)
        self.opt = self.eng.optimizer()
        self.full = self.eng.schedule.steps
        self.epoch = self.done = 0
        self.total = 1000 * max(self.full, 1)

    def run(self, steps: int) -> None:
        while steps > 0:
            k = min(steps, self.full)
            self.eng.train_steps(self.opt, k, 0, self.epoch, self.done % self.total, self.total)
            self.epoch += 1
            self.done += k
            steps -= k


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_case(case, bundle, device: str = "auto", threads: int | None = None, steps: int = 300,
                 warmup: int = 20, batch_size: int = 128, top: int = 12, **overrides) -> StepProfile:
    """Profile `steps` training steps of the Engine on `case` (a bench Case) with `bundle`'s data."""
    from torch.profiler import ProfilerActivity, profile, record_function
    if steps < 1:
        raise ValueError("steps must be >= 1")
    tr = _Trainer(case, bundle, device, threads, batch_size, overrides)
    eng, dev = tr.eng, tr.device
    tr.run(warmup)  # first-call costs (kernel selection, allocator growth) are not a step's
    _sync(dev)
    t0 = time.perf_counter()
    tr.run(steps)
    _sync(dev)
    unprofiled = (time.perf_counter() - t0) / steps

    # The forward range opens and closes in hooks on the model itself, so the engine is left as it is.
    ranges = []

    def enter(_m, _args):
        ranges.append(record_function(FORWARD))
        ranges[-1].__enter__()

    def leave(_m, _args, _out):
        ranges.pop().__exit__(None, None, None)

    handles = [eng.model.register_forward_pre_hook(enter), eng.model.register_forward_hook(leave)]
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            _sync(dev)
            t0 = time.perf_counter()
            tr.run(steps)
            _sync(dev)
            wall = time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
    events = prof.events()
    me = _main_thread(events)
    ms: dict[str, float] = defaultdict(float)
    for e in events:
        if e.cpu_parent is not None or e.thread != me:
            continue
        dur = e.time_range.elapsed_us() / 1000.0
        if e.name == FORWARD:
            inside = 0.0
            for c in e.cpu_children:
                d = c.time_range.elapsed_us() / 1000.0
                ms[category_of(c.name, in_forward=True)] += d
                inside += d
            ms["Python overhead"] += max(dur - inside, 0.0)  # module calls and hooks between the ops
        else:
            ms[category_of(e.name)] += dur
    total_ms = wall * 1000.0
    ms["Python overhead"] += max(total_ms - sum(ms.values()), 0.0)
    per_step = {c: ms.get(c, 0.0) / steps for c in CATEGORIES}
    ops = sorted(((a.key, a.self_cpu_time_total / 1000.0 / steps) for a in prof.key_averages()
                  if a.key != FORWARD and not a.key.startswith(OPTIMIZER_PREFIXES)
                  and not a.key.startswith(BACKWARD_PREFIX)), key=lambda t: -t[1])
    return StepProfile(case=case.name, steps=steps, threads=torch.get_num_threads(), precision=tr.cfg.precision,
                       device=dev.type, step_ms=total_ms / steps, unprofiled_step_ms=unprofiled * 1000.0,
                       ms=per_step, top_ops=ops[:top])


def _main_thread(events) -> int:
    """The thread that ran the loop: the one holding the forward ranges."""
    for e in events:
        if e.name == FORWARD:
            return e.thread
    return events[0].thread if len(events) else 0


def format_profile(p: StepProfile) -> str:
    lines = [f"profile of {p.case}: {p.steps} training steps of the Engine, {p.device}, {p.threads} thread"
             f"{'s' if p.threads != 1 else ''}, {p.precision}; {p.step_ms:.2f} ms per step profiled, "
             f"{p.unprofiled_step_ms:.2f} ms unprofiled",
             "",
             f"{'where the step goes':<30} {'share':>7} {'ms/step':>9}"]
    for c in CATEGORIES:
        lines.append(f"{c:<30} {p.share(c):6.1f}% {p.ms.get(c, 0.0):9.3f}")
    lines.append(f"{'total':<30} {sum(p.share(c) for c in CATEGORIES):6.1f}% {sum(p.ms.values()):9.3f}")
    lines += ["", f"{'top operators (self time)':<44} {'share':>7} {'ms/step':>9}"]
    for name, ms in p.top_ops:
        lines.append(f"{name[:44]:<44} {100.0 * ms / max(p.step_ms, 1e-12):6.1f}% {ms:9.3f}")
    return "\n".join(lines)
