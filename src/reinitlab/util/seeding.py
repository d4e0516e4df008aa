"""Named, independent random streams derived from one integer seed.

Every source of randomness in a run (init, batch order, augmentation, fresh draws, masks,
data subsets) gets its own stream keyed by a purpose and the round/epoch, so resuming at any
epoch boundary replays exactly the same numbers without saving generator states.
"""
from __future__ import annotations

import hashlib

import torch


def derive(seed: int, *keys) -> int:
    text = repr((int(seed),) + tuple(keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *keys, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive(seed, *keys))
    return g
