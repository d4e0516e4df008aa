"""reinitlab bench: structure and output on tiny cases (no timed assertions), the loops it compares,
and its FLOP count."""
import io
import json

import pytest
import torch

from reinitlab import UserError, cli
from reinitlab.bench import benchmark as bench
from reinitlab.bench.benchmark import (
    Case,
    Ours,
    Reference,
    TorchvisionStyle,
    bench_bundle,
    parse_case,
    run_bench,
    train_flops_per_image,
)

TINY_CASES = [Case("cnn", 0.125, 12, 1), Case("resnet18", 0.125, 12, 3)]


@pytest.fixture(scope="module")
def tiny_run():
    out = io.StringIO()
    summary = run_bench(cases=TINY_CASES, repeats=2, chunk_s=0.02, threads=1, peak_size=256, stream=out,
                        variants=[{"channels_last": False}])
    return summary, out.getvalue()


def test_summary_and_last_line_json(tiny_run):
    summary, text = tiny_run
    last = json.loads(text.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(summary))
    assert [c["case"] for c in last["cases"]] == ["cnn-w0.125-12px-grey", "resnet18-w0.125-12px-colour"]
    assert last["device"] == "cpu" and last["threads"] == 1 and last["precision"] == "fp32"
    assert last["peak_gflop_s"] > 0
    for c in last["cases"]:
        assert c["repeats"] == 2
        for k in ("train_img_s", "reference_img_s", "eval_img_s", "reference_eval_img_s", "speedup_vs_reference",
                  "peak_utilization", "lw_round_s", "reset_s", "torchvision_style_img_s",
                  "torchvision_style_eval_img_s", "speedup_vs_torchvision_style",
                  "eval_speedup_vs_torchvision_style"):
            assert c[k] > 0, k
        # the utilization is the achieved rate over the peak measured in the same repeats
        assert c["achieved_gflop_s"] == pytest.approx(c["train_img_s"] * c["gflop_per_image"])
        assert 0.2 < c["peak_utilization"] / (c["achieved_gflop_s"] / last["peak_gflop_s"]) < 5
        assert 0.2 < c["speedup_vs_reference"] / (c["train_img_s"] / c["reference_img_s"]) < 5
        assert 0.2 < c["speedup_vs_torchvision_style"] / (c["train_img_s"] / c["torchvision_style_img_s"]) < 5


def test_variants_are_measured_in_the_same_repeats(tiny_run):
    summary, text = tiny_run
    for c in summary["cases"]:
        (v,) = c["variants"]
        assert v["variant"] == "channels_last=false"
        assert v["train_img_s"] > 0 and v["eval_img_s"] > 0
        assert 0.2 < v["train_vs_default"] / (v["train_img_s"] / c["train_img_s"]) < 5
    assert "cnn-w0.125-12px-grey channels_last=false" in text


def test_variant_parsing():
    assert bench.parse_variant("channels_last=false,eval_batch_size=256") == {"channels_last": False,
                                                                               "eval_batch_size": 256}
    for bad in ("nope=1", "eval_batch_size=x", ""):
        with pytest.raises(UserError):
            bench.parse_variant(bad)


def test_table_names_every_case(tiny_run):
    _, text = tiny_run
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("case"))
    assert "speedup" in lines[header] and "util" in lines[header] and "LW round" in lines[header]
    assert "vs tv" in lines[header] and "tv eval" in lines[header]
    for name in ("cnn-w0.125-12px-grey", "resnet18-w0.125-12px-colour"):
        assert any(line.startswith(name) for line in lines[header:])


