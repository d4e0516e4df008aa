"""What `precision=auto` means on this machine: bf16 autocast where it is native and measured faster.

    choose([Shape(...)], device)   # Choice("bf16", "native bf16, measured 1.6x fp32's ...", 1.6)

bf16 is chosen only where both hold:

1. the device has native bf16 arithmetic: on a CPU the avx512_bf16 or amx_bf16 units (x86) or
   bf16 (Arm) among its flags; on CUDA `torch.cuda.is_bf16_supported` without emulation. Elsewhere
   autocast emulates bf16 and ran 13-25x slower than fp32 (AMD Zen 3, AVX2);
2. a short probe of training steps on the run's own model shape (arch, width, resolution, channels,
   batch, memory format, threads) trains at least SPEEDUP_NEEDED times the images per second in
   bf16 as in fp32. Small nets on small images can lose to the casts what the narrower math saves.

Otherwise fp32 (with TF32 tensor cores on CUDA). The probe measures once per machine, torch
version, source and shape, in the one probe cache (probe.py). Whatever is chosen is written into the
resolved config, so a resumed run keeps it, and a study chooses once for all its runs (the lowest
speedup of its shapes decides). Only the training forward pass runs under autocast: the loss,
evaluation, BatchNorm's running statistics (fp32 buffers), resets and analyses stay in fp32.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F

from ..models import build_model
from . import probe as probes
from . import runtime
from .step import autocast_for, sgd_step
from .tune import accelerate

SPEEDUP_NEEDED = 1.2  # bf16 must train at least this many times fp32's images/s to be chosen
PROBE_VERSION = 2  # 2: five blocks of three steps (three of two once picked bf16 at a measured 1.09x)
# The code that decides the ratio: an edit to it measures again.
SOURCES = probes.sources("speed/precision.py", "speed/step.py", "speed/allocator.py", "speed/few_channel_bn.py",
                         "models/*.py")
_BF16_UNITS = ("avx512_bf16", "amx_bf16", "bf16")
_memo: dict[str, float] = {}  # this process's measurements, for an unwritable cache


@dataclass(frozen=True)
class Shape:
    """What a run trains that decides the speed of its arithmetic."""

    arch: str
    width: float
    resolution: int
    channels: int
    batch: int
    channels_last: bool = True
    threads: int = 1
    device: str = "cpu"

    def text(self) -> str:
        return f"{self.arch} w{self.width:g} {self.resolution}px x{self.channels} batch {self.batch}"


@dataclass(frozen=True)
class Choice:
    precision: str  # "fp32" or "bf16"
    why: str  # a clause: the measured speedup, or why none was measured
    speedup: float | None = None  # bf16 over fp32 training images/s; the lowest over the shapes


def cpu_bf16_units() -> list[str]:
    """The CPU's native bf16 units, from its flags."""
    return [u for u in probes.host_info()["cpu_units"] if u in _BF16_UNITS]


def no_native_bf16(device: torch.device) -> str | None:
    """Why `device` has no native bf16 arithmetic, or None where it has."""
    if device.type == "cpu":
        if cpu_bf16_units():
            return None
        return (f"no native bf16 on this CPU ({probes.host_info()['cpu'] or 'unknown'}, "
                f"{torch.backends.cpu.get_cpu_capability()}, no avx512_bf16/amx_bf16)")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"no native bf16 on {torch.cuda.get_device_name()}"
    return f"bf16 autocast is not measured on {device.type}"


def probe_key(shape: Shape) -> str:
    dev = shape.device
    if dev == "cuda" and torch.cuda.is_available():
        dev = f"cuda:{torch.cuda.get_device_name()}"
    setting = {"arch": shape.arch, "width": shape.width, "resolution": shape.resolution, "channels": shape.channels,
               "batch": shape.batch, "channels_last": shape.channels_last, "threads": shape.threads, "device": dev}
    return probes.key("precision", PROBE_VERSION, setting, SOURCES)


def speedup(shape: Shape) -> float:
    """bf16 autocast over fp32 training images/s on `shape`: the cached value, measured if there is none."""
    k = probe_key(shape)
    if k in _memo:
        return _memo[k]
    hit = probes.lookup(k)
    if hit and isinstance(hit.get("speedup"), (int, float)):
        value = float(hit["speedup"])
    else:
        value = measure_speedup(shape)
        probes.store(k, {"speedup": value, "measured_at": time.time()})
    _memo[k] = value
    return value


def measure_speedup(shape: Shape, blocks: int = 5, steps: int = 3) -> float:
    """Train the shape's model on random images in fp32 and in bf16 autocast, blocks of `steps`
    steps alternating between the two (drift of a shared machine hits both alike), after one
    warm-up step each; the ratio of the median block times. The step is the engine's own (step.py),
    here with plain SGD and momentum."""
    dev = torch.device(shape.device)
    fmt = torch.channels_last if shape.channels_last else torch.contiguous_format
    bundle = probes.synthetic_bundle(shape.channels, shape.resolution, shape.batch, 0)
    x = ((bundle.x_train.float() - 127.5) / 64.0).to(dev).contiguous(memory_format=fmt)
    y = bundle.y_train.to(dev)
    with runtime.threads(shape.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        models = {}
        for p in ("fp32", "bf16"):
            m = build_model(shape.arch, shape.channels, 10, shape.width, shape.resolution)
            accelerate(m, dev, shape.channels_last)
            models[p] = (m, torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9))

        def block(p: str, n: int) -> float:
            m, opt = models[p]
            ctx = autocast_for(p, dev)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(n):
                sgd_step(m, x, y, opt, ctx, F.cross_entropy)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        for p in models:
            block(p, 1)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for i in range(blocks):
            for p in (("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")):
                times[p].append(block(p, steps))
    return statistics.median(times["fp32"]) / max(statistics.median(times["bf16"]), 1e-12)


def choose(shapes: Iterable[Shape], device: torch.device) -> Choice:
    """The precision `auto` resolves to for runs of these shapes on `device` (one choice for all)."""
    shapes = sorted(set(shapes), key=lambda s: s.text())
    why_not = no_native_bf16(device)
    if why_not is not None:
        return Choice("fp32", why_not)
    if not shapes:
        return Choice("fp32", "no run to measure")
    measured = [(speedup(s), s) for s in shapes]
    low, at = min(measured, key=lambda t: t[0])
    where = at.text() + (f", the slowest of {len(shapes)} shapes" if len(shapes) > 1 else "")
    if low >= SPEEDUP_NEEDED:
        return Choice("bf16", f"native bf16, measured {low:.2f}x fp32's training images/s "
                              f"(>= {SPEEDUP_NEEDED}x needed) on {where}", low)
    return Choice("fp32", f"native bf16, but it measured {low:.2f}x fp32's training images/s (< {SPEEDUP_NEEDED}x "
                          f"needed) on {where}", low)
