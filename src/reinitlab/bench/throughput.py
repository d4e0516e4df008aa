"""How long will a run take here? `estimate_seconds(cfg)` answers from measured throughput.

The model of one run's wall time (an upper bound when `patience` may end rounds early):

    setup                       loading the dataset (timed while resolving the config) + building
                                the engine (normalizing the tensors: ~ one eval pass over them)
  + epochs x steps x batch / train_ips          the training steps, every round
  + epochs x (val_n / eval_ips + epoch_s)       per epoch: validation, weight norms, checkpoint
  + rounds_run x (test_n + train_n) / eval_ips  per round: test and full-train evaluation
  + resets x reset_s                            per reset: fresh draw + statistics batches
  + warmup_s (once; every round with compile, which recompiles each round)

The epochs, steps, batch and statistics batches are the engine's own schedule (`Schedule.of`).
train_ips, eval_ips, epoch_s, reset_s and warmup_s come from a short probe of the real `Engine`
on synthetic data of the run's shape: same arch, width, resolution, channels, batch, augmentation,
device, threads, precision, channels-last and compile settings, cached in the probe cache
(probe.py) keyed by them, the machine, the torch version and a hash of the engine and model
sources, so a changed loop is re-measured and a repeated estimate costs only the config resolution.

A probe measures this process alone. Runs started side by side share the cores and each runs
slower; the caller that plans parallel workers owns that factor.
"""
from __future__ import annotations

import copy
import io
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

from ..core.reset import fresh_state
from ..data import DataBundle
from ..data.cache import cache_root
from ..measure.norms import group_norms
from ..speed import probe as probes
from ..speed import runtime
from ..train.config import TrainConfig
from ..train.engine import Engine, Schedule
from ..train.resolve import prepare

PROBE_VERSION = 2  # bump when the probe itself changes what it measures
# The code that decides the speed: an edit to it re-measures.
SOURCES = probes.sources("train/engine.py", "speed/*.py", "data/augment.py", "measure/norms.py", "models/*.py")


@dataclass
class Probe:
    """Measured speeds of one (arch, width, shape, batch, device, ...) setting."""

    train_ips: float  # training images per second, steady state
    eval_ips: float  # evaluation images per second at eval_batch_size
    epoch_s: float  # fixed cost per epoch outside the steps: weight norms, finiteness check, checkpoint
    reset_s: float  # one reset: fresh draw of the whole model (statistics batches are added from eval_ips)
    warmup_s: float  # extra time of the first steps (kernel selection; compilation with compile=true)
    measured_at: float = 0.0


@dataclass
class Estimate:
    seconds: float
    setup_s: float
    train_s: float
    eval_s: float
    overhead_s: float
    epochs: int
    train_images: int
    eval_images: int
    probe: Probe

    def describe(self) -> str:
        return (f"~{_fmt(self.seconds)} ({self.epochs} epochs, {self.train_images} training images at "
                f"{self.probe.train_ips:.0f} img/s, {self.eval_images} evaluated at {self.probe.eval_ips:.0f} img/s)")


