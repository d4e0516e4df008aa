"""`reinitlab bench`: reinitlab's training loop against the usual PyTorch way and the machine's peak.

For each case (arch, width, resolution, channels) the same model and data are trained three ways
in one process:

- ours: the real `engine.Engine` (`train_steps`, `evaluate`) on a prepared run of the case;
- reference (the primary comparison, and the strictest): the textbook pipeline, written here: a
  `Dataset` that returns one uint8 image at a time converted and normalized per sample (what
  ToTensor + Normalize do), a `DataLoader` with the default collate, and the standard loop
  (model.train(), zero_grad, forward, loss, backward, step, loss.item() every step), with the
  model in PyTorch's default memory format and fp32;
- torchvision-style: the same loop on a Dataset that mirrors torchvision.datasets.FashionMNIST /
  CIFAR10 with ToTensor + Normalize (a PIL image per sample, converted back to a float tensor),
  which is what the peers' code runs; written without torchvision, whose CPU wheels fail to
  import here.

The machine is shared and its speed drifts by the second, so nothing is compared across time:
each repeat measures the peak's kernels and then every case's loops back to back, in alternating
order; speedups and utilizations are medians over repeats of ratios taken within a repeat. The peak
of a repeat is the fastest of GEMMs of a few shapes, the fastest convolution kernels of the cases
and every loop measured in that repeat (docs/benchmark-method.md), so no utilization exceeds 100%. FLOPs are counted with `torch.utils.flop_counter` on one training step (forward, loss,
backward) and are per image, so achieved FLOP/s = FLOPs per image x images per second.

The bench sets this process up as a run's (`runtime.configure`), which switches malloc to
heap-only allocation on the CPU (`speed/allocator.py`: 1.10x training, 1.15x evaluation for full-width nets);
the references run in the same process and get it too, so the speedups compare the loops, not the
allocators.

The 32 px colour cases train on fashion-mnist-small resized to 32 px and tinted into three
channels: no colour dataset ships with the package, and the speed of dense fp32 kernels does not
depend on pixel content.

Ours computes in the precision a run of the case would: `precision=auto` resolves per case as in a
run (precision.py: bf16 autocast where the device has native bf16 and it measures >= 1.2x fp32 on
the case's shape, else fp32, with TF32 tensor cores on CUDA); `--variant precision=bf16` (or fp32)
measures the other one beside it. The peak is measured in every precision the cases and
variants use (fp32 -- TF32 on CUDA -- and bf16), chunk by chunk in the same repeats, and each
utilization is against the peak of the precision that loop computed in: ours and each variant
against their own, the fp32 references against the fp32 peak. On CUDA the reference keeps the
textbook fp32 model and moves each batch from pinned memory with non_blocking copies. Every timer
synchronizes the device.

"LW round" is derived, not run: one measured LW reset (on a copy of the model) plus E epochs of
training and validation and the closing test and train evaluation of the default run on this data,
at this run's median rates. `--variant KEY=VALUE` measures run settings (channels_last,
eval_batch_size, threads, compile) beside the default loop in the same repeats.

On a machine where other processes compete for the cores, OpenMP threads that spin at barriers
wait for each other's time slices; the table notes when the process got well under its share of
CPU time, and `--threads 1 --timer cpu` gives ratios that survive such a machine.
"""
from __future__ import annotations

import collections
import copy
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..data import DataBundle, load_dataset
from ..models import build_model
from ..train.config import TrainConfig
from ..util.errors import UserError

BATCH = 128
LW_EPOCHS = TrainConfig().epochs  # a round of the default LW run


@dataclass(frozen=True)
class Case:
    arch: str
    width: float
    resolution: int
    channels: int

    @property
    def name(self) -> str:
        return f"{self.arch}-w{self.width:g}-{self.resolution}px-{'grey' if self.channels == 1 else 'colour'}"


FULL_CASES = [Case(a, w, r, c) for r, c in ((28, 1), (32, 3)) for a in ("cnn", "resnet18") for w in (0.25, 1.0)]
# --quick: every case once more cheaply; the full-width ResNet-18 (~35 img/s on 2 cores) only at 32 px colour.
QUICK_CASES = [c for c in FULL_CASES if not (c.arch == "resnet18" and c.width == 1.0 and c.channels == 1)]


