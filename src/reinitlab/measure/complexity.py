"""Spectral complexity (Bartlett, Foster and Telgarsky 2017) and norm products, in log space.

    R = prod_i ||A_i||_2 * ( sum_i ( ||A_i^T||_{2,1} / ||A_i||_2 )^(2/3) )^(3/2)

with the reference matrices M_i of the paper set to 0, A_i the operators of `operators.trace`
(BatchNorm and LW's standardization folded in; convs with the reshaped-kernel (2,1) norm). Products
of many norms overflow float64 in deep nets, so everything is carried as log10.
"""
from __future__ import annotations

import math

import torch

from ..util.errors import UserError


def log10_product(values: list[float]) -> float:
    if any(v <= 0 for v in values):
        return float("-inf")
    return sum(math.log10(v) for v in values)


def spectral_complexity(rows: list[dict]) -> dict[str, float]:
    """From `operators.layer_table` rows: log10 of R, of the spectral and Frobenius products, and the
    correction factor (sum ...)^(3/2)."""
    if not rows:
        raise UserError("found no conv or linear module in the model's forward pass, so no operator "
                        "norms (a model written with functional calls only?); use --only to skip "
                        "norms, bound and margins")
    spec = [r["spectral"] for r in rows]
    terms = [(r["norm21_t"] / r["spectral"]) ** (2 / 3) if r["spectral"] > 0 else 0.0 for r in rows]
    log_prod = log10_product(spec)
    correction = sum(terms) ** 1.5
    return {"log10_spectral_product": log_prod,
            "log10_frobenius_product": log10_product([r["frobenius"] for r in rows]),
            "correction": correction,
            "log10_spectral_complexity": log_prod + math.log10(correction) if correction > 0 else float("-inf"),
            "layers": len(rows)}


def normalize(margins: torch.Tensor, log10_scale: float) -> torch.Tensor:
    """margins / 10**log10_scale without forming the (possibly overflowing) scale itself."""
    m = margins.double()
    return torch.sign(m) * torch.exp(torch.log(m.abs().clamp_min(1e-300)) - log10_scale * math.log(10))
