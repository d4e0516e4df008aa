"""The one training loop: every arch x method, reproducibility, resume, the run folder contract."""
import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from conftest import killed_at_checkpoint, synthetic_bundle, train_killed_after

from reinitlab import TrainConfig, run
from reinitlab.methods import METHODS
from reinitlab.models import ARCHS
from reinitlab.train.engine import Engine
from reinitlab.train.loop import run_keeping_engine
from reinitlab.util.errors import UserError
from reinitlab.util.files import read_jsonl

TINY = dict(width=0.25, epochs=1, rounds=1, batch_size=16, eval_batch_size=64, threads=1)
# Options under which each in-round method acts within TINY's 2 steps a round (its defaults do not).
ACTING = {"swr": "every=1,maturity=0", "cbp": "maturity=1,replacement_rate=0.5", "hare": "at_round_start=true"}


def timeless(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# The deep registry nets take ~20 s each for every method on this CPU: slow; cnn and vgg stay fast.
SLOW_ARCHS = {"resnet18", "resnet50", "mobilenetv2"}


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW_ARCHS else a
                                  for a in sorted(ARCHS)])
def test_every_method_trains_two_rounds_on_every_arch(arch):
    bundle = synthetic_bundle(n_train=40, n_test=16, channels=3)
    for method in sorted(METHODS):
        cfg = TrainConfig(arch=arch, method=method, **TINY)
        reach = METHODS[method]().in_round_reach(2, [1, 1])  # TINY: 2 steps per epoch, 2 rounds of 1 epoch
        if reach is not None and reach.events == 0:
            # its defaults never act in 2 steps a round (swr: every 10 steps): refused, so train one that acts
            with pytest.raises(UserError, match="never acts in this run"):
                run_keeping_engine(cfg, out=None, progress=False, bundle=bundle)
            cfg = TrainConfig(arch=arch, method=f"{method}:{ACTING[method]}", **TINY)
        result, eng = run_keeping_engine(cfg, out=None, progress=False, bundle=bundle)
        expected_rounds = 0 if method in ("baseline", "long") else 1
        assert result["status"] == "finished", (arch, method)
        assert result["rounds"] == expected_rounds
        assert result["epochs_total"] == {"baseline": 1, "long": 2}.get(method, 2)
        assert 0.0 <= result["test_acc"] <= 1.0
        assert len(result["per_round"]) == expected_rounds + 1
        if expected_rounds:
            assert result["per_round"][1]["reset"]["round"] == 1


def test_same_seed_gives_bit_identical_metrics(tmp_path, bundle):
    cfg = TrainConfig(method="lw", augment="flip+crop", **{**TINY, "epochs": 2})
    run(cfg, tmp_path / "a", progress=False, bundle=bundle)
    run(cfg, tmp_path / "b", progress=False, bundle=bundle)
    a, b = read_jsonl(tmp_path / "a/metrics.jsonl"), read_jsonl(tmp_path / "b/metrics.jsonl")
    assert len(a) == 4 and timeless(a) == timeless(b)
    other = run(cfg.replace(seed=1), tmp_path / "c", progress=False, bundle=bundle)
    assert timeless(read_jsonl(tmp_path / "c/metrics.jsonl")) != timeless(a)
    assert other["status"] == "finished"


@pytest.mark.parametrize("method,crash_after", [("lw", 1), ("lw", 2), ("ke", 3), ("dnr", 2)])
def test_crash_after_an_epoch_resumes_to_the_same_result(tmp_path, bundle, monkeypatch, method, crash_after):
    """Kill after epoch k (mid-round and at a round boundary), resume, compare with an uninterrupted run."""
    cfg = TrainConfig(method=method, augment="crop", **{**TINY, "epochs": 2})
    ref = run(cfg, tmp_path / "ref", progress=False, bundle=bundle)
    train_killed_after(crash_after, cfg, tmp_path / "run", monkeypatch, bundle=bundle)
    assert (tmp_path / "run/ckpt.pt").exists() and not (tmp_path / "run/result.json").exists()
    resumed = run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    assert timeless(read_jsonl(tmp_path / "run/metrics.jsonl")) == timeless(read_jsonl(tmp_path / "ref/metrics.jsonl"))
    for key in ("test_acc", "val_acc", "train_acc", "epochs_total"):
        assert resumed[key] == ref[key], key
    assert not (tmp_path / "run/ckpt.pt").exists()


