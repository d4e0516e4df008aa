"""Building blocks and the initializer shared by the registry architectures."""
from __future__ import annotations

import torch.nn as nn


def channels(c: int, width: float, divisor: int = 4) -> int:
    return max(divisor, int(round(c * width / divisor)) * divisor)


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, relu: bool = True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def classifier(cin: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def init_module(m: nn.Module) -> None:
    """The registry models' initializer, also used for every fresh draw during reinitialization.

    Convs: He normal (fan_out), no bias; linear: PyTorch's default; norms: weight 1, bias 0 and
    cleared running statistics. No zero-init of residual BatchNorms: LW rescales kept tensors to
    their initial norm, and a zero initial norm would switch a kept residual branch off.
    """
    if isinstance(m, nn.modules.conv._ConvNd):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False)):
        m.reset_parameters()
    if isinstance(m, nn.modules.batchnorm._NormBase):
        m.reset_running_stats()


def finish(model: nn.Module, names: list[str]) -> nn.Module:
    """Attach group spec and initializer; groups are exactly the named top-level children."""
    model.group_spec = {n: [n] for n in names}
    model.init_module = init_module
    for m in model.modules():
        init_module(m)
    return model