def sync(device: torch.device) -> None:
    """Kernels on an accelerator run asynchronously: a timer must wait for them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ---- data -------------------------------------------------------------------------------------
def bench_bundle(resolution: int, channels: int, dataset: str = "fashion-mnist-small") -> DataBundle:
    b = load_dataset(dataset, resolution=resolution)
    if channels == b.channels:
        return b
    if b.channels != 1:
        raise UserError(f"bench: cannot make {channels} channels from {b.channels}")
    # A fixed per-channel tint keeps the channels distinct (not a copy the net could collapse).
    tint = torch.linspace(1.0, 0.6, channels).view(1, channels, 1, 1)

    def colour(x):
        return (x.float() * tint).round().to(torch.uint8) if x is not None else None

    return DataBundle(name=f"{b.name}-rgb{resolution}", x_train=colour(b.x_train), y_train=b.y_train,
                      x_test=colour(b.x_test), y_test=b.y_test, classes=b.classes, x_val=colour(b.x_val),
                      y_val=b.y_val, source=b.source)


class PerSampleDataset(torch.utils.data.Dataset):
    """The usual image dataset: one uint8 image at a time, converted and normalized per sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        self.images, self.labels = images, labels
        self.mean, self.std = mean.view(-1, 1, 1), std.view(-1, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i].float().div(255.0)  # ToTensor
        x = (x - self.mean) / self.std  # Normalize
        return x, int(self.labels[i])


class TorchvisionStyleDataset(torch.utils.data.Dataset):
    """What the peers' code runs: torchvision.datasets.FashionMNIST / CIFAR10 with
    transforms.Compose([ToTensor(), Normalize(mean, std)]), written out without torchvision (its
    CPU wheels do not import here). Per sample: the stored uint8 array becomes a PIL image, which
    ToTensor turns back into an array, a CHW tensor and floats in [0, 1]; Normalize then subtracts
    and divides in place."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        # FashionMNIST keeps a uint8 tensor [N, H, W]; CIFAR10 a numpy array [N, H, W, C]
        self.grey = images.shape[1] == 1
        self.data = images[:, 0].clone() if self.grey else images.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = labels.tolist()
        self.mean, self.std = mean.tolist(), std.tolist()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image
        img, target = self.data[i], int(self.targets[i])
        img = Image.fromarray(img.numpy(), mode="L") if self.grey else Image.fromarray(img)
        return self._normalize(self._to_tensor(img)), target

    @staticmethod
    def _to_tensor(pic) -> torch.Tensor:  # transforms.functional.to_tensor for L and RGB images
        import numpy as np
        x = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        x = x.view(pic.size[1], pic.size[0], len(pic.getbands())).permute((2, 0, 1)).contiguous()
        return x.to(dtype=torch.get_default_dtype()).div(255)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:  # transforms.functional.normalize
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return x.sub_(mean).div_(std)


# ---- the loops --------------------------------------------------------------------------------
class Ours:
    """reinitlab's Engine on one case; `train(k)` runs the first k steps of an epoch (`train_steps`)."""

    def __init__(self, case: Case, bundle: DataBundle, device: str, threads: int | None = None, **overrides):
        from ..train.engine import Engine
        from ..train.resolve import prepare
        cfg = TrainConfig(dataset=bundle.name, arch=case.arch, width=case.width, method="baseline", epochs=LW_EPOCHS,
                          batch_size=BATCH, device=device, threads=threads)
        for k, v in overrides.items():
            cfg.set(k, v)
        cfg.validate()
        self.p = prepare(cfg, bundle)
        self.eng = Engine(self.p)
        if cfg.compile:
            self.eng.compile()  # as the loop does each round
        self.opt = self.eng.optimizer()
        self.full_steps = self.eng.schedule.steps
        self.epoch = self.done = 0
        self.total_steps = LW_EPOCHS * self.full_steps

    @property
    def device(self) -> torch.device:
        return self.p.device

    def train(self, steps: int) -> int:
        # A shortened epoch of the real loop: `steps` batches of the epoch's permutation, at the
        # learning rates of a default round.
        torch.set_num_threads(self.p.cfg.threads)  # a `threads` variant shares the process
        step0 = self.done % self.total_steps
        self.eng.train_steps(self.opt, steps, 0, self.epoch, step0, self.total_steps)
        self.epoch += 1
        self.done += steps
        return steps * self.eng.schedule.batch

    def evaluate(self, n: int) -> int:
        torch.set_num_threads(self.p.cfg.threads)
        self.eng.evaluate(self.eng.x_test[:n], self.eng.y_test[:n])
        return min(n, len(self.eng.y_test))


