"""Distance from initialization: how far training and the resets moved the weights from the run's
own round-0 draw w0, per group and over all parameters,

    relative_g   = ||w_g - w0_g|| / ||w0_g||
    norm_ratio_g = ||w_g|| / ||w0_g||

(Frobenius over every parameter the group owns: conv and linear weights, biases, BatchNorm affine
parameters; buffers such as running statistics and LW's frozen standardization are not weights).
The source paper argues that LW raises margins "without increasing the norm": LW rescales every kept
tensor to its initial norm, so its norm ratio stays near 1 while its distance need not. A re-drawn
tensor is a draw independent of w0 at the same scale, about sqrt(2) ||w0|| from it, except BatchNorm's
weights and biases, drawn as constants (1 and 0), which return exactly to w0: a re-drawn conv group
(conv weight ||W0||^2 ~ 2 C_in under He init, BN weight ||1||^2 = C_out) sits near 1, a linear head
near sqrt(2). Measured on the claims preset shrunk (cnn width 0.5, R=3): lw's block2 and block3,
re-drawn in round 1, 1.00; its head 1.39; baseline's groups 0.01-0.07.

w0 is rebuilt from the run's config (the model is built under the seed's init stream), so nothing
beyond model.pt is stored; in memory it is `AnalysisData.initial_state`. A group whose w0 is all
zeros has no relative distance (null). Without initial weights (a model from a user's own loop that
passed none) every number is null and `info.note` says why, as memorization does without label noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..core.groups import Groups
from ..util.errors import UserError
from .base import Analysis, AnalysisData, AnalysisResult, register
from .metrics import Metric, Topic
from .plotting import figure, save


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


@torch.no_grad()
def distances(model: nn.Module, groups: Groups, initial: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per group and "total": squared norms of w - w0, w and w0 (float64)."""
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in initial or initial[n].shape != params[n].shape]
    if missing:
        raise UserError(f"distance: the initial weights do not match the model (parameter {missing[0]!r}); "
                        "they must come from the same architecture and width")
    sq = {}
    for n, p in params.items():
        w, w0 = p.detach().double(), initial[n].detach().to(p.device).double()
        sq[n] = (float((w - w0).pow(2).sum()), float(w.pow(2).sum()), float(w0.pow(2).sum()))
    out = {}
    for g in groups.names:
        out[g] = {k: sum(sq[n][i] for n in groups.params[g]) for i, k in enumerate(("diff", "w", "w0"))}
    out["total"] = {k: sum(v[i] for v in sq.values()) for i, k in enumerate(("diff", "w", "w0"))}
    out["tensors"] = sq
    return out


@register
class Distance(Analysis):
    name = "distance"
    summary = "distance of the weights from the run's initial draw, ||w - w0|| / ||w0||, and ||w|| / ||w0||, per group"
    topic = Topic("Why: distance from initialization",
                  "How far the final weights are from the run's own initial draw w0: ‖w − w0‖ / ‖w0‖ per group and "
                  "over all parameters, beside the norm ratio ‖w‖ / ‖w0‖. The paper argues LW raises margins without "
                  "increasing the norm: LW rescales every kept tensor to its initial norm (ratio near 1). A re-drawn tensor "
                  "is an independent draw, about √2·‖w0‖ from w0 (BatchNorm's constant 1 and 0 return exactly to w0, so "
                  "a re-drawn conv group sits near 1, a linear head near √2).")
    metrics = (
        Metric("relative_total", "‖w − w0‖ / ‖w0‖, all parameters"),
        Metric("norm_ratio_total", "‖w‖ / ‖w0‖, all parameters"),
        Metric("relative.{group}", "‖w − w0‖ / ‖w0‖ of {group}"),
        Metric("norm_ratio.{group}", "‖w‖ / ‖w0‖ of {group}"),
    )
    headline = ("relative_total", "norm_ratio_total")

    @dataclass
    class Options:
        pass

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options=None) -> AnalysisResult:
        if data.initial_state is None:
            keys = ["relative_total", "norm_ratio_total", *(f"{k}.{g}" for k in ("relative", "norm_ratio")
                                                             for g in groups.names)]
            return AnalysisResult(self.name, dict.fromkeys(keys), arrays={"groups": list(groups.names), "tensors": {}},
                                  info={"source": data.source, "n": None, "seed": None,
                                        "note": "no initial weights given (AnalysisData.initial_state): the distance "
                                                "from initialization is not measurable"})
        d = distances(model, groups, data.initial_state())
        numbers: dict[str, float | None] = {
            "relative_total": _ratio(d["total"]["diff"] ** 0.5, d["total"]["w0"] ** 0.5),
            "norm_ratio_total": _ratio(d["total"]["w"] ** 0.5, d["total"]["w0"] ** 0.5)}
        for g in groups.names:
            numbers[f"relative.{g}"] = _ratio(d[g]["diff"] ** 0.5, d[g]["w0"] ** 0.5)
        for g in groups.names:
            numbers[f"norm_ratio.{g}"] = _ratio(d[g]["w"] ** 0.5, d[g]["w0"] ** 0.5)
        tensors = {n: _ratio(diff ** 0.5, w0 ** 0.5) for n, (diff, _, w0) in d["tensors"].items()}
        return AnalysisResult(self.name, numbers, arrays={"groups": list(groups.names), "tensors": tensors},
                              info={"source": data.source, "n": None, "seed": None,
                                    "definition": "||w - w0|| / ||w0|| and ||w|| / ||w0||, Frobenius over the "
                                                  "parameters of each group; w0 the run's round-0 draw"})

    def plot(self, result: AnalysisResult, path: str) -> None:
        fig, (a,) = figure(1, width=6)
        gs = result.arrays["groups"]
        x = torch.arange(len(gs)).tolist()
        for key, label, shift in (("relative", "‖w − w0‖ / ‖w0‖", -0.2), ("norm_ratio", "‖w‖ / ‖w0‖", 0.2)):
            vals = [result.numbers.get(f"{key}.{g}") for g in gs]
            a.bar([i + shift for i in x], [v if v is not None else 0.0 for v in vals], 0.4, label=label)
        a.axhline(1.0, color="k", lw=0.6)
        a.set_xticks(x, gs, rotation=60, fontsize=7)
        a.set_ylabel("ratio to the initial weights")
        a.legend(fontsize=8)
        n = result.numbers
        rel, ratio = n.get("relative_total"), n.get("norm_ratio_total")
        a.set_title(f"all parameters: distance {rel:.3g}, norm ratio {ratio:.3g}" if rel is not None and ratio is not None
                    else result.info.get("note", ""), fontsize=8)
        save(fig, path, result, "Distance from initialization")
