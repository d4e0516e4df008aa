"""Batched augmentation on normalized float tensors: one call per batch, no per-image Python."""
from __future__ import annotations

import torch


def flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=g, device=g.device) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def crop(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random translation by up to `pad` pixels with zero fill (zero = the mean after normalization)."""
    n, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=g.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=g.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    # Advanced indexing gives [N, H, W, C]; permuting back is a channels-last view, no copy.
    return xp.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows, cols].permute(0, 3, 1, 2)


def augment(x: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    if kind in ("crop", "flip+crop"):
        x = crop(x, g)
    if kind in ("flip", "flip+crop"):
        x = flip(x, g)
    return x