@pytest.mark.parametrize("changed", [{"threads": 2}, {"eval_batch_size": 7}])
def test_a_resume_keeps_the_settings_the_run_started_with(tmp_path, bundle, monkeypatch, changed):
    """The command that resumes a run may ask for other threads or another evaluation batch (a
    restarted study with one run left gave its single worker every core); the run keeps its own,
    because on the CPU both change the last bits: intra-op reductions are split by thread, and
    evaluation sums its loss batch by batch."""
    cfg = TrainConfig(method="lw", **{**TINY, "epochs": 2, "batch_size": 8})
    ref = run(cfg, tmp_path / "ref", progress=False, bundle=bundle)
    train_killed_after(1, cfg, tmp_path / "run", monkeypatch, bundle=bundle)
    original = Engine.train_epoch
    seen = []
    monkeypatch.setattr(Engine, "train_epoch", lambda self, *a, **k: seen.append(
        (self.config.threads, self.config.eval_batch_size, torch.get_num_threads())) or original(self, *a, **k))
    try:  # `run` is an entry point: it sets the process up for the command's threads first
        resumed = run(cfg.replace(**changed), tmp_path / "run", progress=False, bundle=bundle)
    finally:
        torch.set_num_threads(1)  # the tests' own setting (conftest)
    assert timeless(read_jsonl(tmp_path / "run/metrics.jsonl")) == timeless(read_jsonl(tmp_path / "ref/metrics.jsonl"))
    assert resumed["test_acc"] == ref["test_acc"]
    assert set(seen) == {(1, 64, 1)}  # the run's own threads and evaluation batch, in the config and in torch
    assert json.loads((tmp_path / "run/config.json").read_text()) == json.loads((tmp_path / "ref/config.json").read_text())


@pytest.mark.slow
def test_sigkill_mid_run_then_same_command_finishes_identically(tmp_path):
    """A real kill -9 of `reinitlab train`, then the same command again."""
    args = [sys.executable, "-m", "reinitlab", "train", "--dataset", "fashion-mnist-small", "--arch", "cnn",
            "--method", "lw", "--train-size", "200", "--epochs", "3", "--rounds", "1", "--width", "0.25",
            "--set", "threads=1", "--quiet"]
    subprocess.run(args + ["--out", str(tmp_path / "ref")], check=True, timeout=300)
    killed_at_checkpoint(args, tmp_path / "run", 2)
    metrics = tmp_path / "run/metrics.jsonl"
    assert len(read_jsonl(metrics)) == 2 and not (tmp_path / "run/result.json").exists()
    subprocess.run(args + ["--out", str(tmp_path / "run")], check=True, timeout=300)
    ref, got = json.loads((tmp_path / "ref/result.json").read_text()), json.loads((tmp_path / "run/result.json").read_text())
    assert (got["test_acc"], got["val_acc"], got["epochs_total"]) == (ref["test_acc"], ref["val_acc"], ref["epochs_total"])
    assert timeless(read_jsonl(metrics)) == timeless(read_jsonl(tmp_path / "ref/metrics.jsonl"))


def test_each_round_gets_a_fresh_optimizer(bundle, monkeypatch):
    made = []
    original = Engine.optimizer

    def spy(self):
        opt = original(self)
        made.append(opt)
        return opt

    monkeypatch.setattr(Engine, "optimizer", spy)
    run(TrainConfig(method="fc", **{**TINY, "rounds": 2}), None, progress=False, bundle=bundle)
    assert len(made) == 3 and len({id(o) for o in made}) == 3
    # every optimizer but the last one was stepped, with its own momentum buffers
    bufs = [id(s["momentum_buffer"]) for o in made for s in o.state.values()]
    assert len(bufs) == len(set(bufs)) > 0


def test_run_folder_contract(tmp_path, bundle):
    out = tmp_path / "run"
    cfg = TrainConfig(method="lw", label_noise=0.25, **TINY)
    result = run(cfg, out, progress=False, bundle=bundle)
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.jsonl", "result.json", "env.json",
                                               "split.json", "model.pt", "provenance.json"}
    config = json.loads((out / "config.json").read_text())
    assert config["method_options"] == {"rescale": True, "normalize": True, "order": "bottom_up", "schedule": "ceil",
                                        "redraw": "fresh", "rewind_epoch": None}
    assert config["rounds"] == 1 and config["data_seed"] == 0 and config["train_size"] == 58
    rows = read_jsonl(out / "metrics.jsonl")
    assert [(r["round"], r["epoch"]) for r in rows] == [(0, 1), (1, 1)]
    for key in ("train_loss", "train_acc", "val_acc", "group_norms", "seconds", "lr"):
        assert key in rows[0]
    assert set(rows[0]["group_norms"]) == {"stem", "block1", "block2", "block3", "head"}
    for key in ("test_acc", "val_acc", "train_acc", "rounds", "epochs_total", "seconds"):
        assert key in result
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 58 and len(split["val"]) == 6 and not set(split["train"]) & set(split["val"])
    assert len(split["noisy"]) == round(0.25 * 58)
    assert all(a != b for a, b in zip(split["noisy_labels"], split["true_labels_of_noisy"], strict=True))
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["torch_threads"] == 1


