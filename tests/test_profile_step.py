"""`reinitlab bench --profile CASE`: the shares of a training step (behaviour, never timing)."""
import pytest
from conftest import synthetic_bundle

from reinitlab import cli
from reinitlab.bench import benchmark as bench
from reinitlab.bench.benchmark import Case
from reinitlab.bench.profile import CATEGORIES, StepProfile, category_of, format_profile, profile_case


@pytest.fixture(scope="module")
def tiny_profile():
    return profile_case(Case("cnn", 0.25, 16, 1), synthetic_bundle(n_train=64, size=16), device="cpu", threads=1,
                        steps=6, warmup=1, batch_size=16)


def test_shares_partition_the_step_and_name_every_category(tiny_profile):
    p = tiny_profile
    assert set(p.ms) == set(CATEGORIES)
    assert sum(p.share(c) for c in CATEGORIES) == pytest.approx(100.0, abs=0.5)
    assert all(p.ms[c] >= 0 for c in CATEGORIES)
    # what a cnn step certainly does: convs, BatchNorm, ReLU/max-pool, SGD, batch gathering, the loop
    for c in ("convolutions", "normalization", "pooling/activations", "linear head + loss", "optimizer",
              "data gathering/augmentation", "Python overhead"):
        assert p.ms[c] > 0, c
    assert p.steps == 6 and p.threads == 1 and p.precision == "fp32" and p.device == "cpu"
    names = [n for n, _ in p.top_ops]
    # which ops are slowest depends on the machine and its load; convolutions lead a cnn step anywhere
    # (BatchNorm's time is in the normalization category, checked above)
    assert any("convolution" in n for n in names)
    d = p.to_dict()
    assert list(d["categories"]) == CATEGORIES
    assert sum(v["share"] for v in d["categories"].values()) == pytest.approx(100.0, abs=0.5)


def test_the_table_names_the_categories_and_the_top_ops(tiny_profile):
    text = format_profile(tiny_profile)
    for c in CATEGORIES:
        assert c in text
    assert "top operators" in text and "cnn-w0.25-16px-grey" in text


def test_operator_names_fall_in_their_category():
    fwd = {"aten::conv2d": "convolutions", "aten::batch_norm": "normalization", "aten::relu_": "pooling/activations",
           "aten::max_pool2d": "pooling/activations", "aten::adaptive_avg_pool2d": "pooling/activations",
           "aten::linear": "linear head + loss", "aten::flatten": "linear head + loss",
           "aten::contiguous": "memory-format copies/casts", "aten::add_": "other operators"}
    for name, cat in fwd.items():
        assert category_of(name, in_forward=True) == cat, name
    bwd = {"ConvolutionBackward0": "convolutions", "NativeBatchNormBackward0": "normalization",
           "ReluBackward0": "pooling/activations", "MaxPool2DWithIndicesBackward0": "pooling/activations",
           "MeanBackward1": "pooling/activations", "AddmmBackward0": "linear head + loss",
           "NllLossBackward0": "linear head + loss", "CloneBackward0": "memory-format copies/casts",
           "torch::autograd::AccumulateGrad": "other operators", "AddBackward0": "other operators"}
    for name, cat in bwd.items():
        assert category_of("autograd::engine::evaluate_function: " + name) == cat, name
    loop = {"aten::index": "data gathering/augmentation", "aten::randperm": "data gathering/augmentation",
            "aten::flip": "data gathering/augmentation", "aten::where": "data gathering/augmentation",
            "aten::cross_entropy_loss": "linear head + loss", "aten::argmax": "other operators",
            "aten::add_": "other operators", "Optimizer.step#SGD.step": "optimizer",
            "Optimizer.zero_grad#SGD.zero_grad": "optimizer"}
    for name, cat in loop.items():
        assert category_of(name) == cat, name


def test_bench_profile_flag_profiles_that_case(monkeypatch, capsys):
    seen = {}

    def fake(case, bundle, device, threads):
        seen.update(case=case, bundle=bundle, device=device, threads=threads)
        return StepProfile(case=case.name, steps=3, threads=1, precision="fp32", device="cpu", step_ms=2.0,
                           unprofiled_step_ms=1.9, ms={"convolutions": 1.5, "Python overhead": 0.5})

    import reinitlab.bench.profile as ps
    monkeypatch.setattr(ps, "profile_case", fake)
    monkeypatch.setattr(bench, "bench_bundle", lambda res, ch: ("bundle", res, ch))
    assert cli.main(["bench", "--profile", "cnn:0.25:28:1", "--threads", "1", "--device", "cpu"]) == 0
    assert seen == {"case": Case("cnn", 0.25, 28, 1), "bundle": ("bundle", 28, 1), "device": "cpu", "threads": 1}
    out = capsys.readouterr().out
    assert "convolutions" in out and "75.0%" in out
    assert cli.main(["bench", "--profile", "cnn:0.25"]) == 2
