"""The spectrally-normalized margin bound of Bartlett, Foster and Telgarsky (2017).

    P[misclassified] <= R_gamma + O~( ||X||_F * R * ln(W) / (gamma * n) + sqrt(ln(1/delta) / n) )

R is the spectral complexity of `complexity.py` over the operators of `operators.py` (reference
matrices 0; conv (2,1) norms on the reshaped kernel; residual nets as a chain: see there). Reported
"up to its constant": for gamma the q-quantile of the training margins (so the empirical ramp loss
R_gamma is about q),

    bound_q = q + ||X||_F * R * ln(2W) * ln(n) / (gamma_q * n)

with the log factors of the paper's full statement and without its constant factor (72) and
confidence term. ||X||_F is over all n training inputs as the model saw them (normalized);
W is the largest number of units on either side of any operator. bound_q is null where gamma_q <= 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn as nn

from ..core.groups import Groups
from ..measure.complexity import normalize, spectral_complexity
from ..measure.margins import margins_of
from ..measure.operators import layer_table, trace
from .base import Analysis, AnalysisData, AnalysisResult, histogram, logits_of, quantiles, register, subsample
from .metrics import Metric
from .plotting import figure, operator_axis, save

LEVELS = (0.05, 0.1, 0.25, 0.5)


@register
class Bound(Analysis):
    name = "bound"
    summary = "spectral complexity R, normalized margins gamma/R, the margin bound up to its constant"
    metrics = (Metric("log10_R", "log10 spectral complexity R", "lower", also=("margins.log10_spectral_complexity",),
                      fallback="log10_spectral_complexity", topic="norms"),)
    headline = ("log10_R", "normalized_q50", "bound_q10")

    @dataclass
    class Options:
        max_examples: int | None = 2000
        seed: int = 0
        power_iters: int = 200
        bins: int = 50

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options=None) -> AnalysisResult:
        o = options or self.Options()
        tr = trace(model, data.x_train[:1], groups)
        rows = layer_table(tr.ops, o.power_iters, raw=False, seed=o.seed)
        cx = spectral_complexity(rows)
        n = len(data.x_train)
        idx = subsample(n, o.max_examples, o.seed, "margins").to(data.x_train.device)
        m = margins_of(logits_of(model, data.x_train[idx], data.eval_batch_size), data.y_train[idx]).cpu()
        normalized = normalize(m, cx["log10_spectral_complexity"])
        # in chunks: a float64 copy of a whole training set can be gigabytes
        x_norm = sum(float(c.double().pow(2).sum()) for c in data.x_train.split(4096)) ** 0.5
        width = max(op.width for op in tr.ops)
        logR = cx["log10_spectral_complexity"]
        numbers: dict[str, float | None] = {
            "log10_R": logR, "log10_spectral_product": cx["log10_spectral_product"],
            "correction": cx["correction"], "x_frobenius": x_norm, "n": n, "W": width,
            **{f"normalized_{k}": v for k, v in quantiles(normalized).items()}}
        gammas = quantiles(m, LEVELS)
        for q, (key, gamma) in zip(LEVELS, gammas.items(), strict=True):
            numbers[f"gamma_{key}"] = gamma
            if gamma is None or gamma <= 0:
                numbers[f"bound_{key}"] = None
                continue
            log_term = (logR * math.log(10) + math.log(x_norm) + math.log(math.log(2 * width))
                        + math.log(math.log(max(n, 3))) - math.log(gamma * n))
            numbers[f"bound_{key}"] = q + math.exp(log_term) if log_term < 700 else float("inf")
        terms = [{"name": r["name"], "group": r["group"], "spectral": r["spectral"], "norm21_t": r["norm21_t"],
                  "ratio_term": (r["norm21_t"] / r["spectral"]) ** (2 / 3) if r["spectral"] > 0 else 0.0}
                 for r in rows]
        return AnalysisResult(self.name, numbers,
                              arrays={"layers": terms, "histogram_normalized": histogram(normalized, o.bins)},
                              info={"source": data.source, "n": len(idx), "examples": "training examples",
                                    "seed": o.seed, "notes": tr.notes,
                                    "bound": "bound_qXX = q + ||X||_F R ln(2W) ln(n) / (gamma_q n), "
                                             "constant and confidence term omitted"})

    def plot(self, result: AnalysisResult, path: str) -> None:
        fig, (a, b) = figure(2, width=5.5)
        h = result.arrays["histogram_normalized"]
        a.stairs(h["counts"], h["edges"], fill=True, alpha=0.7)
        a.axvline(0, color="k", lw=0.8)
        a.set_xlabel("normalized margin gamma / R")
        a.set_ylabel("training examples")
        a.set_title(f"log10 R = {result.numbers['log10_R']:.3g}", fontsize=8)
        rows = result.arrays["layers"]
        b.bar(range(len(rows)), [r["ratio_term"] for r in rows])
        operator_axis(b, rows)
        b.set_ylabel("(||A^T||_{2,1} / ||A||_2)^{2/3}")
        save(fig, path, result, "Spectrally-normalized margin bound (Bartlett et al. 2017)")
