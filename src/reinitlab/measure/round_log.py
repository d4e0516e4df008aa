"""The cheap diagnostics, logged at the end of every training round so their course over rounds
can be plotted: per-group Frobenius norms, the log10 product of the operators' spectral norms and
the spectral complexity, and the margin quantiles (raw and divided by the spectral complexity) on a
fixed seeded subsample of the training examples. Same definitions as the `norms`, `bound` and
`margins` analyses, with a looser power-iteration tolerance.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..core.groups import Groups
from .common import logits_of, quantiles, subsample
from .complexity import normalize, spectral_complexity
from .margins import margins_of
from .norms import group_norms, tensor_norms
from .operators import layer_table, trace


def round_log(model: nn.Module, groups: Groups, x: torch.Tensor, y: torch.Tensor, max_examples: int = 500,
              seed: int = 0, power_iters: int = 50, tol: float = 1e-5, batch_size: int = 1000) -> dict[str, float]:
    """Flat {name: float}; `x`, `y` the training inputs and labels as trained. Leaves the model's
    train/eval mode and weights as they were."""
    t = tensor_norms(model)
    out: dict[str, float] = {f"frobenius.{g}": v for g, v in group_norms(model, groups, t).items()}
    out["frobenius_total"] = sum(v * v for v in t.values()) ** 0.5
    cx = spectral_complexity(layer_table(trace(model, x[:1], groups).ops, power_iters, tol, seed, raw=False))
    out["log10_spectral_product"] = cx["log10_spectral_product"]
    out["log10_frobenius_product"] = cx["log10_frobenius_product"]
    out["log10_spectral_complexity"] = cx["log10_spectral_complexity"]
    idx = subsample(len(x), max_examples, seed, "round_log").to(x.device)
    m = margins_of(logits_of(model, x[idx], batch_size), y[idx]).cpu()
    out.update({f"margin_{k}": v for k, v in quantiles(m).items()})
    out.update({f"normalized_margin_{k}": v
                for k, v in quantiles(normalize(m, cx["log10_spectral_complexity"])).items()})
    return out
