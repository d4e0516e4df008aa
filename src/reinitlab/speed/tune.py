"""The one seam through which speed reaches a run's model: `accelerate(model, device, channels_last)`
puts the model in its training memory format and applies the CPU detours, and returns what
evaluation needs. The engine (train/engine.py) and the precision probe call it; neither knows what
it does.

- channels-last memory for training (+0 to +50% on the CPU, never clearly worse);
- on the CPU, BatchNorm layers below 16 channels train through few_channel_bn.py (PyTorch's
  channels-last kernel is slow there); same parameters, buffers and state-dict keys;
- on the CPU, the evaluation memory format measured fastest for the model (cpu_eval_memory_format):
  the weights are converted for an evaluation pass and back, an exact copy each way.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn as nn

from .few_channel_bn import few_channel_batchnorm


@dataclass(frozen=True)
class Accelerated:
    """What `accelerate` chose for one model."""

    memory_format: torch.memory_format  # training's, and the data's
    eval_format: torch.memory_format

    @contextmanager
    def evaluating(self, model: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """Within the block the model is in its evaluation memory format; yields what to apply to each
        input batch. The conversion runs outside inference mode: weights made there could not be
        trained again."""
        if self.eval_format == self.memory_format:
            yield lambda x: x
            return
        model.to(memory_format=self.eval_format)
        try:
            yield lambda x: x.contiguous(memory_format=self.eval_format)
        finally:
            model.to(memory_format=self.memory_format)


def adam_options(device: torch.device) -> dict:
    """Adam's implementation: the fused kernel on CPU and CUDA, 2.0x the plain loop's steps/s for Kumar
    et al.'s MLP at batch 16 on a shared AMD Zen 3 (2026-12-07, one thread; foreach: 1.3x). Its
    arithmetic is its own, so runs compare within one implementation, as within one kernel level."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def accelerate(model: nn.Module, device: torch.device, channels_last: bool) -> Accelerated:
    """Move `model` to `device` in its training memory format and apply the CPU detours (in place)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=fmt)
    cpu = device.type == "cpu" and channels_last
    if cpu:
        few_channel_batchnorm(model)
    return Accelerated(fmt, cpu_eval_memory_format(model) if cpu else fmt)


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
