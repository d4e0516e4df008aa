"""Small measurement helpers that training's round diagnostics and the analyses share: seeded
subsamples, eval mode, logits in batches, accuracy, quantiles, histograms."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn as nn

from ..util.seeding import generator


def subsample(n: int, max_examples: int | None, seed: int, *keys: Any) -> torch.Tensor:
    """Sorted positions of at most `max_examples` of n items, fixed by (seed, keys)."""
    if max_examples is None or max_examples >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=generator(seed, "analysis", *keys))[:max_examples].sort().values


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """BatchNorm on running statistics and no dropout, restoring the caller's mode afterwards."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run many tiny ops (batch-of-one convs, small matrices) on one intra-op thread: a second thread
    only adds synchronization, and on a busy machine its barrier waits made the conv spectral norms
    50x slower (measured: 5.3 s on two threads vs 0.1 s on one for a width-1 cnn)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float | None:
    return float((logits.argmax(1) == y).float().mean()) if len(y) else None


def quantiles(v: torch.Tensor, qs: tuple[float, ...] = (0.05, 0.25, 0.5)) -> dict[str, float | None]:
    """{"q05": ..., "q25": ..., "q50": ...}: linear interpolation, as numpy's default."""
    if v.numel() == 0:
        return {f"q{round(q * 100):02d}": None for q in qs}
    t = torch.quantile(v.double(), torch.tensor(qs, dtype=torch.float64))
    return {f"q{round(q * 100):02d}": float(x) for q, x in zip(qs, t, strict=True)}


def histogram(v: torch.Tensor, bins: int = 50) -> dict[str, list[float]]:
    v = v.double().cpu()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1e-12
    counts = torch.histc(v, bins=bins, min=lo, max=hi)
    edges = torch.linspace(lo, hi, bins + 1)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
