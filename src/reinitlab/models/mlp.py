import torch.nn as nn

from . import register
from .common import finish


class MLP(nn.Sequential):
    pass


@register("mlp", "MLP: flatten, 2 hidden layers of 100 x width units with ReLU, linear head (Kumar et al. 2024's "
                 "network at width 1)")
def build(in_channels: int, num_classes: int, width: float = 1.0, resolution: int = 32) -> nn.Module:
    """One group per layer: stem (flatten, the first hidden layer), block1 (the second), head.
    PyTorch's default draw for the linear layers, as Kumar et al.'s networks use."""
    hidden = max(1, int(round(100 * width)))
    model = MLP()
    model.add_module("stem", nn.Sequential(nn.Flatten(), nn.Linear(in_channels * resolution * resolution, hidden),
                                           nn.ReLU()))
    model.add_module("block1", nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()))
    model.add_module("head", nn.Sequential(nn.Linear(hidden, num_classes)))
    return finish(model, ["stem", "block1", "head"])
