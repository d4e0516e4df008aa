import pytest
import torch
import torch.nn as nn

from reinitlab.core.groups import groups_of
from reinitlab.models import ARCHS, build_model
from reinitlab.util.errors import UserError


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


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("channels,resolution", [(1, 28), (3, 32)])
def test_every_registered_arch_builds_with_named_groups_that_own_every_parameter(arch, channels, resolution):
    m = build_model(arch, channels, 10, width=0.25, resolution=resolution)
    g = groups_of(m)
    assert g.names[0] == "stem" and g.names[-1] == "head" and g.K >= 2
    assert g.names[1:-1] == [f"block{i}" for i in range(1, g.K)]
    owned = [p for n in g.names for p in g.params[n]]
    assert sorted(owned) == sorted(n for n, _ in m.named_parameters())
    assert m(torch.randn(2, channels, resolution, resolution)).shape == (2, 10)


class RootScaled(nn.Module):
    """A user's model with a bare top-level parameter (a learned input scale)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, 1, 1, 1), 2.0))
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.layer1(self.bn1(self.conv1(x * self.scale))).mean((2, 3)))


def test_a_root_parameter_joins_the_stem_by_default():
    g = groups_of(RootScaled())
    assert g.names == ["stem", "block1", "head"]
    assert g.params["stem"][0] == "scale" and g.group_of()["scale"] == "stem"
    assert g.units("stem") == ["conv1", "bn1", "scale"] and g.output["stem"] == "bn1"


def test_a_root_parameter_is_named_by_its_own_name_in_a_spec():
    m = RootScaled()
    g = groups_of(m, {"stem": ["conv1", "bn1"], "body": "layer1", "head": ["fc", "scale"]})
    assert g.group_of()["scale"] == "head" and g.output["head"] == "fc"
    assert groups_of(m, {"stem": ["conv1", "bn1", "re:sc.*"], "body": "layer1", "head": "fc"}).group_of()["scale"] == "stem"
    with pytest.raises(UserError, match=r"parameters in no group: scale; .*named by its own name"):
        groups_of(m, {"stem": ["conv1", "bn1"], "body": "layer1", "head": "fc"})
    with pytest.raises(UserError, match="group 'extra' holds only root parameters"):
        groups_of(m, {"stem": ["conv1", "bn1"], "body": "layer1", "extra": "scale", "head": "fc"})


def test_lw_trains_through_a_model_with_a_root_parameter():
    from reinitlab import Reinitializer
    torch.manual_seed(0)
    m = RootScaled()
    x, y = torch.randn(32, 1, 12, 12), torch.randint(0, 10, (32,))
    reinit = Reinitializer(m, "lw", rounds=1)
    record = reinit.reset(1, data=(x, y))
    assert record["redrawn_fraction"]["head"] == 1.0 and record["redrawn_fraction"]["stem"] == 0.0
    assert m(x).shape == (32, 10)


def test_describe_keeps_the_data_and_table_prints_one_line_per_group():
    g = groups_of(TorchvisionStyle())
    rows = g.describe()
    total = sum(p.numel() for p in TorchvisionStyle().parameters())
    assert [r["group"] for r in rows] == g.names
    assert sum(r["parameters"] for r in rows) == total
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-9
    assert rows[0]["params"] == g.params["stem"] and rows[0]["modules"] == 2 and rows[0]["units"] == ["conv1", "bn1"]
    lines = str(g).splitlines()
    assert lines[0].split() == ["group", "modules", "parameters", "share", "output"]
    body = lines[2:2 + len(g.names)]
    assert [line.split()[0] for line in body] == g.names
    assert "conv1 (Conv2d), bn1 (BatchNorm2d)" in body[0] and body[0].split()[-1] == "bn1"
    assert lines[-1].split()[:3] == ["total", "5", "groups"] and f"{total:,}" in lines[-1]
    assert str(g) == g.table()


def test_table_shortens_long_module_lists():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), *[nn.Conv2d(4, 4, 3) for _ in range(30)], nn.Flatten(), nn.Linear(4, 2))
    g = groups_of(m, {"stem": "0", "body": [str(i) for i in range(1, 31)], "head": ["32"]})
    line = next(li for li in g.table().splitlines() if li.startswith("body"))
    assert "+" in line and "more" in line and len(line) < 120
