"""Memorization under label noise.

With label noise, the noisy training examples carry a random wrong label; a model that fits them
has memorized them. Reported on the examples as trained: the memorized fraction (accuracy on the
noisy examples w.r.t. their noisy labels), the same examples' accuracy w.r.t. their true labels
(what the model would have predicted had it not memorized), the accuracy on the clean training
examples, and clean test accuracy (all of the test set unless `max_test`). Without label noise only the accuracies are
reported and `info.note` says that memorization is not measurable.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..core.groups import Groups
from .base import Analysis, AnalysisData, AnalysisResult, accuracy, logits_of, register, subsample
from .metrics import Metric, Topic
from .plotting import figure, save


@register
class Memorization(Analysis):
    name = "memorization"
    summary = "label noise: memorized fraction of noisy examples, their true-label accuracy, clean accuracies"
    topic = Topic("Why: memorization under label noise",
                  "Only combinations with label noise: the memorized fraction is the accuracy on the noisy training "
                  "examples w.r.t. their (wrong) noisy labels; their true-label accuracy is what the model predicts "
                  "when it does not memorize.", combos="label_noise")
    metrics = (
        Metric("memorized_fraction", "memorized fraction of noisy examples (%)", "lower", percent=True),
        Metric("noisy_true_label_acc", "noisy examples: true-label accuracy (%)", "higher", percent=True),
        Metric("clean_train_acc", "clean training accuracy (%)", "higher", percent=True),
    )
    headline = ("memorized_fraction", "noisy_true_label_acc", "test_acc")

    @dataclass
    class Options:
        max_examples: int | None = None  # training examples; None = all (every noisy example counts)
        max_test: int | None = None  # test examples; None = all, so test_acc matches result.json
        seed: int = 0

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options=None) -> AnalysisResult:
        o = options or self.Options()
        dev = data.x_train.device
        n = len(data.x_train)
        idx = subsample(n, o.max_examples, o.seed, "memorization").to(dev)
        logits = logits_of(model, data.x_train[idx], data.eval_batch_size)
        y_trained, y_true = data.y_train[idx], data.true_labels[idx]
        noisy = torch.zeros(n, dtype=torch.bool, device=dev)
        if data.has_noise:
            noisy[data.noisy] = True
        sel = noisy[idx]
        numbers: dict[str, float | None] = {
            "label_noise": float(noisy.double().mean()), "noisy_examples": int(sel.sum()),
            "train_acc": accuracy(logits, y_trained), "clean_train_acc": accuracy(logits[~sel], y_true[~sel]),
            "memorized_fraction": accuracy(logits[sel], y_trained[sel]) if sel.any() else None,
            "noisy_true_label_acc": accuracy(logits[sel], y_true[sel]) if sel.any() else None,
        }
        if data.x_test is None or len(data.x_test) == 0:
            numbers["test_acc"] = None
        else:
            j = subsample(len(data.x_test), o.max_test, o.seed, "memorization", "test").to(data.x_test.device)
            numbers["test_acc"] = accuracy(logits_of(model, data.x_test[j], data.eval_batch_size), data.y_test[j])
        info = {"source": data.source, "n": len(idx), "examples": "training examples", "seed": o.seed}
        if not data.has_noise:
            info["note"] = "no label noise in this run: memorization of noisy labels is not measurable"
        return AnalysisResult(self.name, numbers, info=info)

    def plot(self, result: AnalysisResult, path: str) -> None:
        fig, (a,) = figure(1, width=6)
        keys = [("memorized_fraction", "noisy: noisy label\n(memorized)"),
                ("noisy_true_label_acc", "noisy: true label"), ("clean_train_acc", "clean train"),
                ("test_acc", "test")]
        vals = [result.numbers.get(k) for k, _ in keys]
        a.bar(range(len(keys)), [v if v is not None else 0.0 for v in vals],
              color=["tab:red", "tab:orange", "tab:blue", "tab:green"])
        for i, v in enumerate(vals):
            a.text(i, (v or 0.0) + 0.01, "n/a" if v is None else f"{v:.3f}", ha="center", fontsize=8)
        a.set_xticks(range(len(keys)), [label for _, label in keys], fontsize=8)
        a.set_ylim(0, 1.1)
        a.set_ylabel("accuracy")
        note = result.info.get("note")
        a.set_title(note if note else f"label noise {result.numbers['label_noise']:.2f}, "
                    f"{result.numbers['noisy_examples']} noisy examples", fontsize=8)
        save(fig, path, result, "Memorization")
