"""precision=auto: bf16 only where native and measured >= 1.2x on the run's shape, else fp32; cached
in the probe cache, written into config.json, kept by a resume, one choice per study; and under
bf16 only the training forward pass is autocast (loss, evaluation, BatchNorm statistics in fp32).
The measurement itself is replaced by fixed ratios here: no test times anything."""
import json
import math

import pytest
import torch
from conftest import synthetic_bundle, train_killed_after

from reinitlab import TrainConfig, UserError, run
from reinitlab.cli import main
from reinitlab.speed import precision
from reinitlab.speed import probe as probes
from reinitlab.speed.precision import Shape
from reinitlab.speed.precision import measure_speedup as real_measure_speedup
from reinitlab.speed.precision import speedup as cached_speedup
from reinitlab.train.engine import Engine
from reinitlab.train.resolve import prepare
from reinitlab.util.files import read_jsonl

TINY = dict(width=0.25, epochs=2, rounds=1, batch_size=16, eval_batch_size=64, threads=1)


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A writable probe cache, and a CPU whose bf16 units and measured bf16 speedup a test sets."""
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))
    state = {"units": ["avx512_bf16"], "speedup": 1.5, "measured": []}

    def measure(shape, *a, **k):
        state["measured"].append(shape)
        return state["speedup"]
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: list(state["units"]))
    monkeypatch.setattr(precision, "speedup", cached_speedup)
    monkeypatch.setattr(precision, "measure_speedup", measure)
    return state


def resolved(**kw):
    return prepare(TrainConfig(**{"method": "lw", **TINY, **kw}), synthetic_bundle()).cfg


def test_no_native_bf16_resolves_to_fp32_without_measuring(machine):
    machine["units"] = []
    assert resolved().precision == "fp32"
    assert machine["measured"] == []
    why = precision.no_native_bf16(torch.device("cpu"))
    assert "no native bf16" in why and "avx512_bf16" in why
    machine["units"] = ["amx_bf16"]
    assert precision.no_native_bf16(torch.device("cpu")) is None


def test_native_and_measured_faster_resolves_to_bf16_on_the_runs_own_shape(machine):
    assert resolved(width=0.5, batch_size=8).precision == "bf16"
    (shape,) = machine["measured"]
    assert shape == Shape("cnn", 0.5, 16, 1, 8, True, 1, "cpu")  # the run's arch, width, size, channels, batch


def test_native_but_measured_less_than_the_threshold_resolves_to_fp32(machine):
    machine["speedup"] = 1.19
    assert resolved().precision == "fp32"
    machine["speedup"] = 1.2
    precision._memo.clear()
    probes.cache_path().unlink()
    assert resolved().precision == "bf16"  # the rule is >= 1.2x


def test_the_measurement_is_cached_per_shape_and_written_into_config_json(machine, tmp_path):
    cfg = TrainConfig(method="baseline", round_log=False, **{**TINY, "epochs": 1})
    run(cfg, tmp_path / "a", progress=False, bundle=synthetic_bundle())
    assert json.loads((tmp_path / "a/config.json").read_text())["precision"] == "bf16"
    assert len(machine["measured"]) == 1
    precision._memo.clear()  # another process: only the probe cache remembers
    cached = [json.loads(k) for k in json.loads(probes.cache_path().read_text())]
    assert [(k["kind"], k["arch"], k["width"], k["batch"]) for k in cached if k["kind"] == "precision"] == \
        [("precision", "cnn", 0.25, 16)]
    assert resolved(method="baseline").precision == "bf16"
    assert len(machine["measured"]) == 1
    resolved(batch_size=8)  # another shape is measured anew
    assert len(machine["measured"]) == 2


def test_a_resumed_run_keeps_its_precision_and_ends_bit_identical(machine, tmp_path, monkeypatch):
    bundle = synthetic_bundle()
    cfg = TrainConfig(method="lw", round_log=False, **TINY)
    whole = run(cfg, tmp_path / "whole", progress=False, bundle=bundle)
    assert json.loads((tmp_path / "whole/config.json").read_text())["precision"] == "bf16"
    train_killed_after(2, cfg, tmp_path / "cut", monkeypatch, bundle=bundle)
    machine["speedup"] = 1.0  # this machine would now choose fp32: the resume must not
    precision._memo.clear()
    probes.cache_path().unlink()
    resumed = run(cfg, tmp_path / "cut", progress=False, bundle=bundle)
    assert json.loads((tmp_path / "cut/config.json").read_text())["precision"] == "bf16"
    timing = {"seconds", "train_images_per_second", "diagnostics_seconds"}

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in timing}
        return [strip(v) for v in x] if isinstance(x, list) else x
    assert strip(resumed) == strip(whole)
    assert strip(read_jsonl(tmp_path / "cut/metrics.jsonl")) == strip(read_jsonl(tmp_path / "whole/metrics.jsonl"))
    assert resolved().precision == "fp32"  # a new run here is measured again


def test_a_study_chooses_once_for_every_run_by_its_slowest_shape(machine, tmp_path, monkeypatch):
    from reinitlab.study import expand, load_definition
    from reinitlab.study.precision import study_precision
    toml = tmp_path / "s.toml"
    toml.write_text('name = "p"\ndatasets = ["fashion-mnist-small"]\narchs = ["cnn", "resnet18"]\n'
                    'methods = ["baseline", "lw"]\ntrain_sizes = [100]\nseeds = [0, 1]\nwidth = 0.25\n')
    runs, _ = expand(load_definition(str(toml)), require_data=False)
    speeds = {"cnn": 1.5, "resnet18": 1.1}
    monkeypatch.setattr(precision, "measure_speedup",
                        lambda shape, *a, **k: machine["measured"].append(shape) or speeds[shape.arch])
    choice = study_precision({}, runs, 1, "cpu")
    assert choice.precision == "fp32" and "1.10x" in choice.why and "resnet18" in choice.why
    assert sorted(s.arch for s in machine["measured"]) == ["cnn", "resnet18"]  # 8 runs, 2 shapes measured
    speeds["resnet18"] = 1.3
    precision._memo.clear()
    probes.cache_path().unlink()
    choice = study_precision({}, runs, 1, "cpu")
    assert choice.precision == "bf16" and choice.speedup == 1.3
    # a later start keeps what the first chose, whatever this machine measures now
    speeds["resnet18"] = 1.0
    again = study_precision({}, runs, 1, "cpu", before={"precision": "bf16", "why": choice.why})
    assert again.precision == "bf16" and "first start" in again.why
    assert study_precision({"precision": "fp32"}, runs, 1, "cpu").precision == "fp32"


def test_a_study_run_gives_every_run_the_one_choice_and_says_why(machine, tmp_path, capsys, monkeypatch):
    import reinitlab.bench.throughput as tp
    from reinitlab.study import load_definition, run_study
    monkeypatch.setattr(tp, "estimate_seconds", lambda cfg: 1.0)
    toml = tmp_path / "s.toml"
    toml.write_text('name = "p"\ndatasets = ["fashion-mnist-small"]\narchs = ["cnn"]\nmethods = ["baseline"]\n'
                    'train_sizes = [40]\nseeds = [0, 1]\nwidth = 0.25\nepochs = 1\nbatch_size = 16\n'
                    'round_log = false\n')
    out = tmp_path / "out"
    res = run_study(load_definition(str(toml)), out, workers=1)
    assert res.ok and res.finished == 2
    assert len(machine["measured"]) == 1  # in the planning process, once; the workers measure nothing
    err = capsys.readouterr().err
    assert "precision bf16 for every run: native bf16, measured 1.50x" in err
    configs = [json.loads(p.read_text()) for p in sorted((out / "runs").rglob("config.json"))]
    assert [c["precision"] for c in configs] == ["bf16", "bf16"]
    assert json.loads((out / "study.json").read_text())["precision"]["precision"] == "bf16"
    from reinitlab.report.collect import collect
    from reinitlab.report.provenance import provenance_part, summarize
    part = provenance_part(summarize(collect(out)))
    assert any("precision bf16" in line and "1.50x" in line for line in part.lines)


def test_under_bf16_only_the_training_forward_pass_is_autocast(machine):
    eng = Engine(prepare(TrainConfig(method="lw", precision="bf16", **TINY), synthetic_bundle()))
    seen = {"forward": [], "loss": []}
    eng.model.register_forward_hook(
        lambda m, a, out: seen["forward"].append((m.training, torch.is_autocast_enabled("cpu"), out.dtype)))
    real_loss = eng.loss_fn

    def loss_fn(out, y):
        loss = real_loss(out, y)
        seen["loss"].append((torch.is_autocast_enabled("cpu"), out.dtype, loss.dtype))
        return loss
    eng.loss_fn = loss_fn
    eng.train_steps(eng.optimizer(), 2)
    assert seen["forward"] == [(True, True, torch.bfloat16)] * 2  # bf16 is really used where it should be
    assert seen["loss"] == [(False, torch.float32, torch.float32)] * 2
    seen["forward"].clear()
    acc, loss = eng.evaluate(eng.x_test, eng.y_test)
    assert seen["forward"] and all(f == (False, False, torch.float32) for f in seen["forward"])
    assert math.isfinite(loss) and 0 <= acc <= 1
    # weights, BatchNorm's running statistics and LW's standardizations stay fp32 tensors
    eng.reinit.reset(1, data=lambda: eng.stat_batches(1))
    assert {t.dtype for t in eng.model.state_dict().values() if t.is_floating_point()} == {torch.float32}


def test_the_real_measurement_returns_a_ratio():
    value = real_measure_speedup(Shape("cnn", 0.125, 8, 1, 4), blocks=1, steps=1)
    assert math.isfinite(value) and value > 0  # its size depends on the machine: never asserted


def test_bad_precision_values_fail_in_one_line(tmp_path, capsys):
    for bad in ("fp16", "bf32"):
        with pytest.raises(UserError) as e:
            TrainConfig().set("precision", bad)
        assert "\n" not in str(e.value) and bad in str(e.value) and "fp32" in str(e.value)
        assert main(["train", f"precision={bad}", "--out", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and bad in err
        assert not (tmp_path / bad).exists()

