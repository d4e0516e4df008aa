"""Training margins f_y(x) - max_{j != y} f_j(x) on the logits (BatchNorm in eval mode), raw and
normalized by the product of the operators' Frobenius norms and by the spectral complexity R.

Margins are taken w.r.t. the labels as trained (the noisy ones where the run had label noise): the
margin bound is about the training sample the model fitted. With label noise the clean and noisy
examples' medians are reported apart as well.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..core.groups import Groups
from ..measure.complexity import normalize, spectral_complexity
from ..measure.margins import margins_of
from ..measure.operators import layer_table, trace
from .base import Analysis, AnalysisData, AnalysisResult, histogram, logits_of, quantiles, register, subsample
from .metrics import Metric, Topic
from .plotting import figure, save


def _prefixed(prefix: str, d: dict) -> dict:
    return {f"{prefix}{k}": v for k, v in d.items()}


@register
class Margins(Analysis):
    name = "margins"
    summary = "training margins: quantiles, distribution, normalized by Frobenius product and spectral complexity"
    topic = Topic("Why: training margins",
                  "The paper's first explanation: LW raises training margins (f_y(x) − max_{j≠y} f_j(x) on the logits, "
                  "labels as trained) without raising the weight norms, so the normalized margin (margin / spectral "
                  "complexity R of Bartlett et al. 2017) improves.")
    metrics = (
        Metric("q05", "margin q05", "higher", fallback="margin_q05"),
        Metric("q25", "margin q25", "higher", fallback="margin_q25"),
        Metric("q50", "margin median", "higher", fallback="margin_q50"),
        Metric("spectral_normalized_q50", "margin median / R", "higher", also=("bound.normalized_q50",),
               fallback="normalized_margin_q50"),
        Metric("frobenius_normalized_q50", "margin median / Π‖A‖_F", "higher"),
        Metric("negative_fraction", "misfit fraction (margin ≤ 0) (%)", "lower", percent=True),
    )
    headline = ("q05", "q50", "spectral_normalized_q50")

    @dataclass
    class Options:
        max_examples: int | None = 2000  # training examples, drawn by seed; None = all
        seed: int = 0
        bins: int = 50
        power_iters: int = 200

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options=None) -> AnalysisResult:
        o = options or self.Options()
        idx = subsample(len(data.x_train), o.max_examples, o.seed, "margins").to(data.x_train.device)
        m = margins_of(logits_of(model, data.x_train[idx], data.eval_batch_size), data.y_train[idx]).cpu()
        tr = trace(model, data.x_train[:1], groups)
        cx = spectral_complexity(layer_table(tr.ops, o.power_iters, raw=False, seed=o.seed))
        by_frob = normalize(m, cx["log10_frobenius_product"])
        by_r = normalize(m, cx["log10_spectral_complexity"])
        numbers = {**quantiles(m), "mean": float(m.mean()), "min": float(m.min()),
                   "negative_fraction": float((m <= 0).double().mean()),
                   **_prefixed("frobenius_normalized_", quantiles(by_frob)),
                   **_prefixed("spectral_normalized_", quantiles(by_r)),
                   "log10_frobenius_product": cx["log10_frobenius_product"],
                   "log10_spectral_complexity": cx["log10_spectral_complexity"]}
        if data.has_noise:
            noisy = torch.zeros(len(data.x_train), dtype=torch.bool)
            noisy[data.noisy.cpu()] = True
            sel = noisy[idx.cpu()]
            numbers["clean_q50"] = quantiles(m[~sel], (0.5,))["q50"]
            numbers["noisy_q50"] = quantiles(m[sel], (0.5,))["q50"]
        return AnalysisResult(self.name, numbers,
                              arrays={"margins": m, "spectral_normalized": by_r, "frobenius_normalized": by_frob,
                                      "histogram": histogram(m, o.bins),
                                      "histogram_spectral_normalized": histogram(by_r, o.bins)},
                              info={"source": data.source, "n": len(idx), "examples": "training examples",
                                    "seed": o.seed, "labels": "as trained (noisy where label noise)",
                                    "operators": len(tr.ops), "notes": tr.notes})

    def plot(self, result: AnalysisResult, path: str) -> None:
        fig, (a, b) = figure(2)
        for ax, key, label in ((a, "histogram", "margin f_y - max_{j≠y} f_j"),
                               (b, "histogram_spectral_normalized", "margin / spectral complexity R")):
            h = result.arrays[key]
            edges = h["edges"]
            ax.stairs(h["counts"], edges, fill=True, alpha=0.7)
            ax.axvline(0, color="k", lw=0.8)
            ax.set_xlabel(label)
            ax.set_ylabel("training examples")
        n = result.numbers
        a.set_title(f"q05 {n['q05']:.3g}  q25 {n['q25']:.3g}  q50 {n['q50']:.3g}", fontsize=8)
        q = n["spectral_normalized_q50"]
        b.set_title(f"median {q:.3g}" if q is not None else "", fontsize=8)
        save(fig, path, result, "Training margins")
