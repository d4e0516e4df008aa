import torch.nn as nn

from . import register
from .common import channels, classifier, conv_bn_relu, finish


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(*conv_bn_relu(cin, planes, 3, stride), *conv_bn_relu(planes, cout, relu=False))
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int):
        nn.Module.__init__(self)
        cout = planes * self.expansion
        self.body = nn.Sequential(*conv_bn_relu(cin, planes, 1), *conv_bn_relu(planes, planes, 3, stride),
                                  *conv_bn_relu(planes, cout, 1, relu=False))
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Sequential):
    pass


def _resnet(block, depths, in_channels, num_classes, width):
    cin = channels(64, width)
    model = ResNet()
    model.add_module("stem", nn.Sequential(*conv_bn_relu(in_channels, cin)))  # CIFAR stem: 3x3, stride 1
    names, i = ["stem"], 0
    for stage, depth in enumerate(depths):
        planes = channels(64 * 2 ** stage, width)
        for d in range(depth):
            i += 1
            blk = block(cin, planes, 2 if (d == 0 and stage > 0) else 1)
            model.add_module(f"block{i}", blk)
            names.append(f"block{i}")
            cin = planes * block.expansion
    model.add_module("head", classifier(cin, num_classes))
    return finish(model, names + ["head"])


@register("resnet18", "ResNet-18, CIFAR stem; groups: stem, 8 basic blocks, head")
def resnet18(in_channels: int, num_classes: int, width: float = 1.0, resolution: int = 32):
    return _resnet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes, width)


@register("resnet50", "ResNet-50, CIFAR stem; groups: stem, 16 bottleneck blocks, head")
def resnet50(in_channels: int, num_classes: int, width: float = 1.0, resolution: int = 32):
    return _resnet(Bottleneck, [3, 4, 6, 3], in_channels, num_classes, width)
