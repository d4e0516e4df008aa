import pytest
import torch
import torch.nn as nn

from reinitlab.errors import UserError
from reinitlab.groups import groups_of
from reinitlab.models import ARCHS, build_model


class TorchvisionStyle(nn.Module):
    """The layout of torchvision's ResNet: conv1/bn1 at top level, stages of blocks, fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1))
        self.layer2 = nn.Sequential(nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(self.pool(x).flatten(1))


def test_auto_groups_of_user_model():
    g = groups_of(TorchvisionStyle())
    assert g.names == ["stem", "block1", "block2", "block3", "head"]
    assert g.params["stem"] == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"]
    assert g.params["block1"] == ["layer1.0.weight", "layer1.0.bias"]
    assert g.params["head"] == ["fc.weight", "fc.bias"]
    assert g.output["stem"] == "bn1" and g.output["block3"] == "layer2.0"


def test_explicit_prefix_and_regex_groups():
    m = TorchvisionStyle()
    g = groups_of(m, {"stem": ["conv1", "bn1"], "body": ["re:layer\\d"], "head": "fc"})
    assert g.names == ["stem", "body", "head"] and g.K == 2
    assert set(g.params["body"]) == {n for n, _ in m.named_parameters() if n.startswith("layer")}


def test_parameters_outside_every_group_are_refused():
    with pytest.raises(UserError, match="parameters in no group: layer2"):
        groups_of(TorchvisionStyle(), {"stem": ["conv1", "bn1", "layer1"], "head": ["fc"]})
    with pytest.raises(UserError, match="matches no module"):
        groups_of(TorchvisionStyle(), {"stem": ["conv1", "bn1", "layer1", "layer2"], "head": ["classifier"]})


@pytest.mark.parametrize("arch,blocks", [("cnn", 3), ("vgg", 4), ("resnet18", 8), ("resnet50", 16), ("mobilenetv2", 18)])
def test_registry_groups(arch, blocks):
    m = build_model(arch, 3, 10, width=0.25, resolution=32)
    g = groups_of(m)
    assert g.names == ["stem"] + [f"block{i}" for i in range(1, blocks + 1)] + ["head"]
    # every parameter in exactly one group
    owned = [p for n in g.names for p in g.params[n]]
    assert sorted(owned) == sorted(n for n, _ in m.named_parameters())
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_registry_is_complete():
    assert set(ARCHS) == {"cnn", "vgg", "resnet18", "resnet50", "mobilenetv2"}
