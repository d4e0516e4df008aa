"""What README "Reproducibility" promises within one machine (same torch, precision, CPU level and
thread count): a run killed and resumed from its checkpoint ends bit-identical to the same run
uninterrupted: every metrics line, the result, the final weights and the reinitializer's state."""
import json

import pytest
import torch
from conftest import train_killed_after

from reinitlab import TrainConfig, run
from reinitlab.util.files import read_jsonl

TIMING = {"seconds", "train_images_per_second", "diagnostics_seconds"}


def timeless(obj):
    if isinstance(obj, dict):
        return {k: timeless(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [timeless(v) for v in obj]
    return obj


def tensors_equal(a, b) -> bool:
    """Nested state dicts equal bit for bit (tensors with torch.equal, dtypes included)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("method,killed_after", [("lw", 1), ("lw", 2), ("dnr", 3)])
def test_a_resumed_run_is_bit_identical_to_the_uninterrupted_run(tmp_path, bundle, monkeypatch, method, killed_after):
    cfg = TrainConfig(method=method, augment="flip+crop", width=0.25, epochs=2, rounds=1, batch_size=16,
                      eval_batch_size=64, threads=1)
    run(cfg, tmp_path / "whole", progress=False, bundle=bundle)
    # the process dies after `killed_after` epochs (mid-round or at a round's end)
    train_killed_after(killed_after, cfg, tmp_path / "resumed", monkeypatch, bundle=bundle)
    run(cfg, tmp_path / "resumed", progress=False, bundle=bundle)

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert timeless(read_jsonl(resumed / "metrics.jsonl")) == timeless(read_jsonl(whole / "metrics.jsonl"))
    assert timeless(json.loads((resumed / "result.json").read_text())) == \
        timeless(json.loads((whole / "result.json").read_text()))
    a = torch.load(whole / "model.pt", weights_only=True)  # run folders hold data only
    b = torch.load(resumed / "model.pt", weights_only=True)  # run folders hold data only
    assert tensors_equal(a["model"], b["model"]) and tensors_equal(a["reinit"], b["reinit"])
    # the provenance written when the run began is kept by the resume, and is the same
    pa, pb = (json.loads((d / "provenance.json").read_text()) for d in (whole, resumed))
    assert pa["result"] == pb["result"]
