"""One optimizer step, the same for the training loop (engine.py) and the precision probe
(precision.py), so the probe times exactly the arithmetic a run trains with.

Only the forward pass runs under the precision's autocast: the logits are cast to fp32 before the
loss, and a method's penalty (l2init) is added in fp32 too.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Callable

import torch


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager:
    """The context the forward pass of `precision` ("fp32" or "bf16") runs in on `device`."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def sgd_step(forward: Callable, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer,
             autocast: AbstractContextManager, loss_fn: Callable,
             penalty: Callable[[], torch.Tensor | None] = lambda: None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (under `autocast`), loss on fp32 logits plus `penalty()`, backward, `opt.step()`.
    Returns (the loss without the penalty, the fp32 logits)."""
    with autocast:
        out = forward(x).float()
    loss = loss_fn(out, y)
    extra = penalty()
    opt.zero_grad(set_to_none=True)
    (loss if extra is None else loss + extra).backward()
    opt.step()
    return loss, out
