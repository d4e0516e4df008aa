import torch.nn as nn

from . import register
from .common import channels, classifier, conv_bn_relu, finish


class PlainCNN(nn.Sequential):
    pass


@register("cnn", "plain CNN: 4 conv layers (32-64-128-256 x width, BN, ReLU, max-pool) + linear head")
def build(in_channels: int, num_classes: int, width: float = 1.0, resolution: int = 32) -> nn.Module:
    widths = [channels(c, width) for c in (32, 64, 128, 256)]
    names = ["stem", "block1", "block2", "block3", "head"]
    layers, cin, size = [], in_channels, resolution
    for i, c in enumerate(widths):
        stage = conv_bn_relu(cin, c)
        if i < 3 and size >= 2:  # three pools: 28 px -> 3 px, 32 px -> 4 px before the head
            stage.append(nn.MaxPool2d(2))
            size //= 2
        layers.append(nn.Sequential(*stage))
        cin = c
    layers.append(classifier(cin, num_classes))
    model = PlainCNN()
    for n, layer in zip(names, layers, strict=True):
        model.add_module(n, layer)
    return finish(model, names)
