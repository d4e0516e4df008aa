"""Method defects found in review, each pinned by a test that failed before its fix."""
import math

import torch
import torch.nn as nn

from reinitlab import Reinitializer
from reinitlab.methods.base import top_fraction_mask
from reinitlab.models import build_model


def test_lw_top_down_on_a_model_with_two_groups_resets_the_head():
    # Two groups (stem, head): K = 1. top_down used to keep group K (the head) and then name group K+1.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(8, 1, 6, 6), torch.arange(8) % 3
    reinit = Reinitializer(model, "lw:order=top_down", rounds=1, seed=0)
    assert reinit.groups.names == ["stem", "head"]
    stem_before = model[0].weight.detach().clone()
    head_before = model[4].weight.detach().clone()
    record = reinit.reset(1, data=(x, y))
    assert record["redrawn_fraction"] == {"stem": 0.0, "head": 1.0}
    assert record["standardized"] == ["stem"]
    assert not torch.equal(model[4].weight, head_before)
    # kept and rescaled to its own (unchanged) initial norm: the same values
    assert torch.allclose(model[0].weight, stem_before)


def test_kels_keeps_every_input_channel_of_an_rgb_stem_at_any_split_rate():
    for rate in (0.3, 0.5, 2 / 3):
        torch.manual_seed(0)
        model = build_model("cnn", 3, 4, width=0.25, resolution=16)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01)  # trained values differ from any fresh draw
        trained = model.stem[0].weight.detach().clone()
        reinit = Reinitializer(model, f"ke:mode=kels,split_rate={rate}", rounds=1, seed=0)
        reinit.reset(1)
        w = model.stem[0].weight.detach()
        kept = w == trained
        out = math.ceil(rate * w.shape[0])
        assert kept[:out].all(), f"split_rate={rate}: a kept filter lost some of its 3 input channels"
        assert not kept[out:].any()


def test_kels_mask_keeps_the_first_channels_of_every_shape():
    from reinitlab.methods.ke import kels_mask
    assert kels_mask((), 0.5, whole_out=False, whole_in=False).tolist() is True  # a scalar is kept
    assert kels_mask((10,), 0.5, whole_out=False, whole_in=False).tolist() == [True] * 5 + [False] * 5
    assert kels_mask((10,), 0.5, whole_out=True, whole_in=False).all()
    m = kels_mask((4, 3, 2, 2), 0.5, whole_out=False, whole_in=True)  # the first layer: every image channel
    assert m[:2].all() and not m[2:].any()
    m = kels_mask((4, 3, 2, 2), 0.5, whole_out=False, whole_in=False)
    assert m[:2, :2].all() and not m[:, 2:].any() and not m[2:].any()


def test_top_fraction_mask_breaks_ties_by_position():
    for n in (10, 1000):
        mask = top_fraction_mask(torch.ones(n), 0.5)
        assert mask[: n // 2].all() and not mask[n // 2:].any()
    score = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 2.0]])
    assert top_fraction_mask(score, 0.5).tolist() == [[False, True, False], [True, False, True]]
    # four kept of six: the three non-zero scores, then the first zero by position
    assert top_fraction_mask(score, 4 / 6).tolist() == [[True, True, False], [True, False, True]]
    assert top_fraction_mask(torch.tensor([1.0, 3.0, 2.0]), 0.3).tolist() == [False, True, False]  # one kept
