"""The distance analysis (||w - w0|| / ||w0|| and ||w|| / ||w0|| per group) by hand, on a real run
folder whose w0 is rebuilt exactly from its config, and all the way into a study's report: the why
section's tables and figure, and a claims test, from its declarations alone (no report file names it)."""
import dataclasses
import json

import pytest
import torch
import torch.nn as nn
from test_study_analyses import analysis_toml, fake_analysis_cost  # noqa: F401
from test_study_run import small_npz  # noqa: F401
from why_common import write_run, write_study

from reinitlab.analyses import ANALYSES, AnalysisData
from reinitlab.cli import main
from reinitlab.core.groups import groups_of
from reinitlab.paper.claims import CLEAN, LOWER, NOT_HIGHER, NOT_SUPPORTED, SUPPORTED, pooled_test
from reinitlab.report import make_report
from reinitlab.report.catalog import build_catalog
from reinitlab.report.collect import Combo, collect
from reinitlab.report.values import load
from reinitlab.train.config import TrainConfig
from reinitlab.train.engine import Engine, load_run
from reinitlab.train.loop import run
from reinitlab.train.resolve import prepare
from reinitlab.util.errors import UserError


def linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    return model, groups_of(model, {"stem": ["0"], "head": ["1"]})


def test_numbers_by_hand():
    model, groups = linear_model()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model[0].parameters():
            p.mul_(2.0)  # stem: ||w - w0|| = ||w0||, ||w|| = 2 ||w0||
        for p in model[1].parameters():
            p.zero_()  # head: ||w - w0|| = ||w0||, ||w|| = 0
    n = ANALYSES["distance"].run(model, groups, AnalysisData(torch.zeros(1, 3), torch.zeros(1), initial_state=lambda: w0)).numbers
    sq = lambda g: sum(float(w0[p].double().pow(2).sum()) for p in groups.params[g])  # noqa: E731
    assert n["relative.stem"] == pytest.approx(1.0) and n["norm_ratio.stem"] == pytest.approx(2.0)
    assert n["relative.head"] == pytest.approx(1.0) and n["norm_ratio.head"] == 0.0
    assert n["relative_total"] == pytest.approx(1.0)
    assert n["norm_ratio_total"] == pytest.approx((4 * sq("stem") / (sq("stem") + sq("head"))) ** 0.5)
    zero = {k: torch.zeros_like(v) for k, v in w0.items()}  # no initial norm: no relative distance
    n = ANALYSES["distance"].run(model, groups, AnalysisData(torch.zeros(1, 3), torch.zeros(1), initial_state=lambda: zero)).numbers
    assert n["relative.head"] is None and n["relative_total"] is None


def test_without_initial_weights_not_measurable_and_mismatched_ones_refused(tmp_path):
    model, groups = linear_model()
    r = ANALYSES["distance"].run(model, groups, AnalysisData(torch.zeros(1, 3), torch.zeros(1)))
    assert set(r.numbers) == {"relative_total", "norm_ratio_total", "relative.stem", "relative.head",
                              "norm_ratio.stem", "norm_ratio.head"} and set(r.numbers.values()) == {None}
    assert "not measurable" in r.info["note"]
    ANALYSES["distance"].plot(r, str(tmp_path / "d.png"))
    assert (tmp_path / "d.png").stat().st_size > 1000
    other = {n: torch.zeros(7) for n, _ in model.named_parameters()}
    with pytest.raises(UserError, match="do not match the model"):
        ANALYSES["distance"].run(model, groups, AnalysisData(torch.zeros(1, 3), torch.zeros(1), initial_state=lambda: other))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("distance") / "run"
    cfg = TrainConfig(arch="cnn", width=0.25, train_size=100, epochs=1, rounds=1, method="lw", threads=1)
    run(cfg, out=out, progress=False)
    return out, cfg


