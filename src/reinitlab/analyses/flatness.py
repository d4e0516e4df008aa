"""Flatness of the training loss around the final weights.

1. Loss increase under weight noise: for each sigma, M samples of w + eps with
   eps ~ N(0, (sigma*|w|)^2) elementwise (relative, the default) or N(0, sigma^2) (absolute), added
   to every parameter (conv, linear, BatchNorm affine, biases; buffers such as running statistics
   and LW's standardization stay); the mean and std over samples of loss(w + eps) - loss(w).
   At sigma 0 the noise is exactly zero, so the increase is exactly 0 (evaluated once, not M times).
2. The top Hessian eigenvalue of the training loss on a fixed subset, by power iteration on
   Hessian-vector products.

The loss is cross-entropy on the labels as trained, BatchNorm in eval mode, on a seeded subset of
the training examples. The weights are restored bit for bit afterwards, also on error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..core.groups import Groups
from ..util.seeding import generator
from .base import Analysis, AnalysisData, AnalysisResult, eval_mode, register, subsample
from .hessian import top_hessian_eigenvalue
from .metrics import Metric, Topic
from .plotting import figure, save


@torch.no_grad()
def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, batch_size: int) -> float:
    total = 0.0
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size]).float()
        total += float(loss_fn(out, y[i:i + batch_size])) * len(out)
    return total / len(x)


def loss_increase(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigmas: list[float], samples: int,
                  relative: bool = True, seed: int = 0, loss_fn=nn.functional.cross_entropy,
                  batch_size: int = 1000) -> tuple[float, list[list[float]]]:
    """(base loss, increases[sigma index][sample]); eval mode; weights restored exactly."""
    params = [p for p in model.parameters()]
    saved = [p.detach().clone() for p in params]
    out: list[list[float]] = []
    with eval_mode(model):
        base = mean_loss(model, x, y, loss_fn, batch_size)
        try:
            for si, sigma in enumerate(sigmas):
                row = []
                # sigma 0 adds exact zeros, so every sample is the same: one evaluation stands for all
                for s in range(samples if sigma != 0 else 1):
                    g = generator(seed, "flatness", si, s)
                    with torch.no_grad():
                        for p, w in zip(params, saved, strict=True):
                            eps = torch.randn(w.shape, generator=g, dtype=w.dtype).to(w.device) * sigma
                            p.add_(eps * w.abs() if relative else eps)
                    row.append(mean_loss(model, x, y, loss_fn, batch_size) - base)
                    with torch.no_grad():
                        for p, w in zip(params, saved, strict=True):
                            p.copy_(w)
                out.append(row * samples if sigma == 0 else row)
        finally:
            with torch.no_grad():
                for p, w in zip(params, saved, strict=True):
                    p.copy_(w)
    return base, out


@register
class Flatness(Analysis):
    name = "flatness"
    summary = "training-loss increase under Gaussian weight noise over a sigma grid; top Hessian eigenvalue"
    topic = Topic("Why: flatness",
                  "Mean increase of the training loss (cross-entropy, BatchNorm in eval mode) when every weight gets "
                  "Gaussian noise N(0, (sigma·|w|)²), and the top Hessian eigenvalue; smaller = flatter.")
    metrics = (
        # sigma 0 adds no noise: its increase is exactly 0 in every run
        Metric("increase_sigma_{sigma}", "loss increase, sigma {sigma}", "lower", where=lambda s: float(s) > 0),
        Metric("hessian_top_eigenvalue", "top Hessian eigenvalue", "lower"),
    )
    headline = ("increase_sigma_0.05", "hessian_top_eigenvalue")

    @dataclass
    class Options:
        sigmas: list[float] = field(default_factory=lambda: [0.0, 0.01, 0.02, 0.05, 0.1])
        samples: int = 5
        relative: bool = True
        # losses before and after noise are paired on the same examples, so 500 suffice; the
        # analysis costs about (1 + samples * (len(sigmas) - 1)) forward passes over them
        max_examples: int | None = 500
        hessian: bool = True
        hessian_examples: int = 256
        hessian_iters: int = 20
        hessian_tol: float = 1e-3
        seed: int = 0

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options=None) -> AnalysisResult:
        o = options or self.Options()
        dev = data.x_train.device
        idx = subsample(len(data.x_train), o.max_examples, o.seed, "flatness").to(dev)
        x, y = data.x_train[idx], data.y_train[idx]
        base, inc = loss_increase(model, x, y, o.sigmas, o.samples, o.relative, o.seed, data.loss_fn,
                                  data.eval_batch_size)
        t = torch.tensor(inc, dtype=torch.float64)
        mean = t.mean(1)
        std = t.std(1) if o.samples > 1 else torch.zeros(len(o.sigmas), dtype=torch.float64)
        numbers: dict[str, float | None] = {"loss": base}
        for s, mu, sd in zip(o.sigmas, mean.tolist(), std.tolist(), strict=True):
            numbers[f"increase_sigma_{s:g}"] = mu
            numbers[f"increase_std_sigma_{s:g}"] = sd
        info = {"source": data.source, "n": len(idx), "examples": "training examples", "seed": o.seed,
                "noise": "relative N(0, (sigma*|w|)^2)" if o.relative else "absolute N(0, sigma^2)",
                "samples": o.samples}
        if o.hessian:
            hidx = subsample(len(data.x_train), o.hessian_examples, o.seed, "hessian").to(dev)
            hx, hy = data.x_train[hidx], data.y_train[hidx]
            params = [p for p in model.parameters() if p.requires_grad]
            with eval_mode(model):
                eig, used = top_hessian_eigenvalue(lambda: data.loss_fn(model(hx).float(), hy), params,
                                                   o.hessian_iters, o.hessian_tol, o.seed)
            numbers["hessian_top_eigenvalue"] = eig
            info.update(hessian_examples=len(hidx), hessian_iterations=used)
        return AnalysisResult(self.name, numbers, arrays={"sigmas": list(o.sigmas), "mean": mean, "std": std,
                                                          "samples": inc}, info=info)

    def plot(self, result: AnalysisResult, path: str) -> None:
        fig, (a,) = figure(1, width=5.5)
        s, mu, sd = result.arrays["sigmas"], result.arrays["mean"], result.arrays["std"]
        a.errorbar(s, mu, yerr=sd, fmt="o-", capsize=3)
        a.set_xlabel(f"sigma ({result.info.get('noise', '')})")
        a.set_ylabel(f"training-loss increase (mean ± std of {result.info.get('samples')})")
        eig = result.numbers.get("hessian_top_eigenvalue")
        if eig is not None:
            a.set_title(f"top Hessian eigenvalue {eig:.4g} on {result.info.get('hessian_examples')} examples",
                        fontsize=8)
        save(fig, path, result, "Flatness")
