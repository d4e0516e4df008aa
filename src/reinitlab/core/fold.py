"""Folding LW's frozen standardizations into the layers that read them, where that is exact.

A standardization (x - mean) / std on a module's output (reset.insert_standardize) is a per-channel
affine map, so it folds into a consumer that is affine in its input:

  Linear          W' = W / std (per input column), b' = b - W (mean / std)
  Conv, padding 0 W' = W / std (per input channel), offset c = -sum W (mean / std) into its bias,
                  or, without a bias, into the BatchNorm right after it (running_mean' = running_mean - c)
  BatchNorm       running_mean' = mean + std * running_mean, running_var' = std^2 (running_var + eps) - eps

and it passes unchanged through max and average pooling (without zero padding), Identity, Dropout and
a Flatten of a 1x1 map. It does not fold exactly into a convolution with zero padding (its border
reads zeros in standardized units, i.e. `mean` in the layer's own), nor through a ReLU, a residual
sum or a concatenation. The consumers are found on the model's torch.fx graph; models fx cannot trace
are reported as not foldable. Folding is for inference: BatchNorm layers are used in eval mode.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp

from .reset import STD_MEAN, STD_STD, _standardize_hook, standardization_of

_PASS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
         nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Identity, nn.Dropout, nn.Dropout2d)
_AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


@dataclass
class FoldReport:
    folded: dict[str, list[str]] = field(default_factory=dict)  # standardized module -> consumers folded into
    problems: list[str] = field(default_factory=list)  # why some standardization cannot fold exactly

    @property
    def ok(self) -> bool:
        return not self.problems


def standardized_modules(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if standardization_of(m) is not None]


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


def fold_standardizations(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module | None, FoldReport]:
    """A copy of `model` (eval mode) with every frozen standardization folded into the layers that
    read it, and no standardization buffers or hooks left: its state_dict has exactly the keys of the
    architecture. (None, report) when some standardization cannot fold exactly; `report.problems`
    says which and why. `example`: an input batch (shapes for Flatten, and the check below)."""
    report = FoldReport()
    folded = copy.deepcopy(model).eval()
    names = standardized_modules(folded)
    if not names:
        return folded, report
    plans = []
    for name in names:  # one trace each, with only that module kept whole: its consumers are visible
        try:
            graph = fx.GraphModule(folded, _Tracer({name}).trace(folded))
            ShapeProp(graph).propagate(example)
        except Exception as e:  # noqa: BLE001 -- data-dependent control flow and the like
            report.problems.append(f"the model cannot be traced by torch.fx ({type(e).__name__}), so where its "
                                   "standardized outputs go is unknown")
            return None, report
        calls: dict[str, int] = {}
        for node in graph.graph.nodes:
            if node.op == "call_module":
                calls[node.target] = calls.get(node.target, 0) + 1
        node = next(n for n in graph.graph.nodes if n.op == "call_module" and n.target == name)
        consumers, problem = _consumers(folded, node, calls)
        if problem:
            report.problems.append(f"{name}'s standardized output {problem}")
        else:
            plans.append((name, consumers))
    if report.problems:
        return None, report
    with torch.no_grad():
        for name, consumers in plans:
            mean, std = (t.double() for t in standardization_of(folded.get_submodule(name)))
            for target in consumers:
                problem = _fold_into(folded, target, mean, std)
                if problem:
                    report.problems.append(f"{name} -> {target}: {problem}")
            report.folded[name] = consumers
            _remove_standardization(folded.get_submodule(name))
    if report.problems:
        return None, report
    was_training = model.training
    with torch.no_grad():
        want, got = model.eval()(example), folded(example)
    model.train(was_training)
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max().clamp_min(1.0))):
        report.problems.append(f"folding changed the logits by up to {float((got - want).abs().max()):.3g}")
        return None, report
    return folded, report


def _consumers(model: nn.Module, node: fx.Node, calls: dict[str, int]) -> tuple[list[str], str]:
    """The affine layers reading `node`'s output through pass-through ops, or why there are none."""
    out, frontier = [], list(node.users)
    while frontier:
        user = frontier.pop(0)
        if user.op == "call_module":
            mod = model.get_submodule(user.target)
            if calls[user.target] > 1:
                return [], f"feeds {user.target}, which the model calls more than once"
            if isinstance(mod, _PASS) or (isinstance(mod, _AVG) and not _any(mod.padding)):
                frontier += list(user.users)
            elif isinstance(mod, nn.Flatten):
                shape = user.args[0].meta["tensor_meta"].shape
                if mod.start_dim != 1 or any(s != 1 for s in shape[2:]):
                    return [], f"is flattened with its spatial positions at {user.target}"
                frontier += list(user.users)
            elif isinstance(mod, nn.Linear):
                out.append(user.target)
            elif isinstance(mod, nn.modules.conv._ConvNd):
                if _any(mod.padding) if not isinstance(mod.padding, str) else mod.padding != "valid":
                    return [], (f"feeds {user.target} ({type(mod).__name__} with padding {mod.padding}: its "
                                "zero border is not zero in the layer's own units)")
                if mod.bias is None and not _bn_after(model, user, calls):
                    return [], f"feeds {user.target}, a convolution with neither a bias nor a BatchNorm after it"
                out.append(user.target)
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
                out.append(user.target)
            else:
                return [], f"feeds {user.target} ({type(mod).__name__})"
        elif user.op == "call_function" and user.target is torch.flatten:
            shape = user.args[0].meta["tensor_meta"].shape
            if any(s != 1 for s in shape[2:]):
                return [], "is flattened with its spatial positions"
            frontier += list(user.users)
        elif user.op == "output":
            return [], "is the model's output"
        else:
            what = getattr(user.target, "__name__", str(user.target))
            return [], f"feeds {what} (a {user.op.replace('_', ' ')}), which is not affine per channel"
    return out, ""