def _fmt(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def probe_key(cfg: TrainConfig, channels: int) -> str:
    """`cfg` must be resolved (device, threads, precision, resolution filled in)."""
    dev = cfg.device
    if dev == "cuda" and torch.cuda.is_available():
        dev = f"cuda:{torch.cuda.get_device_name()}"
    setting = {
        "arch": cfg.arch, "width": cfg.width, "resolution": cfg.resolution, "channels": channels,
        "batch": cfg.batch_size, "eval_batch": cfg.eval_batch_size, "augment": cfg.augment, "device": dev,
        "threads": cfg.threads, "precision": cfg.precision, "channels_last": cfg.channels_last,
        "compile": cfg.compile,
    }
    return probes.key("throughput", PROBE_VERSION, setting, SOURCES)


def measure(cfg: TrainConfig, channels: int, budget_s: float = 2.0) -> Probe:
    """Probe the real Engine on random data of the run's shape. `cfg` must be resolved.

    Training: epochs of `steps` batches, repeated until `budget_s` has passed (at least two after the
    warm-up one); the median epoch gives the steady rate. Evaluation likewise over two full eval batches.
    Runs on the run's thread count and with its process settings (runtime.configure), as a run would."""
    steps = 4
    pcfg = copy.deepcopy(cfg)
    pcfg.method, pcfg.method_options, pcfg.rounds, pcfg.epochs = "baseline", {}, 0, 1
    pcfg.train_size, pcfg.val_fraction, pcfg.label_noise, pcfg.patience = None, 0.0, 0.0, 0
    pcfg.protocol = "rounds"  # the speed of a step is the protocol's business in no way
    bundle = probes.synthetic_bundle(channels, cfg.resolution, steps * cfg.batch_size, 2 * cfg.eval_batch_size)
    with runtime.threads(cfg.threads):
        p = prepare(pcfg, bundle)
        runtime.configure(device=p.device)
        eng = Engine(p)
        if pcfg.compile:
            eng.compile()
        opt = eng.optimizer()
        sched = eng.schedule
        total = 1000 * sched.steps  # a long schedule: the lr stays sane over the repeated epochs
        t0 = time.perf_counter()
        eng.train_steps(opt, sched.steps, 0, 0, 0, total)
        first = time.perf_counter() - t0
        times, e, start = [], 1, time.perf_counter()
        while len(times) < 2 or (time.perf_counter() - start < budget_s and len(times) < 50):
            t0 = time.perf_counter()
            loss, _ = eng.train_steps(opt, sched.steps, 0, e, e * sched.steps, total)
            times.append(time.perf_counter() - t0)
            e += 1
        epoch_t = statistics.median(times)
        train_ips = sched.steps * sched.batch / epoch_t
        warmup_s = max(first - epoch_t, 0.0)

        n_eval = len(eng.y_test)
        t0 = time.perf_counter()
        eng.evaluate(eng.x_test, eng.y_test)
        first_eval = time.perf_counter() - t0
        etimes, start = [], time.perf_counter()
        while len(etimes) < 2 or (time.perf_counter() - start < budget_s / 2 and len(etimes) < 50):
            t0 = time.perf_counter()
            eng.evaluate(eng.x_test, eng.y_test)
            etimes.append(time.perf_counter() - t0)
        eval_ips = n_eval / statistics.median(etimes)
        warmup_s += max(first_eval - statistics.median(etimes), 0.0)

        # What the loop does after every epoch besides evaluation: weight norms, the finiteness
        # check, and an fsynced checkpoint of model + optimizer (a study run always has a folder).
        t0 = time.perf_counter()
        group_norms(eng.model, eng.groups, on_device=True)
        eng.finite(loss)
        buf = io.BytesIO()
        torch.save({"model": eng.model.state_dict(), "optimizer": opt.state_dict()}, buf)
        cache_root().mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_root(), prefix=".probe-ckpt.") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        epoch_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        fresh_state(eng.model, 0)
        reset_s = time.perf_counter() - t0
    return Probe(train_ips=train_ips, eval_ips=eval_ips, epoch_s=epoch_s, reset_s=reset_s,
                 warmup_s=warmup_s, measured_at=time.time())


def probe_for(cfg: TrainConfig, channels: int, refresh: bool = False) -> Probe:
    """The cached probe of this setting, measured now if there is none (or `refresh`)."""
    key = probe_key(cfg, channels)
    if not refresh:
        hit = probes.lookup(key)
        if hit:
            try:
                return Probe(**hit)
            except TypeError:
                pass  # written by another probe version: measure again
    probe = measure(cfg, channels)
    probes.store(key, asdict(probe))
    return probe


def estimate(cfg: TrainConfig, bundle: DataBundle | None = None, refresh: bool = False) -> Estimate:
    """The wall time of `run(cfg, out)` on this machine, with its parts. Raises UserError for a
    config that `run` would refuse."""
    t0 = time.perf_counter()
    p = prepare(cfg, bundle)
    load_s = time.perf_counter() - t0
    c = p.cfg
    probe = probe_for(c, p.bundle.channels, refresh)

    s = Schedule.of(p)  # exactly what the Engine trains
    n, val_n, test_n = s.examples, p.val_size, p.test_size
    epochs, rounds_run, resets = s.total_epochs, s.rounds + 1, s.rounds

    train_images = s.images  # under a staged protocol, each stage's own examples and epochs
    stat_images = resets * s.stat_batches * s.batch  # the resets' statistics batches, forward only
    stage_n = sum(s.stage(r)[0] for r in range(rounds_run))  # each round's end evaluates its training data
    eval_images = epochs * val_n + rounds_run * test_n + stage_n + stat_images
    # Building the engine normalizes every split once: about the cost of an eval pass over the data.
    setup_s = load_s + (n + val_n + test_n) / (4 * probe.eval_ips)
    train_s = train_images / probe.train_ips
    eval_s = eval_images / probe.eval_ips
    overhead_s = (epochs * probe.epoch_s + resets * probe.reset_s
                  + probe.warmup_s * (rounds_run if c.compile else 1))
    total = setup_s + train_s + eval_s + overhead_s
    return Estimate(seconds=total, setup_s=setup_s, train_s=train_s, eval_s=eval_s, overhead_s=overhead_s,
                    epochs=epochs, train_images=train_images, eval_images=eval_images, probe=probe)


def estimate_seconds(cfg: TrainConfig, bundle: DataBundle | None = None) -> float:
    """Estimated wall time in seconds of one run of `cfg` here (see the module docstring)."""
    return estimate(cfg, bundle).seconds