def test_finished_run_is_not_retrained_and_other_config_is_refused(tmp_path, bundle, monkeypatch):
    from reinitlab.util.errors import UserError
    cfg = TrainConfig(method="fc", **TINY)
    first = run(cfg, tmp_path / "r", progress=False, bundle=bundle)
    monkeypatch.setattr(Engine, "train_epoch", lambda *a, **k: pytest.fail("retrained a finished run"))
    again = run(cfg, tmp_path / "r", progress=False, bundle=bundle)
    assert again["test_acc"] == first["test_acc"]
    with pytest.raises(UserError, match="holds a run with seed=0, not 3"):
        run(cfg.replace(seed=3), tmp_path / "r", progress=False, bundle=bundle)


def test_long_is_compute_matched_and_patience_ends_rounds_early(bundle):
    long = run(TrainConfig(method="long", **{**TINY, "rounds": 2, "epochs": 2}), None, progress=False, bundle=bundle)
    assert long["epochs_total"] == 6 and long["rounds"] == 0
    easy = synthetic_bundle(n_train=64, classes=2)
    r = run(TrainConfig(method="fc", patience=1, lr=0.2, **{**TINY, "epochs": 30, "rounds": 1}), None,
            progress=False, bundle=easy)
    assert r["epochs_total"] < 60 and all(p["epochs"] < 30 for p in r["per_round"])


def test_divergence_stops_the_run_with_its_position(bundle, tmp_path):
    r = run(TrainConfig(method="fc", lr=1e30, **{**TINY, "epochs": 2}), tmp_path / "d", progress=False, bundle=bundle)
    assert r["status"] == "diverged" and r["diverged_at"]["round"] == 0
    assert json.loads((tmp_path / "d/result.json").read_text())["status"] == "diverged"


def test_cpu_evaluation_memory_format_is_per_model_and_training_is_untouched(bundle):
    """Full-width ResNets evaluate in NCHW on the CPU (measured faster there); every other model in
    channels-last. The weights return to channels-last after the pass, with the same values."""
    from reinitlab.models import build_model
    from reinitlab.speed.tune import cpu_eval_memory_format
    assert cpu_eval_memory_format(build_model("resnet18", 3, 10, 1.0, 32)) == torch.contiguous_format
    assert cpu_eval_memory_format(build_model("resnet18", 3, 10, 0.25, 32)) == torch.channels_last
    assert cpu_eval_memory_format(build_model("cnn", 1, 10, 1.0, 28)) == torch.channels_last
    cfg = TrainConfig(arch="resnet18", method="baseline", **{**TINY, "width": 1.0})
    from reinitlab.train.resolve import prepare
    eng = Engine(prepare(cfg, bundle))
    assert eng.speed.eval_format == torch.contiguous_format
    before = {k: v.clone() for k, v in eng.model.state_dict().items()}
    flipped = eng.evaluate(eng.x_test, eng.y_test)
    eng.speed = dataclasses.replace(eng.speed, eval_format=eng.memory_format)
    straight = eng.evaluate(eng.x_test, eng.y_test)
    assert flipped[0] == straight[0] and abs(flipped[1] - straight[1]) < 1e-5
    for k, v in eng.model.state_dict().items():
        assert torch.equal(v, before[k]), k
        if v.dim() == 4:
            assert v.is_contiguous(memory_format=torch.channels_last), k
    # and the model still trains (weights converted inside inference mode could not)
    eng.speed = dataclasses.replace(eng.speed, eval_format=torch.contiguous_format)
    eng.evaluate(eng.x_test, eng.y_test)
    opt = torch.optim.SGD(eng.model.parameters(), lr=0.01, momentum=0.9)
    loss, _ = eng.train_steps(opt, eng.schedule.steps)
    assert loss == loss and any(not torch.equal(v, before[k]) for k, v in eng.model.state_dict().items())


