"""Weight norms: Frobenius per parameter tensor and per group (every parameter the group owns,
BatchNorm affine parameters and biases included, as training logs them), and per operator the
spectral norm (Lanczos-accelerated power iteration on the conv map itself), the Frobenius norm and their products.

Operators are those of `operators.trace`. Both views are reported because they answer different
questions: `spectral` / `frobenius` are the effective layers (eval BatchNorm scale folded into the
preceding conv, LW's 1/std folded into the conv that reads it), which is what the network computes
and what the margin bound uses; `spectral_raw` / `frobenius_raw` are the conv and linear weights
alone, which is what weight decay and LW's norm rescaling act on (BatchNorm makes a conv's output
invariant to the scale of its weight, so the raw norm alone says little about the function).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..core.groups import Groups
from ..measure.complexity import log10_product
from ..measure.norms import group_norms, tensor_norms
from ..measure.operators import layer_table, trace
from .base import Analysis, AnalysisData, AnalysisResult, register
from .metrics import Metric, Topic
from .plotting import figure, operator_axis, save


@register
class Norms(Analysis):
    name = "norms"
    summary = "Frobenius norms per tensor and group; spectral norms per operator (raw and BN/standardization folded)"
    topic = Topic("Why: weight norms and the margin bound",
                  "Final weights: the Frobenius norm of every parameter, log10 of the product of the operators' "
                  "spectral norms (effective: eval BatchNorm and LW's standardization folded in; raw: the weights "
                  "alone) and log10 of the spectral complexity R. The per-round table follows them through training "
                  "(diagnostics logged at the end of every round); baseline and long train in one round, so their "
                  "only value is round 0, after E and (R+1)·E epochs.")
    metrics = (
        Metric("frobenius_total", "Frobenius norm, all parameters", fallback="frobenius_total"),
        Metric("log10_spectral_product", "log10 Π‖A‖_2 (effective)", also=("bound.log10_spectral_product",),
               fallback="log10_spectral_product"),
        Metric("log10_spectral_product_raw", "log10 Π‖W‖_2 (weights alone)"),
    )
    headline = ("frobenius_total", "log10_spectral_product", "log10_spectral_product_raw")

    @dataclass
    class Options:
        power_iters: int = 200
        tol: float = 1e-7
        seed: int = 0

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options=None) -> AnalysisResult:
        o = options or self.Options()
        per_tensor = tensor_norms(model)
        per_group = group_norms(model, groups, per_tensor)
        tr = trace(model, data.x_train[:1], groups)
        rows = layer_table(tr.ops, o.power_iters, o.tol, o.seed, raw=True)
        own = [r for r in rows if r["kind"] != "diag"]
        numbers: dict[str, float | None] = {f"frobenius.{g}": v for g, v in per_group.items()}
        numbers["frobenius_total"] = sum(v ** 2 for v in per_tensor.values()) ** 0.5
        numbers["log10_spectral_product"] = log10_product([r["spectral"] for r in rows])
        numbers["log10_frobenius_product"] = log10_product([r["frobenius"] for r in rows])
        numbers["log10_spectral_product_raw"] = log10_product([r["spectral_raw"] for r in own])
        numbers["log10_frobenius_product_raw"] = log10_product([r["frobenius_raw"] for r in own])
        for g in groups.names:  # per-group products: where along the depth the scale sits
            mine = [r["spectral"] for r in rows if r["group"] == g]
            numbers[f"log10_spectral_product.{g}"] = log10_product(mine) if mine else None
        return AnalysisResult(self.name, numbers, arrays={"tensors": per_tensor, "layers": rows},
                              info={"source": data.source, "n": None, "seed": o.seed, "operators": len(rows),
                                    "notes": tr.notes,
                                    "definition": "spectral: Lanczos power iteration on the effective operator "
                                                  "(eval BN scale folded into the preceding conv/linear, LW "
                                                  "standardization 1/std folded into its readers); *_raw: "
                                                  "the module's weight alone"})

    def plot(self, result: AnalysisResult, path: str) -> None:
        fig, (a, b) = figure(2, width=5.5)
        groups = [k.split(".", 1)[1] for k in result.numbers if k.startswith("frobenius.")]
        a.bar(range(len(groups)), [result.numbers[f"frobenius.{g}"] for g in groups])
        a.set_xticks(range(len(groups)), groups, rotation=60, fontsize=7)
        a.set_ylabel("Frobenius norm of the group's parameters")
        rows = result.arrays["layers"]
        x = range(len(rows))
        b.semilogy(x, [r["spectral"] for r in rows], "o-", ms=3, label="effective (BN, 1/std folded)")
        raw = [(i, r["spectral_raw"]) for i, r in enumerate(rows) if r.get("spectral_raw") is not None]
        if raw:
            b.semilogy([i for i, _ in raw], [v for _, v in raw], "s--", ms=3, label="weight alone")
        operator_axis(b, rows)
        b.set_ylabel("spectral norm")
        b.legend(fontsize=7)
        save(fig, path, result, "Weight norms")