def test_both_loops_train_the_same_data():
    case = Case("cnn", 0.125, 12, 3)
    b = bench_bundle(12, 3)
    assert b.channels == 3 and b.x_train.shape[1:] == (3, 12, 12)
    ours = Ours(case, b, "cpu", 1)
    ref = Reference(ours, b)
    eng = ours.eng
    # Per-sample normalization of the reference = the engine's normalized tensors, same examples.
    i = 7
    x, y = ref.train_set[i]
    assert torch.allclose(x, eng.x_train[i], atol=1e-4) and y == int(eng.y_train[i])
    # Both run real steps: the weights move, and the engine's schedule is untouched.
    before = [p.detach().clone() for p in eng.model.parameters()]
    ref_before = [p.detach().clone() for p in ref.model.parameters()]
    schedule = eng.schedule
    assert ours.train(2) == 2 * 128 and ref.train(2) == 2 * 128
    assert eng.schedule == schedule and eng.schedule.steps == ours.full_steps
    assert any(not torch.equal(a, p) for a, p in zip(before, eng.model.parameters(), strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(ref_before, ref.model.parameters(), strict=True))
    assert ours.evaluate(300) == 300 and ref.evaluate(300) == 300


@pytest.mark.parametrize("channels", [1, 3])
def test_torchvision_style_reference_matches_the_engine_data(channels):
    # The PIL round trip (FashionMNIST: mode L from [H, W]; CIFAR10: RGB from [H, W, C]) must give
    # the same normalized images as the engine, or the column would time a different input.
    case = Case("cnn", 0.125, 12, channels)
    b = bench_bundle(12, channels)
    ours = Ours(case, b, "cpu", 1)
    tv = TorchvisionStyle(ours, b)
    assert tv.dataset.__name__ == "TorchvisionStyleDataset"
    for i in (0, 5, 99):
        x, y = tv.train_set[i]
        assert x.shape == (channels, 12, 12) and x.dtype == torch.float32 and x.is_contiguous()
        assert torch.allclose(x, ours.eng.x_train[i], atol=1e-4) and y == int(ours.eng.y_train[i])
    x, y = tv.test_set[3]
    assert torch.allclose(x, ours.eng.x_test[3], atol=1e-4) and y == int(ours.eng.y_test[3])
    assert tv.train(1) == 128 and tv.evaluate(200) == 200


def test_ours_runs_the_engines_training_steps(monkeypatch):
    from reinitlab.train.engine import Engine
    calls = []
    real = Engine.train_steps

    def spy(self, opt, k, *a, **kw):
        calls.append(k)
        return real(self, opt, k, *a, **kw)

    monkeypatch.setattr(Engine, "train_steps", spy)
    ours = Ours(Case("cnn", 0.125, 12, 1), bench_bundle(12, 1), "cpu", 1)
    ours.train(3)
    assert calls == [3]


def test_flop_count_matches_the_conv_arithmetic():
    # cnn width 1 at 28 px grey: convs 1-32 @28, 32-64 @14, 64-128 @7, 128-256 @3, linear 256-10.
    fwd = [2 * 32 * 28 * 28 * 1 * 9, 2 * 64 * 14 * 14 * 32 * 9, 2 * 128 * 7 * 7 * 64 * 9, 2 * 256 * 3 * 3 * 128 * 9]
    lin = 2 * 256 * 10
    # backward: weight and input gradients (twice the forward), but no input gradient for the stem
    expected = sum(fwd) + lin + fwd[0] + 2 * sum(fwd[1:]) + 2 * lin
    assert train_flops_per_image(Case("cnn", 1.0, 28, 1)) == expected
    assert train_flops_per_image(Case("cnn", 1.0, 28, 1), batch=2) == expected


def test_case_parsing_and_cli_wiring(monkeypatch, capsys):
    assert parse_case("resnet18:0.25:32:3") == Case("resnet18", 0.25, 32, 3)
    for bad in ("cnn:0.25:28", "cnn:x:28:1", "cnn:0.25:28:2", "nope:1:28:1"):
        with pytest.raises(UserError):
            parse_case(bad)
    seen = {}
    monkeypatch.setattr(bench, "run_bench", lambda **kw: seen.update(kw) or {})
    assert cli.main(["bench", "--quick", "--device", "cpu", "--threads", "1", "--timer", "cpu"]) == 0
    assert seen["quick"] and seen["device"] == "cpu" and seen["threads"] == 1 and seen["timer"] == "cpu"
    assert cli.main(["bench", "--case", "cnn:0.25:28"]) == 2
    assert "ARCH:WIDTH:PX:CHANNELS" in capsys.readouterr().err


def test_default_cases_cover_both_archs_widths_and_image_kinds():
    names = {c.name for c in bench.FULL_CASES}
    for arch in ("cnn", "resnet18"):
        for w in ("0.25", "1"):
            assert {f"{arch}-w{w}-28px-grey", f"{arch}-w{w}-32px-colour"} <= names
    assert {c.name for c in bench.QUICK_CASES} <= names
    assert any(c.arch == "resnet18" and c.width == 1.0 for c in bench.QUICK_CASES)


def test_every_precision_used_gets_its_peak_and_each_utilization_is_against_its_own():
    out = io.StringIO()
    s = run_bench(cases=[TINY_CASES[0]], repeats=1, chunk_s=0.02, threads=1, peak_size=128, stream=out,
                  variants=[{"precision": "bf16"}])
    assert set(s["peaks_gflop_s"]) == {"fp32", "bf16"} and all(g > 0 for g in s["peaks_gflop_s"].values())
    (c,) = s["cases"]
    (v,) = c["variants"]
    assert c["precision"] == s["precision"] == "fp32" and v["precision"] == "bf16"
    # one repeat: each median is that repeat's value, so utilization = achieved / the own precision's peak
    assert c["peak_utilization"] == pytest.approx(c["achieved_gflop_s"] / s["peaks_gflop_s"]["fp32"])
    assert v["peak_utilization"] == pytest.approx(v["train_img_s"] * c["gflop_per_image"] / s["peaks_gflop_s"]["bf16"])
    assert c["reference_peak_utilization"] == pytest.approx(
        c["reference_img_s"] * c["gflop_per_image"] / s["peaks_gflop_s"]["fp32"])
    text = out.getvalue()
    assert "  peak bf16 " in text and "  peak fp32 " in text
    assert any(line.startswith("cnn-w0.125-12px-grey precision=bf16") and " bf16 " in line for line in text.splitlines())


def test_the_loop_computes_in_the_precision_auto_chooses(monkeypatch):
    from reinitlab.speed import precision
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ["avx512_bf16"])
    for ratio, chosen in ((1.6, "bf16"), (1.0, "fp32")):
        monkeypatch.setattr(precision, "speedup", lambda shape, r=ratio: r)
        assert Ours(TINY_CASES[0], bench_bundle(12, 1), "cpu", 1).p.cfg.precision == chosen