def test_a_run_folder_of_code_with_fewer_method_options_still_resumes(tmp_path, bundle):
    """Options added to a method later (e.g. redraw) are at their defaults in a run made before."""
    import json as _json

    from reinitlab.train.resolve import prepare
    from reinitlab.train.rundir import open_run
    cfg = prepare(TrainConfig(method="lw", **TINY), bundle).cfg
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    old = cfg.to_dict()
    old["method_options"] = {k: old["method_options"][k] for k in ("rescale", "normalize", "order")}
    (run_dir / "config.json").write_text(_json.dumps(old))
    assert open_run(run_dir, cfg) == "resume"
    old["method_options"]["rescale"] = False  # a value that differs is another run
    (run_dir / "config.json").write_text(_json.dumps(old))
    with pytest.raises(Exception, match="method_options"):
        open_run(run_dir, cfg)


@pytest.mark.parametrize("channels, side, momentum, track, dtype", [
    (8, 16, 0.1, True, torch.float32), (4, 7, 0.1, True, torch.float32), (12, 5, None, True, torch.float32),
    (8, 6, 0.1, False, torch.float32), (3, 1, 0.1, True, torch.float32), (8, 16, 0.1, True, torch.bfloat16)])
def test_few_channel_batchnorm_agrees_with_pytorchs(channels, side, momentum, track, dtype):
    """The few-channel training arithmetic (few_channel_bn.py) gives nn.BatchNorm2d's output,
    gradients and running statistics to rounding, for channel counts whose wide view fits whole
    (8, 4) or not (12 at an odd number of rows, 3 at 1 px: one row per line), a cumulative average
    (momentum None), no running statistics, and bf16 input (what autocast's convolution hands over:
    output and gradient come back in bf16); evaluation and the state dict are untouched."""
    import copy

    from reinitlab.speed.few_channel_bn import FewChannelBatchNorm2d, few_channel_batchnorm
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.BatchNorm2d(channels, momentum=momentum, track_running_stats=track),
                                torch.nn.ReLU(inplace=True))
    with torch.no_grad():
        plain[0].weight.uniform_(0.5, 1.5), plain[0].bias.uniform_(-0.5, 0.5)
    fast = copy.deepcopy(plain)
    assert few_channel_batchnorm(fast) == 1 and type(fast[0]) is FewChannelBatchNorm2d
    assert fast.state_dict().keys() == plain.state_dict().keys()
    x = (torch.randn(9, channels, side, side) * 3 + 1).to(dtype).contiguous(memory_format=torch.channels_last)
    g = torch.randn(9, channels, side, side).to(dtype)
    tol = 1 if dtype == torch.float32 else 2e3  # bf16 rounds its output to 3 digits
    for step in range(3):  # the running statistics over several steps
        xs = [x.clone().requires_grad_(True) for _ in range(2)]
        outs = [model(xi) for model, xi in zip((plain, fast), xs, strict=True)]
        assert outs[1].is_contiguous(memory_format=torch.channels_last)  # the next conv still gets channels-last
        assert outs[1].dtype == dtype
        for o in outs:
            o.backward(g)
        assert xs[1].grad.dtype == dtype
        assert torch.allclose(outs[0].float(), outs[1].float(), atol=1e-5 * tol), step
        assert torch.allclose(xs[0].grad.float(), xs[1].grad.float(), rtol=1e-4 * tol, atol=1e-5 * tol), step
    for (n, a), (_, b) in zip(plain.named_parameters(), fast.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4 * tol, atol=1e-4 * tol), n
    for (n, a), (_, b) in zip(plain.state_dict().items(), fast.state_dict().items(), strict=True):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), n
    fast.load_state_dict(plain.state_dict())
    plain.eval(), fast.eval()
    assert torch.equal(plain(x.clone()), fast(x.clone()))  # evaluation is nn.BatchNorm2d's own code


def test_few_channel_batchnorm_is_on_only_below_16_channels_and_is_repeatable():
    """A registry model in channels-last gets the path on its BatchNorms below 16 channels only, and
    two identical models trained on the same batches give bit-identical weights (what resume needs)."""
    import copy

    import torch.nn.functional as F

    from reinitlab.models import build_model
    from reinitlab.speed.few_channel_bn import FEW_CHANNELS, FewChannelBatchNorm2d, few_channel_batchnorm
    torch.manual_seed(0)
    base = build_model("cnn", 1, 4, width=0.25, resolution=16).to(memory_format=torch.channels_last)
    models = [copy.deepcopy(base) for _ in range(2)]
    few = [m for m in base.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.num_features < FEW_CHANNELS]
    assert [few_channel_batchnorm(m) for m in models] == [len(few), len(few)] == [1, 1]
    assert sum(type(m) is FewChannelBatchNorm2d for m in models[0].modules()) == 1
    x = torch.randn(32, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    y = torch.arange(32) % 4
    for model in models:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)
