import torch.nn as nn

from . import register
from .common import channels, classifier, conv_bn_relu, finish

# (expansion, channels, repeats, stride); CIFAR variant: stride 1 in the stem and the second stage.
_CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else conv_bn_relu(cin, hidden, 1)
        layers += conv_bn_relu(hidden, hidden, 3, stride, groups=hidden)
        layers += conv_bn_relu(hidden, cout, 1, relu=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Sequential):
    pass


@register("mobilenetv2", "MobileNetV2 (CIFAR strides); groups: stem, 17 inverted-residual blocks, "
          "the final 1x1 conv as block18, head")
def build(in_channels: int, num_classes: int, width: float = 1.0, resolution: int = 32) -> nn.Module:
    cin = channels(32, width, 8)
    model = MobileNetV2()
    model.add_module("stem", nn.Sequential(*conv_bn_relu(in_channels, cin)))
    names, i = ["stem"], 0
    for t, c, n, s in _CFG:
        cout = channels(c, width, 8)
        for r in range(n):
            i += 1
            model.add_module(f"block{i}", InvertedResidual(cin, cout, t, s if r == 0 else 1))
            names.append(f"block{i}")
            cin = cout
    last = channels(1280, width, 8)
    i += 1
    model.add_module(f"block{i}", nn.Sequential(*conv_bn_relu(cin, last, 1)))
    names.append(f"block{i}")
    model.add_module("head", classifier(last, num_classes))
    return finish(model, names + ["head"])