def _utilizations(summary):
    for c in summary["cases"]:
        yield c["case"], c["peak_utilization"]
        yield c["case"] + " reference", c["reference_peak_utilization"]
        for v in c["variants"]:
            yield c["case"] + " " + v["variant"], v["peak_utilization"]


def test_the_peak_bounds_every_loop_and_names_what_set_it(tiny_run):
    summary, text = tiny_run
    assert all(0 < u <= 1.0 for _, u in _utilizations(summary))
    for c in summary["cases"]:  # the torchvision-style loop is a candidate too
        assert c["torchvision_style_img_s"] * c["gflop_per_image"] <= summary["peak_gflop_s_max"] * (1 + 1e-12)
    (sources,) = summary["peak_sources"].values()
    assert sum(sources.values()) == 2  # one per repeat
    candidates = summary["peak_candidates_gflop_s"]["fp32"]
    assert any(k.startswith("GEMM 256x256x256") for k in candidates) and any(k.startswith("conv 3x3") for k in candidates)
    assert all(name in candidates or " loop" in name for name in sources)
    assert "per repeat and precision, the fastest of" in text and "set by: " in text


def test_no_utilization_can_exceed_100_percent_even_when_every_kernel_measures_slow(monkeypatch):
    """The kernels report 1 FLOP/s (a machine whose GEMM library is far slower than its convolutions,
    or a kernel set that misses the fastest path): the fastest loop then sets the peak and reads 100%."""
    monkeypatch.setattr(bench.Peak, "measure", lambda self: 1.0)
    monkeypatch.setattr(bench.ConvKernel, "measure", lambda self: 1.0)
    out = io.StringIO()
    s = run_bench(cases=TINY_CASES, repeats=1, chunk_s=0.02, threads=1, peak_size=128, stream=out,
                  variants=[{"channels_last": False}])
    utils = dict(_utilizations(s))
    assert all(u <= 1.0 for u in utils.values()) and max(utils.values()) == pytest.approx(1.0)
    ((source, n),) = s["peak_sources"]["fp32"].items()
    assert n == 1 and " loop" in source and "kernels measured do not bound this machine" in out.getvalue()
    # the loop named as the peak is the one at 100%
    fastest = max(utils, key=utils.get)
    assert fastest.split(" ")[0] in source
