"""Process-wide settings, set once by an entry point: a CLI command, a study worker, bench. A library
caller's `train.run` changes none of them for good: it trains on the run's threads and device
settings and puts the caller's back (`threads`, `device_settings`), and leaves the allocator alone.

- torch's intra-op thread count (a run's `threads`);
- on the CPU, glibc's allocator keeps freed memory (allocator.keep_freed_memory: most steps' activations
  reuse pages instead of faulting them in anew);
- on CUDA, fp32 matmuls on TF32 tensor cores (cuDNN's convs use them by default), which is what
  `precision=auto` (fp32) means there.

Building an Engine, loading a run folder or running analyses changes none of these, so a library
caller keeps its own settings, and nothing has to put them back afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..util.errors import UserError
from .allocator import keep_freed_memory


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda where available, else cpu; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device='cuda' but no CUDA device is available; use device=auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device='mps' but MPS is not available; use device=auto or cpu")
    return torch.device(name)


def configure(threads: int | None = None, device: str | torch.device | None = None) -> None:
    """Set this process up for training on `device` with `threads` intra-op threads. Either may be
    None (left as it is); the device settings only ever switch something on, so calling this again
    for another run of the same process is harmless."""
    if threads is not None:
        torch.set_num_threads(threads)
    if device is None:
        return
    dev = resolve_device(device) if isinstance(device, str) else device
    if dev.type == "cpu":
        keep_freed_memory()
    elif dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True


@contextmanager
def device_settings(device: torch.device) -> Iterator[None]:
    """Within the block, what `configure` would set for `device` except the allocator (TF32 on CUDA);
    the caller's settings are back after it."""
    before = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run a block on `n` intra-op threads and restore the caller's count after it (None: unchanged).
    For code that measures on behalf of a run with another thread count (the cost probes)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
