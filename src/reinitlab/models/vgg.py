import torch.nn as nn

from . import register
from .common import channels, classifier, conv_bn_relu, finish

_STAGES = [[64], [128], [256, 256], [512, 512], [512, 512]]  # VGG-11


class VGG(nn.Sequential):
    pass


@register("vgg", "VGG-11-BN for small images: 5 conv stages (stem + 4 blocks), global pool, linear head")
def build(in_channels: int, num_classes: int, width: float = 1.0, resolution: int = 32) -> nn.Module:
    names = ["stem"] + [f"block{i}" for i in range(1, len(_STAGES))] + ["head"]
    model, cin, size = VGG(), in_channels, resolution
    for name, stage in zip(names[:-1], _STAGES, strict=True):  # the head comes after the stages
        layers = []
        for c in stage:
            c = channels(c, width)
            layers += conv_bn_relu(cin, c)
            cin = c
        if size >= 2:  # small inputs run out of resolution before the fifth pool
            layers.append(nn.MaxPool2d(2))
            size //= 2
        model.add_module(name, nn.Sequential(*layers))
    model.add_module("head", classifier(cin, num_classes))
    return finish(model, names)