class Reference:
    """The textbook loop on the same data and model, in the default memory format and fp32."""

    dataset = PerSampleDataset

    def __init__(self, ours: Ours, bundle: DataBundle):
        p, dev = ours.p, ours.device
        self.threads = p.cfg.threads
        x = bundle.x_train[p.split.train]
        mean = x.float().div(255).mean(dim=(0, 2, 3))
        std = x.float().div(255).std(dim=(0, 2, 3)).clamp_min(1e-3)
        self.device = dev
        pin = dev.type == "cuda"
        self.train_set = self.dataset(x, p.split.labels, mean, std)
        self.test_set = self.dataset(bundle.x_test, bundle.y_test, mean, std)
        self.loader = torch.utils.data.DataLoader(self.train_set, batch_size=BATCH, shuffle=True, drop_last=True,
                                                  pin_memory=pin)
        self.pin = pin
        with torch.random.fork_rng(devices=[]):  # a library call leaves the caller's RNG alone
            torch.manual_seed(0)
            self.model = build_model(p.cfg.arch, bundle.channels, bundle.num_classes, p.cfg.width,
                                     p.cfg.resolution).to(dev)
        c = p.cfg
        self.opt = torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                                   weight_decay=c.weight_decay)
        self.it = iter(self.loader)

    def _next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)

    def train(self, steps: int) -> int:
        torch.set_num_threads(self.threads)
        self.model.train()
        for _ in range(steps):
            x, y = self._next()
            x, y = x.to(self.device, non_blocking=self.pin), y.to(self.device, non_blocking=self.pin)
            self.opt.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.opt.step()
            loss.item()
        return steps * BATCH

    def evaluate(self, n: int) -> int:
        n = min(n, len(self.test_set))
        torch.set_num_threads(self.threads)
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(self.test_set, range(n)), batch_size=BATCH,
                                             pin_memory=self.pin)
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(self.device, non_blocking=self.pin), y.to(self.device, non_blocking=self.pin)
                correct += (self.model(x).argmax(1) == y).sum().item()
        return n



class TorchvisionStyle(Reference):
    """The reference loop on `TorchvisionStyleDataset`: a PIL image per sample, as the peers train."""

    dataset = TorchvisionStyleDataset


class Clock:
    """Wall time, or this process's CPU time (`cpu`): with one thread on a shared machine, CPU time
    counts only the time the loop actually ran, so ratios stay stable while others compete for the
    cores. `share` records CPU time / (wall time x threads) of every timed call: well below 1 means
    the process waited for the cores (a busy machine), not that the loop was slow."""

    def __init__(self, kind: str, device: torch.device):
        if kind not in ("wall", "cpu"):
            raise UserError(f"timer {kind!r}: expected 'wall' or 'cpu'")
        self.kind, self.device = kind, device
        self.shares: list[float] = []

    def rate(self, fn, *args) -> float:
        """Images (or FLOPs) per second of one call of `fn`, which returns how many it processed."""
        sync(self.device)
        w0, c0 = time.perf_counter(), time.process_time()
        n = fn(*args)
        sync(self.device)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if self.device.type == "cpu":
            self.shares.append(cpu / max(wall * torch.get_num_threads(), 1e-9))
        return n / max(cpu if self.kind == "cpu" else wall, 1e-9)


# ---- FLOPs and the peak -----------------------------------------------------------------------
def train_flops_per_image(case: Case, num_classes: int = 10, batch: int = 8) -> float:
    """Forward + loss + backward FLOPs of one training step, per image (shape-based, so a small
    batch on the CPU counts the same per image as batch 128 anywhere)."""
    from torch.utils.flop_counter import FlopCounterMode
    model = build_model(case.arch, case.channels, num_classes, case.width, case.resolution)
    model.train()
    x = torch.randn(batch, case.channels, case.resolution, case.resolution)
    y = torch.arange(batch) % num_classes
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}  # precision -> the matmul dtype of its peak


def precision_label(precision: str, device: torch.device) -> str:
    """What a precision computes in on `device`: fp32 matmuls run on TF32 tensor cores on CUDA."""
    return "tf32" if precision == "fp32" and device.type == "cuda" else precision


class Peak:
    """Matmul FLOP/s in one dtype (fp32 -- TF32 on CUDA, as fp32 runs there -- or bf16) on an
    (m x k) @ (k x n) product; square n x n x n by default."""

    def __init__(self, clock: Clock, dtype: torch.dtype = torch.float32, n: int | None = None,
                 shape: tuple[int, int, int] | None = None, chunk_s: float = 0.5):
        device = clock.device
        self.clock, self.device, self.dtype = clock, device, dtype
        # 4096 on the CPU: smaller products run measurably below the sustained rate (cache blocking).
        n = n or (8192 if device.type == "cuda" else 4096)
        self.m, self.k, self.n = shape or (n, n, n)
        g = torch.Generator(device="cpu").manual_seed(0)
        self.a = torch.randn(self.m, self.k, generator=g).to(device, dtype)
        self.b = torch.randn(self.k, self.n, generator=g).to(device, dtype)
        self.reps = 1
        self.measure()  # warm-up, and sizes a chunk to ~chunk_s
        t = 2 * self.m * self.k * self.n / max(self.measure(), 1.0)
        self.reps = max(1, min(200, round(chunk_s / t)))

    @property
    def name(self) -> str:
        return f"GEMM {self.m}x{self.k}x{self.n}"

    def _chunk(self) -> int:
        for _ in range(self.reps):
            torch.mm(self.a, self.b)
        return 2 * self.m * self.k * self.n * self.reps

    def measure(self) -> float:
        return self.clock.rate(self._chunk)