def test_w0_is_rebuilt_exactly_and_analyze_only_distance(run_dir, capsys):
    out, cfg = run_dir
    eng = load_run(out)
    untrained = Engine(prepare(cfg))  # what training started from
    w0 = eng.initial_state()
    start = dict(untrained.model.named_parameters())
    assert set(w0) == set(start) and all(torch.equal(w0[n], start[n]) for n in w0)
    assert not all(torch.equal(w0[n], p) for n, p in eng.model.named_parameters())  # training moved them
    zero = ANALYSES["distance"].run(untrained.model, untrained.groups, AnalysisData.from_engine(untrained)).numbers
    assert zero["relative_total"] == 0.0 and zero["norm_ratio_total"] == 1.0

    assert main(["analyze", str(out), "--only", "distance"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("distance") and "relative_total" in printed and "norm_ratio_total" in printed
    doc = json.loads((out / "analysis.json").read_text())
    n = doc["numbers"]
    assert list(doc["analyses"]) == ["distance"] and (out / doc["analyses"]["distance"]["plot"]).is_file()
    assert n["distance.relative_total"] > 0
    assert {f"distance.relative.{g}" for g in ("stem", "block1", "block2", "block3", "head")} <= set(n)


def _distance_numbers(method: str, seed: int) -> dict:
    """LW's norm ratio 1.0 on every seed, baseline's 1.1 + 0.1 seed: LW lower by 0.1-0.3."""
    ratio = 1.0 if method == "lw" else 1.1 + 0.1 * seed
    nums = {"distance.relative_total": 0.5 + 0.1 * seed, "distance.norm_ratio_total": ratio}
    for k, g in enumerate(("stem", "block1", "head")):
        nums[f"distance.relative.{g}"] = 0.25 * (k + 1)
        nums[f"distance.norm_ratio.{g}"] = ratio
    return nums


def test_reaches_the_report_and_a_claims_test_from_its_declarations(tmp_path):
    combo = Combo("toy", "cnn", 100, 0.0)
    for method in ("baseline", "lw"):
        for seed in range(3):
            write_run(tmp_path, combo, method, seed, 0.7, _distance_numbers(method, seed))
    write_study(tmp_path, "distance-study", ["baseline", "lw"])
    rep = make_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "## Why: distance from initialization" in md
    # one combination: the why tables need no combination column
    assert "| ‖w − w0‖ / ‖w0‖ of block1 | 0.5 ± 0 (3) | 0.5 ± 0 (3) |" in md
    assert "| ‖w‖ / ‖w0‖, all parameters | -0.2 [-0.448, +0.0484] (3) |" in md  # lw - baseline
    assert "why_distance_toy.png" in {p.name for p in rep.files}
    assert "![toy: ‖w − w0‖ / ‖w0‖, all parameters; ‖w‖ / ‖w0‖, all parameters; ‖w − w0‖ / ‖w0‖ of each group;" in md
    col = collect(tmp_path)
    ratio = build_catalog().metric("distance.norm_ratio_total")
    t = pooled_test(col, load(col), 3, "norm ratio to the initial weights", ratio, "baseline", NOT_HIGHER, CLEAN)
    assert t.verdict == SUPPORTED and t.diff.n == 3 and t.diff.mean == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="declares no better direction"):
        pooled_test(col, load(col), 3, "norm ratio", ratio, "baseline", None, CLEAN)
    t = pooled_test(col, load(col), 3, "norm ratio", dataclasses.replace(ratio, better="lower"), "baseline", None, CLEAN)
    assert t.direction == LOWER and t.verdict == NOT_SUPPORTED  # the declared direction; [-0.448, +0.048] holds 0
    group = build_catalog().metric("distance.relative.head")  # a family member, by its key
    t = pooled_test(col, load(col), 3, "distance of the head", group, "baseline", "higher", CLEAN)
    assert t.verdict == NOT_SUPPORTED and t.diff.mean == 0.0


@pytest.mark.slow
def test_a_study_with_analyses_distance(tmp_path, small_npz, fake_analysis_cost):  # noqa: F811
    toml = analysis_toml(tmp_path, small_npz, ["distance"])
    out = tmp_path / "out"
    assert main(["study", str(toml), "--out", str(out), "--workers", "1"]) == 0
    docs = [json.loads(p.read_text()) for p in (out / "runs").rglob("analysis.json")]
    assert len(docs) == 4 and all(list(d["analyses"]) == ["distance"] for d in docs)
    assert main(["report", str(out), "--quiet"]) == 0
    md = (out / "summary.md").read_text()
    assert "## Why: distance from initialization" in md and "‖w − w0‖ / ‖w0‖, all parameters" in md
    assert any(p.name.startswith("why_distance_") for p in (out / "plots").iterdir())