def _any(padding) -> bool:
    return any(p != 0 for p in (padding if isinstance(padding, (tuple, list)) else (padding,)))


def _bn_after(model: nn.Module, node: fx.Node, calls: dict[str, int]) -> str | None:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module" and calls[users[0].target] == 1 and \
            isinstance(model.get_submodule(users[0].target), nn.modules.batchnorm._BatchNorm):
        return users[0].target
    return None


def _fold_into(model: nn.Module, target: str, mean: torch.Tensor, std: torch.Tensor) -> str:
    mod = model.get_submodule(target)
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        if not mod.track_running_stats or mod.running_mean is None:
            return "a BatchNorm without running statistics"
        var = std ** 2 * (mod.running_var.double() + mod.eps) - mod.eps
        if (var < 0).any():
            return "the folded running variance would be negative"
        mod.running_mean.copy_(mean + std * mod.running_mean.double())
        mod.running_var.copy_(var)
        return ""
    w = mod.weight.double()
    if isinstance(mod, nn.Linear):
        in_scale, shift = (1 / std), mean / std
        offset = -(w @ shift)
        mod.weight.copy_(w * in_scale.view(1, -1))
    else:
        groups = mod.groups
        per = w.shape[1]  # input channels each output channel reads
        outs_per_group = w.shape[0] // groups
        idx = (torch.arange(w.shape[0]) // outs_per_group).view(-1, 1) * per + torch.arange(per).view(1, -1)
        view = (w.shape[0], per) + (1,) * (w.dim() - 2)
        s, m = std[idx].view(view), mean[idx].view(view)
        offset = -(w * (m / s)).flatten(1).sum(1)
        mod.weight.copy_(w / s)
    if mod.bias is not None:
        mod.bias.copy_(mod.bias.double() + offset)
        return ""
    bn = _next_bn(model, target)
    if bn is None:
        return "no bias and no BatchNorm after it to take the offset"
    bn.running_mean.copy_(bn.running_mean.double() - offset)
    return ""


def _next_bn(model: nn.Module, target: str) -> nn.Module | None:
    graph = _Tracer(set()).trace(model)
    for node in graph.nodes:
        if node.op == "call_module" and node.target == target:
            users = list(node.users)
            if len(users) == 1 and users[0].op == "call_module":
                mod = model.get_submodule(users[0].target)
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    return mod
    return None


def _remove_standardization(module: nn.Module) -> None:
    for key in (STD_MEAN, STD_STD):
        module._buffers.pop(key, None)
    for hid, hook in list(module._forward_hooks.items()):
        if hook is _standardize_hook:
            del module._forward_hooks[hid]