@dataclass(frozen=True)
class ConvShape:
    """One convolution a case trains: its weight, stride, padding, groups and input size."""

    cin: int
    cout: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    size: tuple[int, int]

    @property
    def name(self) -> str:
        k, st = "x".join(map(str, self.kernel)), "" if self.stride == (1, 1) else f" stride {self.stride[0]}"
        g = "" if self.groups == 1 else f" groups {self.groups}"
        return f"conv {k} {self.cin}->{self.cout}{st}{g} at {self.size[0]} px"


def conv_shapes(case: Case, num_classes: int = 10) -> list[ConvShape]:
    """The distinct convolutions of the case's model, read off a forward pass."""
    model = build_model(case.arch, case.channels, num_classes, case.width, case.resolution)
    found: list[ConvShape] = []

    def hook(mod, args, _out):
        x = args[0]
        s = ConvShape(mod.in_channels, mod.out_channels, tuple(mod.kernel_size), tuple(mod.stride),
                      tuple(mod.padding), mod.groups, tuple(x.shape[-2:]))
        if s not in found:
            found.append(s)
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(2, case.channels, case.resolution, case.resolution))
    for h in hooks:
        h.remove()
    return found


class ConvKernel:
    """Forward and backward (input and weight gradients) of one convolution at the bench's batch, in
    channels-last as the engine trains, in one dtype: the convolution kernels the loops themselves
    call, timed alone."""

    def __init__(self, clock: Clock, shape: ConvShape, dtype: torch.dtype = torch.float32, batch: int = BATCH,
                 chunk_s: float = 0.1):
        from torch.utils.flop_counter import FlopCounterMode
        self.clock, self.shape = clock, shape
        dev = clock.device
        g = torch.Generator(device="cpu").manual_seed(0)
        w = torch.randn(shape.cout, shape.cin // shape.groups, *shape.kernel, generator=g)
        x = torch.randn(batch, shape.cin, *shape.size, generator=g)
        self.w = w.to(dev, dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
        self.x = x.to(dev, dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
        with FlopCounterMode(display=False) as counter:
            self._once()
        self.flops = counter.get_total_flops()
        self.reps = 1
        self.measure()  # warm-up (kernel selection), then size a chunk to ~chunk_s
        t = self.flops / max(self.measure(), 1.0)
        self.reps = max(1, min(200, round(chunk_s / max(t, 1e-9))))

    @property
    def name(self) -> str:
        return self.shape.name

    def _once(self) -> None:
        s = self.shape
        out = F.conv2d(self.x, self.w, None, s.stride, s.padding, 1, s.groups)
        gx, gw = torch.autograd.grad(out, (self.x, self.w), torch.ones_like(out))
        del gx, gw

    def _chunk(self) -> int:
        for _ in range(self.reps):
            self._once()
        return self.flops * self.reps

    def measure(self) -> float:
        return self.clock.rate(self._chunk)


GEMM_SHAPES_CPU = (None, (1024, 1024, 1024), (8192, 576, 64))  # square at the peak size; small; im2col-like
KERNELS_PER_PRECISION = 3  # the fastest convolution kernels of a first timing, measured again every repeat


def peak_kernels(clock: Clock, dtype: torch.dtype, cases: list[Case], num_classes: int, peak_size: int | None,
                 chunk_s: float) -> list:
    """The kernels whose FLOP/s bound the loops from below in one precision: GEMMs of a few shapes
    and the fastest of the convolutions the cases train (each timed once here, the fastest kept)."""
    dev = clock.device
    gemms = [Peak(clock, dtype, peak_size, chunk_s=chunk_s)]
    if dev.type == "cpu":
        small = (peak_size or 4096) < 1024
        gemms += [Peak(clock, dtype, shape=sh, chunk_s=chunk_s / 2) for sh in GEMM_SHAPES_CPU[1:] if not small]
    shapes: list[ConvShape] = []
    for case in cases:
        shapes += [s for s in conv_shapes(case, num_classes) if s not in shapes]
    convs = [ConvKernel(clock, s, dtype, chunk_s=chunk_s / 10) for s in shapes]
    fastest = sorted(convs, key=lambda k: -k.measure())[:KERNELS_PER_PRECISION]
    for k in fastest:
        k.reps = max(1, round(k.reps * 5))  # re-sized for the repeats: ~chunk_s / 2 each
    return gemms + fastest


# ---- the benchmark ----------------------------------------------------------------------------
@dataclass
class CaseResult:
    case: Case
    flops_per_image: float
    train_steps: int
    eval_images: int
    ours: list[float] = field(default_factory=list)  # img/s per repeat
    ref: list[float] = field(default_factory=list)
    tv: list[float] = field(default_factory=list)  # the torchvision-style reference
    precision: str = "fp32"  # what ours computed in (precision=auto resolved for the case)
    peaks: dict = field(default_factory=dict)  # precision -> the repeats' matmul FLOP/s
    ours_eval: list[float] = field(default_factory=list)
    ref_eval: list[float] = field(default_factory=list)
    tv_eval: list[float] = field(default_factory=list)
    reset_s: float = 0.0
    lw_round_s: float = 0.0
    variants: dict = field(default_factory=dict)  # label -> {"train": [img/s], "eval": [img/s]}

    def summary(self) -> dict:
        med = statistics.median
        ours, ref = med(self.ours), med(self.ref)
        return {
            "case": self.case.name, "arch": self.case.arch, "width": self.case.width,
            "resolution": self.case.resolution, "channels": self.case.channels,
            "train_img_s": ours, "reference_img_s": ref,
            "speedup_vs_reference": med([o / r for o, r in zip(self.ours, self.ref, strict=True)]),
            "gflop_per_image": self.flops_per_image / 1e9,
            "achieved_gflop_s": ours * self.flops_per_image / 1e9,
            "precision": self.precision,
            "peak_utilization": self._util(self.ours, self.precision),
            "reference_peak_utilization": self._util(self.ref, "fp32"),
            "eval_img_s": med(self.ours_eval), "reference_eval_img_s": med(self.ref_eval),
            "eval_speedup_vs_reference": med([o / r for o, r in zip(self.ours_eval, self.ref_eval, strict=True)]),
            "torchvision_style_img_s": med(self.tv), "torchvision_style_eval_img_s": med(self.tv_eval),
            "speedup_vs_torchvision_style": med([o / r for o, r in zip(self.ours, self.tv, strict=True)]),
            "eval_speedup_vs_torchvision_style": med([o / r for o, r in zip(self.ours_eval, self.tv_eval, strict=True)]),
            "lw_round_s": self.lw_round_s, "reset_s": self.reset_s,
            "train_steps_per_repeat": self.train_steps, "repeats": len(self.ours),
            "variants": [{"variant": label, "train_img_s": med(v["train"]), "eval_img_s": med(v["eval"]),
                          "train_vs_default": med([a / o for a, o in zip(v["train"], self.ours, strict=True)]),
                          "eval_vs_default": med([a / o for a, o in zip(v["eval"], self.ours_eval, strict=True)]),
                          "precision": v["precision"], "peak_utilization": self._util(v["train"], v["precision"])}
                         for label, v in self.variants.items()],
        }

    def _util(self, rates: list[float], precision: str) -> float:
        """Median over repeats of achieved FLOP/s over the same repeat's peak in `precision`."""
        peaks = self.peaks[precision]
        return statistics.median([r * self.flops_per_image / p for r, p in zip(rates, peaks, strict=True)])


def _measure_reset(ours: Ours) -> float:
    """Wall time of one real LW reset (fresh draw, rescale, standardization statistics) on a copy."""
    from ..core.reinit import Reinitializer
    eng = ours.eng
    model = copy.deepcopy(eng.model)
    reinit = Reinitializer(model, "lw", rounds=max(eng.groups.K - 1, 1), groups=eng.groups, seed=0)
    sync(ours.device)
    t0 = time.perf_counter()
    reinit.reset(1, data=lambda: eng.stat_batches(1))
    sync(ours.device)
    return time.perf_counter() - t0


def _lw_round_seconds(r: CaseResult, ours: Ours) -> float:
    """One round of the default LW run on this data, from this run's medians: a reset, E epochs of
    training and validation, then the test and full-train evaluation that close a round."""
    eng, med = ours.eng, statistics.median
    train_ips, eval_ips = med(r.ours), med(r.ours_eval)
    val_n = 0 if eng.y_val is None else len(eng.y_val)
    epoch = ours.full_steps * eng.schedule.batch / train_ips + val_n / eval_ips
    return r.reset_s + LW_EPOCHS * epoch + (len(eng.y_test) + eng.schedule.examples) / eval_ips


PEAK_METHOD = ("per repeat and precision, the fastest of: GEMMs of a few shapes, the fastest convolution kernels "
               "of these cases (forward and backward at batch 128, channels-last), and every loop measured in that "
               "repeat; so no utilization exceeds 100%")
LOOP_NAMES = {"ours": "reinitlab loop", "ref": "reference loop", "tv": "torchvision-style loop"}


def _set_peaks(results: list[CaseResult], measured: dict[str, dict[str, float]], sources: dict[str, list[str]],
               kernel_rates: dict[str, dict[str, list[float]]]) -> None:
    """The peak of each precision in the repeat just measured: the fastest of its kernels and of every
    loop that computed in it (a loop's FLOP/s: its images/s x the case's FLOPs per image), recorded
    with every case, and which one it was. A loop faster than every kernel sets the peak itself, so a
    utilization is at most 1 whatever the kernels missed."""
    for p, rates in measured.items():
        candidates = dict(rates)
        for name, r in rates.items():
            kernel_rates[p].setdefault(name, []).append(r)
        for res in results:
            loops = {"ours": (res.precision, res.ours), "ref": ("fp32", res.ref), "tv": ("fp32", res.tv)}
            loops.update({f"ours {label}": (v["precision"], v["train"]) for label, v in res.variants.items()})
            for key, (prec, imgs) in loops.items():
                if prec == p and imgs:
                    kind = LOOP_NAMES.get(key) or f"reinitlab loop {key[len('ours '):]}"
                    candidates[f"{kind}, {res.case.name}"] = imgs[-1] * res.flops_per_image
        best = max(candidates, key=candidates.__getitem__)
        sources[p].append(best)
        for res in results:
            res.peaks.setdefault(p, []).append(candidates[best])


def run_bench(quick: bool = False, device: str = "auto", cases: list[Case] | None = None, repeats: int | None = None,
              chunk_s: float | None = None, threads: int | None = None, compile: bool = False,
              timer: str = "wall", dataset: str = "fashion-mnist-small", peak_size: int | None = None,
              variants: list[dict] | None = None, stream=None) -> dict:
    """Measure every case; print progress and the table to `stream`; return the summary dict.

    `variants`: run settings (TrainConfig fields: channels_last, eval_batch_size, threads, compile,
    ...) to measure beside the default loop in the same repeats, to decide whether a setting earns
    its place."""
    from ..speed.runtime import configure, resolve_device
    stream = stream or sys.stdout
    cases = cases or (QUICK_CASES if quick else FULL_CASES)
    repeats = repeats or (3 if quick else 5)
    chunk_s = chunk_s or (0.5 if quick else 1.5)
    dev = resolve_device(device)
    configure(threads=threads or None, device=dev)  # as a run's process: the allocator, TF32 on CUDA
    clock = Clock(timer, dev)
    t_start = time.perf_counter()

    def say(msg):
        print(msg, file=stream, flush=True)

    say(f"reinitlab bench: {len(cases)} cases x {repeats} repeats on {dev.type} "
        f"({torch.get_num_threads()} threads), batch {BATCH}, precision=auto per case, {timer} time")
    bundles: dict[tuple[int, int], DataBundle] = {}
    loops, results = [], []
    for case in cases:
        key = (case.resolution, case.channels)
        if key not in bundles:
            bundles[key] = bench_bundle(case.resolution, case.channels, dataset)
        ours = Ours(case, bundles[key], device, threads, compile=compile)
        ref = Reference(ours, bundles[key])
        tv = TorchvisionStyle(ours, bundles[key])
        others = {variant_label(v): Ours(case, bundles[key], device, threads, **{"compile": compile, **v})
                  for v in variants or []}
        # Warm-up (kernel selection, allocator; compilation), then one timed step each to size the chunks;
        # a warm-up step far longer than a chunk (full-width ResNet-18 on a CPU) already says: one step.
        warm_s = max(BATCH / clock.rate(loop.train, 1) for loop in (ours, ref, tv))
        for o in others.values():
            o.train(1)
        if warm_s > 4 * chunk_s:
            step_s = warm_s
        else:
            step_s = max(BATCH / clock.rate(loop.train, 1) for loop in (ours, ref, tv))
        steps = max(1, min(64, round(chunk_s / step_s)))
        n_eval = min(len(ours.eng.y_test), max(BATCH, BATCH * round(3 * chunk_s / step_s)))
        ours.evaluate(n_eval), ref.evaluate(n_eval), tv.evaluate(n_eval)
        for o in others.values():
            o.evaluate(n_eval)
        res = CaseResult(case, train_flops_per_image(case, bundles[key].num_classes), steps, n_eval,
                         precision=ours.p.cfg.precision)
        res.variants = {label: {"train": [], "eval": [], "precision": o.p.cfg.precision} for label, o in others.items()}
        results.append(res)
        loops.append((ours, ref, tv, others))
        say(f"  prepared {case.name}: {steps} steps and {n_eval} eval images per chunk, "
            f"{precision_label(res.precision, dev)}")

    # the peak of every precision a loop computes in; the references are fp32
    used = sorted({"fp32", *(r.precision for r in results),
                   *(v["precision"] for r in results for v in r.variants.values())})
    num_classes = next(iter(bundles.values())).num_classes
    kernels = {p: peak_kernels(clock, PEAK_DTYPES[p], cases, num_classes, peak_size, chunk_s) for p in used}
    say(f"  peak candidates per precision: {', '.join(k.name for k in kernels['fp32'])}, and every loop")
    sources: dict[str, list[str]] = {p: [] for p in used}  # per repeat: what set the peak
    kernel_rates: dict[str, dict[str, list[float]]] = {p: {} for p in used}
    clock.shares.clear()  # the share while measuring, not while preparing
    for rep in range(repeats):
        measured = {p: {k.name: k.measure() for k in ks} for p, ks in kernels.items()}
        for res, (ours, ref, tv, others) in zip(results, loops, strict=True):
            order = [("ours", ours), ("ref", ref), ("tv", tv), *others.items()]
            if rep % 2:
                order.reverse()  # drift within a repeat cancels over repeats
            got = {}
            for name, loop in order:
                got[name] = clock.rate(loop.train, res.train_steps)
            for name, loop in order:
                got[name + "_eval"] = clock.rate(loop.evaluate, res.eval_images)
            res.ours.append(got["ours"]), res.ref.append(got["ref"])
            res.ours_eval.append(got["ours_eval"]), res.ref_eval.append(got["ref_eval"])
            res.tv.append(got["tv"]), res.tv_eval.append(got["tv_eval"])
            for label in others:
                res.variants[label]["train"].append(got[label])
                res.variants[label]["eval"].append(got[label + "_eval"])
        _set_peaks(results, measured, sources, kernel_rates)
        say(f"  repeat {rep + 1}/{repeats} done ({time.perf_counter() - t_start:.0f} s)")
    for res, (ours, *_) in zip(results, loops, strict=True):
        res.reset_s = _measure_reset(ours)
        res.lw_round_s = _lw_round_seconds(res, ours)

    chosen = sorted({r.precision for r in results})
    summary = {
        "device": dev.type if dev.type != "cuda" else f"cuda:{torch.cuda.get_device_name(dev)}",
        # what ours computed in: precision=auto's choice (one value, or "mixed" where cases differ)
        "threads": torch.get_num_threads(), "precision": chosen[0] if len(chosen) == 1 else "mixed",
        "batch": BATCH, "quick": quick,
        "compile": compile, "timer": timer, "torch": torch.__version__, "repeats": repeats,
        "cpu_share": statistics.median(clock.shares) if clock.shares else None,
        # one peak chunk per precision and repeat, recorded with every case of that repeat
        "peak_gflop_s": statistics.median(results[0].peaks["fp32"]) / 1e9,
        "peak_gflop_s_max": max(results[0].peaks["fp32"]) / 1e9,
        "peaks_gflop_s": {p: statistics.median(v) / 1e9 for p, v in results[0].peaks.items()},
        # what the peak is: per repeat and precision, the fastest of the kernels and of every loop measured
        "peak_method": PEAK_METHOD,
        "peak_sources": {p: dict(collections.Counter(v).most_common()) for p, v in sources.items()},
        "peak_candidates_gflop_s": {p: {k: statistics.median(v) / 1e9 for k, v in ks.items()}
                                    for p, ks in kernel_rates.items()},
        "peak_device": dev.type,
        "seconds": time.perf_counter() - t_start,
        "cases": [r.summary() for r in results],
    }
    say("")
    say(format_table(summary))
    say(json.dumps(summary))
    return summary


def variant_label(v: dict) -> str:
    return ",".join(f"{k}={json.dumps(x) if not isinstance(x, str) else x}" for k, x in v.items())


def format_table(summary: dict) -> str:
    dev = torch.device(summary.get("peak_device", "cpu"))
    head = (f"{'case':28s} {'prec':>4s} {'ours img/s':>10s} {'ref img/s':>9s} {'speedup':>7s} {'tv img/s':>8s} "
            f"{'vs tv':>6s} {'MFLOP/img':>9s} {'GFLOP/s':>8s} {'util':>6s} {'ref util':>8s} {'eval img/s':>10s} "
            f"{'ref eval':>8s} {'tv eval':>7s} {'LW round':>9s}")
    peaks = summary.get("peaks_gflop_s") or {"fp32": summary["peak_gflop_s"]}
    src = summary.get("peak_sources", {})
    lines = [f"peak: {summary.get('peak_method', 'the fp32 matmul rate')}; on {summary['device']}, "
             f"{summary['threads']} threads; util: against the peak of the loop's own precision (ref: fp32)"]
    for p, g in sorted(peaks.items()):
        by = src.get(p, {})
        named = "; ".join(f"{name} ({n} of {summary['repeats']} repeats)" for name, n in by.items())
        lines.append(f"  peak {precision_label(p, dev)} {g:.0f} GFLOP/s (median over repeats), set by: {named or '-'}")
    if any(name.split(",")[0].endswith("loop") or " loop " in name for by in src.values() for name in by):
        lines.append("  note: a loop ran faster than every kernel measured, so it set the peak and reads 100%; the "
                     "kernels measured do not bound this machine")
    lines += [head, "-" * len(head)]
    for c in summary["cases"]:
        lines.append(f"{c['case']:28s} {precision_label(c.get('precision', 'fp32'), dev):>4s} "
                     f"{c['train_img_s']:10.0f} {c['reference_img_s']:9.0f} "
                     f"{c['speedup_vs_reference']:6.2f}x {c['torchvision_style_img_s']:8.0f} "
                     f"{c['speedup_vs_torchvision_style']:5.2f}x {c['gflop_per_image'] * 1e3:9.1f} "
                     f"{c['achieved_gflop_s']:8.1f} {100 * c['peak_utilization']:5.1f}% "
                     f"{100 * c['reference_peak_utilization']:7.1f}% {c['eval_img_s']:10.0f} "
                     f"{c['reference_eval_img_s']:8.0f} {c['torchvision_style_eval_img_s']:7.0f} "
                     f"{_dur(c['lw_round_s']):>9s}")
    rows = [(c["case"], v) for c in summary["cases"] for v in c.get("variants", [])]
    if rows:
        lines += ["", f"{'variant of reinitlab loop':44s} {'prec':>4s} {'train img/s':>11s} {'vs default':>10s} "
                      f"{'util':>6s} {'eval img/s':>10s} {'vs default':>10s}"]
        for case, v in rows:
            lines.append(f"{case + ' ' + v['variant']:44s} {precision_label(v.get('precision', 'fp32'), dev):>4s} "
                         f"{v['train_img_s']:11.0f} {v['train_vs_default']:9.2f}x "
                         f"{100 * v.get('peak_utilization', 0.0):5.1f}% {v['eval_img_s']:10.0f} "
                         f"{v['eval_vs_default']:9.2f}x")
    lines.append(f"({summary['repeats']} interleaved repeats, medians of within-repeat ratios; {summary['timer']} time; "
                 f"{summary['seconds']:.0f} s in all)")
    lines.append("ref: a Dataset of uint8 tensors normalized per sample, DataLoader, the standard loop; tv: the same loop "
                 "on a torchvision-style Dataset (PIL image per sample, ToTensor, Normalize)")
    share = summary.get("cpu_share")
    if share is not None and summary["timer"] == "wall" and share < 0.85:
        lines.append(f"note: the process got {100 * share:.0f}% of its {summary['threads']} threads' time: the machine "
                     "was busy, so absolute rates are low; the ratios compare loops measured side by side")
    return "\n".join(lines)


def _dur(s: float) -> str:
    if not math.isfinite(s):
        return "-"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


# ---- the command ------------------------------------------------------------------------------
def add_parser(subparsers) -> None:
    b = subparsers.add_parser("bench", help="training speed: reinitlab's loop vs the usual PyTorch loop and the "
                                            "machine's matmul peak")
    b.add_argument("--quick", action="store_true", help="fewer cases and repeats (a few minutes on 2 cores)")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    b.add_argument("--repeats", type=int, help="interleaved repeats (default 3 quick, 5 full)")
    b.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    b.add_argument("--compile", action="store_true", help="reinitlab's loop with torch.compile")
    b.add_argument("--timer", choices=["wall", "cpu"], default="wall",
                   help="cpu: process CPU time instead of wall time (stable on a shared machine with --threads 1)")
    b.add_argument("--variant", action="append", metavar="KEY=VALUE[,KEY=VALUE]",
                   help="also measure reinitlab's loop with these run settings, e.g. channels_last=false or "
                        "eval_batch_size=256 (repeatable)")
    b.add_argument("--case", action="append", metavar="ARCH:WIDTH:PX:CHANNELS",
                   help="a case instead of the default set, e.g. cnn:0.25:28:1 (repeatable)")
    b.add_argument("--profile", metavar="ARCH:WIDTH:PX:CHANNELS",
                   help="instead of benchmarking: where a training step of this case spends its time (torch.profiler)")
    b.set_defaults(func=cmd_bench)


def parse_case(text: str) -> Case:
    parts = text.split(":")
    if len(parts) != 4:
        raise UserError(f"--case {text!r}: expected ARCH:WIDTH:PX:CHANNELS, e.g. cnn:0.25:28:1")
    from ..models import check_arch
    check_arch(parts[0])
    try:
        case = Case(parts[0], float(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        raise UserError(f"--case {text!r}: WIDTH is a number, PX and CHANNELS integers") from None
    if case.channels not in (1, 3) or not 8 <= case.resolution <= 64 or not 0 < case.width <= 16:
        raise UserError(f"--case {text!r}: CHANNELS 1 or 3, PX in 8..64, WIDTH in (0, 16]")
    return case


def parse_variant(text: str) -> dict:
    from ..util.options import parse_assignment
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, v = parse_assignment(part)
        if k not in TrainConfig.field_names():
            raise UserError(f"--variant {text!r}: unknown run setting {k!r}")
        TrainConfig().set(k, v)  # refuses a wrong type now, not after minutes of measuring
        out[k] = v
    if not out:
        raise UserError("--variant: expected KEY=VALUE[,KEY=VALUE]")
    return out


def cmd_bench(args) -> int:
    if args.repeats is not None and args.repeats < 1:
        raise UserError("--repeats: expected an integer >= 1")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads: expected an integer >= 1")
    if args.profile:
        from .profile import format_profile, profile_case
        case = parse_case(args.profile)
        print(format_profile(profile_case(case, bench_bundle(case.resolution, case.channels), args.device, args.threads)))
        return 0
    cases = [parse_case(c) for c in args.case] if args.case else None
    variants = [parse_variant(v) for v in args.variant or []]
    run_bench(quick=args.quick, device=args.device, cases=cases, repeats=args.repeats, threads=args.threads,
              compile=args.compile, timer=args.timer, variants=variants)
    return 0
