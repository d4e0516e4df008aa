"""Where general features live: for the output of each group (after LW's standardization where there
is one), global-average-pooled over space, the accuracy on held-out data of

- a k-NN classifier (k=5, cosine similarity on L2-normalized features, majority vote, ties broken
  by the summed similarity), and
- a linear probe: multinomial logistic regression on features standardized with the probe-train
  statistics, L2 penalty `weight_decay`, fitted full-batch by L-BFGS.

Both are fitted on a seeded subset of the training examples with their true labels (the question
is what the features encode about the classes, not about the noise) and evaluated on a seeded
subset of the test set (or the validation set: `eval_on=val`). Nothing is selected on these
numbers, so reading the test set here does not leak into any model choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.groups import Groups
from ..util.errors import UserError
from .base import Analysis, AnalysisData, AnalysisResult, eval_mode, register, subsample
from .metrics import Metric, Topic
from .plotting import figure, save


@torch.no_grad()
def group_features(model: nn.Module, groups: Groups, x: torch.Tensor, batch_size: int = 1000
                   ) -> dict[str, torch.Tensor]:
    """Pooled output of every group: [N, channels] (spatial dims averaged), float32 on the CPU."""
    feats: dict[str, list[torch.Tensor]] = {g: [] for g in groups.names}
    handles = []
    for g in groups.names:
        def hook(_m, _inp, out, g=g):
            out = out.float()
            feats[g].append((out.mean(dim=tuple(range(2, out.dim()))) if out.dim() > 2 else out.flatten(1)).cpu())
        # registered last, so it sees the output after the module's other hooks (LW's standardization)
        handles.append(model.get_submodule(groups.output[g]).register_forward_hook(hook))
    try:
        with eval_mode(model):
            for i in range(0, len(x), batch_size):
                model(x[i:i + batch_size])
    finally:
        for h in handles:
            h.remove()
    return {g: torch.cat(v) for g, v in feats.items()}


def knn_accuracy(f_train: torch.Tensor, y_train: torch.Tensor, f_eval: torch.Tensor, y_eval: torch.Tensor,
                 k: int = 5, chunk: int = 1024) -> float:
    a = F.normalize(f_train.double(), dim=1)
    C = int(max(y_train.max(), y_eval.max())) + 1
    k = min(k, len(a))
    correct = 0
    for i in range(0, len(f_eval), chunk):
        sim = F.normalize(f_eval[i:i + chunk].double(), dim=1) @ a.T
        top, j = sim.topk(k, dim=1)
        votes = torch.zeros(len(sim), C, dtype=torch.float64)
        votes.scatter_add_(1, y_train[j], torch.ones_like(top))
        # summed similarities scaled into (-1/2, 1/2): they can reorder classes only within a tie
        tie = torch.zeros_like(votes).scatter_add_(1, y_train[j], top) / (2 * k + 1)
        correct += int(((votes + tie).argmax(1) == y_eval[i:i + chunk]).sum())
    return correct / len(f_eval)


def linear_probe_accuracy(f_train: torch.Tensor, y_train: torch.Tensor, f_eval: torch.Tensor, y_eval: torch.Tensor,
                          iters: int = 100, weight_decay: float = 1e-4) -> tuple[float, float]:
    """(held-out accuracy, probe-train accuracy) of an L2-regularized softmax regression."""
    mu = f_train.double().mean(0)
    sd = f_train.double().std(0).clamp_min(1e-6) if len(f_train) > 1 else torch.ones_like(mu)
    a, b = (f_train.double() - mu) / sd, (f_eval.double() - mu) / sd
    C = int(max(y_train.max(), y_eval.max())) + 1
    w = torch.zeros(a.shape[1], C, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(C, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, y_train) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        held = float(((b @ w + bias).argmax(1) == y_eval).double().mean())
        fit = float(((a @ w + bias).argmax(1) == y_train).double().mean())
    return held, fit


@register
class Probes(Analysis):
    name = "probes"
    summary = "k-NN and linear-probe accuracy of each group's pooled features on held-out data"
    topic = Topic("Why: where general features live (layer probes)",
                  "Held-out accuracy of a linear probe and of 5-NN on the pooled features after each group (fitted on "
                  "training examples with their true labels); the paper's claim is that LW leans on its lower layers.")
    metrics = (
        Metric("linear_acc.{group}", "linear probe after {group} (%)", "higher", percent=True),
        Metric("knn_acc.{group}", "5-NN after {group} (%)", "higher", percent=True),
    )
    headline = ("linear_acc.{group}",)

    @dataclass
    class Options:
        max_train: int | None = 2000  # probe-train examples (training subset, true labels)
        max_eval: int | None = 2000
        eval_on: Literal["test", "val"] = "test"
        k: int = 5
        linear_iters: int = 100
        weight_decay: float = 1e-4
        seed: int = 0

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options=None) -> AnalysisResult:
        o = options or self.Options()
        x_eval, y_eval = (data.x_test, data.y_test) if o.eval_on == "test" else (data.x_val, data.y_val)
        if x_eval is None or len(x_eval) == 0:
            raise UserError(f"probes: eval_on={o.eval_on!r} but the data has no {o.eval_on} set")
        i = subsample(len(data.x_train), o.max_train, o.seed, "probes", "train").to(data.x_train.device)
        j = subsample(len(x_eval), o.max_eval, o.seed, "probes", "eval").to(x_eval.device)
        ftr = group_features(model, groups, data.x_train[i], data.eval_batch_size)
        fev = group_features(model, groups, x_eval[j], data.eval_batch_size)
        ytr, yev = data.true_labels[i].cpu(), y_eval[j].cpu()
        numbers: dict[str, float | None] = {}
        dims = {}
        for g in groups.names:
            numbers[f"knn_acc.{g}"] = knn_accuracy(ftr[g], ytr, fev[g], yev, o.k)
            numbers[f"linear_acc.{g}"], numbers[f"linear_train_acc.{g}"] = linear_probe_accuracy(
                ftr[g], ytr, fev[g], yev, o.linear_iters, o.weight_decay)
            dims[g] = ftr[g].shape[1]
        return AnalysisResult(self.name, numbers, arrays={"groups": list(groups.names), "feature_dims": dims},
                              info={"source": data.source, "n": len(i), "examples": f"probe-train, {len(j)} {o.eval_on}",
                                    "seed": o.seed, "k": o.k, "eval_on": o.eval_on,
                                    "knn": "cosine similarity, majority vote", "labels": "true labels"})

    def plot(self, result: AnalysisResult, path: str) -> None:
        fig, (a,) = figure(1, width=6)
        gs = result.arrays["groups"]
        a.plot(range(len(gs)), [result.numbers[f"knn_acc.{g}"] for g in gs], "o-", label=f"{result.info['k']}-NN")
        a.plot(range(len(gs)), [result.numbers[f"linear_acc.{g}"] for g in gs], "s-", label="linear probe")
        a.set_xticks(range(len(gs)), gs, rotation=60, fontsize=7)
        a.set_ylim(0, 1.02)
        a.set_ylabel(f"{result.info['eval_on']} accuracy")
        a.set_xlabel("features after group")
        a.legend(fontsize=8)
        save(fig, path, result, "Layer probes")
