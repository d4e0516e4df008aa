"""Classification margins on logits."""
from __future__ import annotations

import torch


def margins_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example f_y - max_{j != y} f_j: positive iff classified correctly (ties count as wrong)."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, y.view(-1, 1), float("-inf"))
    return true - others.max(1).values
