"""`reinitlab analyze` and `round_log` on a real (tiny) LW run folder with label noise."""
import json
import math

import pytest
import torch

from reinitlab.analyses import ANALYSES, AnalysisData, analyze_engine, analyze_run, load_analysis, round_log
from reinitlab.cli import main
from reinitlab.train.config import TrainConfig
from reinitlab.train.engine import load_run
from reinitlab.train.loop import run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze") / "run"
    run(TrainConfig(arch="cnn", width=0.25, train_size=200, epochs=1, rounds=1, method="lw", label_noise=0.2,
                    threads=1), out=out, progress=False)
    return out


FAST = ["--set", "flatness.samples=2", "--set", "flatness.hessian_iters=5", "--set", "probes.max_eval=300"]


def test_analyze_writes_analysis_json_and_one_png_per_analysis(run_dir, capsys):
    assert main(["analyze", str(run_dir), *FAST]) == 0
    doc = json.loads((run_dir / "analysis.json").read_text())
    assert list(doc["analyses"]) == list(ANALYSES)
    assert doc["run"]["method"] == "lw" and doc["run"]["label_noise"] == 0.2
    for name, entry in doc["analyses"].items():
        png = run_dir / entry["plot"]
        assert png.read_bytes()[:8] == PNG, name
        assert entry["numbers"] and entry["info"]["source"] == str(run_dir)
        for k, v in entry["numbers"].items():
            assert doc["numbers"][f"{name}.{k}"] == v
    n = doc["numbers"]
    assert n["memorization.noisy_examples"] == 40  # 20% of 200
    assert 0 <= n["memorization.memorized_fraction"] <= 1
    assert n["flatness.increase_sigma_0"] == 0.0
    assert set(f"probes.linear_acc.{g}" for g in ("stem", "block1", "block2", "block3", "head")) <= set(n)
    # LW standardized a group's output; the trace folded it into the conv that reads it
    layers = doc["analyses"]["norms"]["arrays"]["layers"]
    assert any(f.endswith(":standardization") for r in layers for f in r["folded"])
    assert "margins" in capsys.readouterr().out
    assert set(load_analysis(run_dir)) == set(ANALYSES)


def test_only_updates_the_named_analyses_and_keeps_the_rest(run_dir):
    first = analyze_run(run_dir, only="memorization", plots=False)
    doc = analyze_run(run_dir, only="margins", settings={"margins.max_examples": 50}, plots=False)
    assert doc["analyses"]["margins"]["info"]["n"] == 50
    assert doc["analyses"]["memorization"] == first["analyses"]["memorization"]
    assert doc["numbers"]["memorization.memorized_fraction"] == first["numbers"]["memorization.memorized_fraction"]
    # results computed on other weights (the folder was retrained) are dropped, not mixed in
    stale = json.loads((run_dir / "analysis.json").read_text())
    stale["model_sha256"] = "0" * 16
    (run_dir / "analysis.json").write_text(json.dumps(stale))
    assert list(analyze_run(run_dir, only="margins", plots=False)["analyses"]) == ["margins"]


@pytest.mark.parametrize("argv,message", [
    (["--only", "margins,curvature"], "unknown analysis 'curvature'; valid: bound, distance, flatness, margins"),
    (["--set", "margins.max_exampels=5"], "did you mean 'max_examples'"),
    (["--set", "flatness.samples=many"], "flatness.samples='many' has the wrong type"),
    (["--set", "sigmas=[0,0.1]", "--only", "margins"], "no selected analysis has this option"),
])
def test_bad_input_is_one_line_and_exit_2(run_dir, capsys, argv, message):
    assert main(["analyze", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    assert "not a finished reinitlab run folder" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_round_log_is_flat_finite_and_leaves_the_model_alone(run_dir):
    eng = load_run(run_dir)
    model = eng.model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    log = round_log(model, eng.groups, eng.x_train, eng.y_train)
    assert torch.equal(rng, torch.get_rng_state())  # logging must not shift the training's random streams
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(isinstance(v, float) and math.isfinite(v) for v in log.values())
    assert {"frobenius.stem", "frobenius.head", "frobenius_total", "log10_spectral_product",
            "log10_spectral_complexity", "margin_q05", "margin_q50", "normalized_margin_q50"} <= set(log)
    # the same definitions as the full analyses
    data = AnalysisData.from_engine(eng)
    norms = ANALYSES["norms"].run(model, eng.groups, data).numbers
    assert log["frobenius.block2"] == pytest.approx(norms["frobenius.block2"])
    assert log["log10_spectral_product"] == pytest.approx(norms["log10_spectral_product"], abs=1e-3)
    assert round_log(model, eng.groups, eng.x_train, eng.y_train) == log  # fixed subsample, deterministic


def test_analyze_engine_on_the_engine_in_memory_matches_the_folder(run_dir):
    from_folder = analyze_run(run_dir, only="margins,norms", plots=False)
    eng = load_run(run_dir)
    eng.model.train()  # as train.loop.run_keeping_engine hands it back
    in_memory = analyze_engine(eng, run_dir, only="margins,norms", plots=False)
    for name in ("margins", "norms"):
        assert in_memory["analyses"][name]["numbers"] == from_folder["analyses"][name]["numbers"]
