"""CPU-only choices: how the C allocator hands memory to training, the memory format of
evaluation, and of training BatchNorm over few channels.

PyTorch's CPU tensors come straight from malloc. glibc serves blocks above its mmap threshold
(at most 32 MiB) with a fresh mmap and unmaps them on free, and trims the heap's free top back to
the kernel, so every training step of a wide network touches its activations' pages anew: about
240,000 page faults (1 GB zeroed by the kernel) per step of a full-width ResNet-18 at batch 128,
and 80,000 per evaluation batch of 256. Serving everything from the heap and keeping freed
memory in the process removes most of them (a 64 MiB block allocated again in a loop still
faults on some rounds: tests/test_throughput.py counts the rounds that do not): measured 1.10x training and 1.15x evaluation images/s for
resnet18 width 1 (1 thread, CPU time, allocator switched back and forth in one process; the
textbook loop gains the same). The price is that the process keeps its peak memory until it
exits, which a training process does anyway.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

import torch
import torch.nn as nn

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Switch glibc malloc to heap-only, untrimmed allocation (once per process). Returns whether
    it is in effect; elsewhere (macOS, musl, Windows) it does nothing."""
    global _applied
    if _applied is None:
        _applied = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                no_mmap = libc.mallopt(_M_MMAP_MAX, 0)  # mallopt returns 1 on success
                no_trim = libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # its largest value (an int)
                _applied = bool(no_mmap and no_trim)
            except (OSError, AttributeError):
                _applied = False
    return _applied


def cpu_eval_memory_format(model: nn.Module) -> torch.memory_format:
    """The memory format that evaluates `model` fastest on the CPU, from measurements.

    Channels-last, except for nets whose convs all have 64 or more output channels and that have no
    max-pool (full-width ResNets): there oneDNN's inference convs run faster in NCHW. Measured
    (1 thread, CPU time, evaluation img/s, NCHW vs channels-last): resnet18 width 1 at 32 px
    1.09-1.12x; resnet18 width 0.25 0.83-0.89x; cnn 0.45-0.57x (its max-pools are slow in NCHW).
    Training stays channels-last everywhere (NCHW: 0.65-0.93x)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pools = any(isinstance(m, nn.modules.pooling._MaxPoolNd) for m in model.modules())
    if convs and not pools and min(c.out_channels for c in convs) >= 64:
        return torch.contiguous_format
    return torch.channels_last


# Below this many channels a channels-last BatchNorm trained slower than an NCHW one on the AMD Zen 3
# development CPU: forward+backward, 2 threads, batch 128: 8 channels at 28 px 8.75 ms channels-last
# vs 2.18 ms NCHW (at 32 px 11.4 vs 2.9 ms); 16 channels at 14 px 0.91 vs 1.47 ms, 32 at 7 px 0.57
# vs 0.67 ms. Kernels differ between CPUs: the gain has to be measured on each.
#
# Resume stays bit-identical with the path on: the copies are exact, the hooks hold no state, and the
# same layers get them in every process (chosen from the model alone). A kill-and-resume test once
# ended a resumed epoch a few ulps off with this path; the cause was the thread count (a restarted
# study with one run left gave it every core), which changes the last bits with or without it.
FEW_CHANNELS = 16


def _to_nchw(module: nn.Module, args):
    if module.training:
        return (args[0].contiguous(),) + tuple(args[1:])


def _to_channels_last(module: nn.Module, args, out):
    if module.training:
        return out.contiguous(memory_format=torch.channels_last)


def nchw_batchnorm_for_few_channels(model: nn.Module) -> int:
    """Let every BatchNorm2d with fewer than FEW_CHANNELS channels train on an NCHW copy of its
    input in a channels-last model (two copies of a small tensor instead of PyTorch's slow
    channels-last kernel for few channels). Evaluation is untouched. Returns the number of layers."""
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.num_features < FEW_CHANNELS]
    for m in layers:
        m.register_forward_pre_hook(_to_nchw)
        m.register_forward_hook(_to_channels_last)
    return len(layers)
