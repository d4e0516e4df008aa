"""The CUDA path: skipped without a GPU (CI has none); run by scripts/gpu_check.sh on a lent GPU.

What differs on CUDA: data lives on the device, fp32 runs use TF32 tensor cores (bf16 autocast
on request), fresh draws use CPU generators and are copied over, and checkpoints written there must load anywhere."""
import pytest
import torch
from conftest import synthetic_bundle

from reinitlab import Reinitializer, TrainConfig, run
from reinitlab.methods import METHODS
from reinitlab.models import ARCHS, build_model
from reinitlab.train.loop import run_keeping_engine
from reinitlab.util.files import read_jsonl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TINY = dict(width=0.25, epochs=1, rounds=1, batch_size=16, eval_batch_size=64, device="cuda")


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_every_method_trains_two_rounds_on_cuda(arch, precision):
    bundle = synthetic_bundle(n_train=40, n_test=16, channels=3)
    for method in sorted(METHODS):
        result, eng = run_keeping_engine(TrainConfig(arch=arch, method=method, precision=precision, **TINY), out=None,
                              progress=False, bundle=bundle)
        assert result["status"] == "finished", (arch, method)
        assert next(eng.model.parameters()).device.type == "cuda"
        assert 0.0 <= result["test_acc"] <= 1.0


def test_lw_reset_on_cuda_changes_exactly_the_groups_above_k_and_restores_norms():
    torch.manual_seed(0)
    model = build_model("cnn", 1, 4, width=0.25, resolution=16).cuda()
    init = {n: float(p.detach().norm()) for n, p in model.named_parameters()}
    x, y = torch.randn(32, 1, 16, 16, device="cuda"), torch.arange(32, device="cuda") % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(4):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    reinit = Reinitializer(model, "lw", rounds=3, seed=7)
    reinit.init_norms = init
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reinit.reset(1, data=[(x, y)])
    kept = {n for g in ("stem", "block1") for n in reinit.groups.params[g]}
    for n, p in model.named_parameters():
        assert p.device.type == "cuda"
        if n not in kept:
            assert not torch.equal(p, before[n]), f"{n} was not re-drawn"
        elif init[n] > 0:  # BatchNorm biases start at zero and go back to zero
            assert abs(float(p.norm()) - init[n]) <= 1e-4 * init[n], f"{n} not rescaled to its initial norm"


def test_cuda_run_is_reproducible_and_its_weights_load_on_the_cpu(tmp_path):
    bundle = synthetic_bundle()
    cfg = TrainConfig(method="lw", augment="flip+crop", **{**TINY, "epochs": 2})
    a = run(cfg, tmp_path / "a", progress=False, bundle=bundle)
    b = run(cfg, tmp_path / "b", progress=False, bundle=bundle)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    rows_a, rows_b = read_jsonl(tmp_path / "a/metrics.jsonl"), read_jsonl(tmp_path / "b/metrics.jsonl")
    assert len(rows_a) == 4
    # cuDNN picks kernels per call; without deterministic algorithms the last bits can differ, so
    # compare to a TF32 tolerance rather than bit for bit (CPU runs are compared bit for bit).
    for ra, rb in zip(strip(rows_a), strip(rows_b), strict=True):
        assert ra["round"] == rb["round"] and ra["epoch"] == rb["epoch"]
        assert abs(ra["train_loss"] - rb["train_loss"]) < 0.05
    assert a["status"] == b["status"] == "finished"
    saved = torch.load(tmp_path / "a/model.pt", map_location="cpu", weights_only=False)
    assert all(t.device.type == "cpu" and torch.isfinite(t.float()).all() for t in saved["model"].values())
