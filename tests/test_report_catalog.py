"""The report's one metric catalog (built from the analyses' declarations), family expansion, the one
value table, and combinations with a study's extra axes (Combo.settings): grouped apart and shown as
extra columns."""
import json
import shutil

import pytest
from why_common import write_run, write_study

from reinitlab.analyses import ANALYSES
from reinitlab.analyses.metrics import Metric, Topic
from reinitlab.report import make_report
from reinitlab.report.catalog import TEST_ACC, build_catalog, member_values
from reinitlab.report.collect import Combo, collect, combo_order
from reinitlab.report.tables import compute
from reinitlab.report.values import DIAGNOSTICS, load, value_table


def test_every_declared_metric_is_in_the_catalog_under_its_topic():
    cat = build_catalog()
    declared = {f"{n}.{m.key}" for n, a in ANALYSES.items() for m in a.metrics}
    assert declared <= {m.key for m in cat.metrics} and cat.metric("test_acc") is TEST_ACC
    assert list(cat.topics)[:5] == ["margins", "norms", "flatness", "memorization", "probes"]
    assert [m.key for m in cat.topic_metrics("norms") if m.source == "analysis"] == [
        "norms.frobenius_total", "norms.log10_spectral_product", "norms.log10_spectral_product_raw", "bound.log10_R"]
    sigma = cat.metric("flatness.increase_sigma_0.05")  # a family member, named by its key
    assert (sigma.label, sigma.better, sigma.placeholder) == ("loss increase, sigma 0.05", "lower", None)
    with pytest.raises(KeyError, match="no metric 'nope.x'"):
        cat.metric("nope.x")


def test_family_members_in_numeric_or_merged_group_order():
    sig = Metric("f.s_{sigma}", "s {sigma}", where=lambda s: float(s) > 0)
    runs = [{"f.s_0.1": 1, "f.s_0": 0, "f.s_0.05": 2}, {"f.s_0.5": 1}]
    assert member_values(sig, runs) == ["0.05", "0.1", "0.5"]
    grp = Metric("p.acc.{group}", "after {group}")
    cnn = {f"p.acc.{g}": 0.5 for g in ("stem", "block1", "block2", "block3", "head")}
    resnet = {f"p.acc.{g}": 0.5 for g in ("stem", "block1", "block2", "block3", "block4", "head")}
    assert member_values(grp, [cnn, resnet]) == ["stem", "block1", "block2", "block3", "block4", "head"]
    assert member_values(grp, [{"p.other": 1}]) == []


def test_catalog_refuses_a_duplicate_and_an_undeclared_topic(monkeypatch):
    class Fake:
        summary = "fake"
        topic = None
        metrics = (Metric("x", "x", topic="nowhere"),)

    import reinitlab.report.catalog as catalog
    with ANALYSES.overriding("fake", Fake()):
        with pytest.raises(ValueError, match="'fake.x' names topic 'nowhere'"):
            build_catalog()
    Fake.metrics = (Metric("q50", "again"),)
    with ANALYSES.overriding("fake", Fake()):
        cat = build_catalog()  # no topic declared: the analysis gets one of its own
        assert cat.topics["fake"] == Topic("Why: fake", "fake") and cat.metric("fake.q50").topic == "fake"
    monkeypatch.setattr(catalog, "BUILTIN", catalog.BUILTIN + (Metric("margins.q50", "twice"),))
    with pytest.raises(ValueError, match="'margins.q50' is declared twice"):
        build_catalog()


def test_value_table_sources_and_fallback(tmp_path):
    combo = Combo("toy", "cnn", 100, 0.0)
    write_run(tmp_path, combo, "lw", 0, 0.8, {"margins.q50": 2.0}, diagnostics={"margin_q50": 9.0})
    write_run(tmp_path, combo, "lw", 1, 0.9, None, diagnostics={"margin_q50": 3.0})
    col = collect(tmp_path)
    v = value_table(col.runs, build_catalog().metric("margins.q50"), load(col))
    assert v.by_combo == {combo: {"lw": {0: 2.0, 1: 3.0}}}
    assert v.sources == {(combo, "lw", 0): "analysis.json", (combo, "lw", 1): DIAGNOSTICS}
    assert value_table(col.runs, TEST_ACC, {}).by_combo == {combo: {"lw": {0: 0.8, 1: 0.9}}}


def test_extra_axes_are_combinations_of_their_own_and_extra_columns(tmp_path):
    """A study whose runs.json lists another axis (rounds = [1, 2]): each value is its own
    combination, sorted numerically, with a `rounds` column in every table."""
    base = Combo("toy", "cnn", 100, 0.0)
    listed = []
    for rounds, acc in ((2, 0.9), (1, 0.6)):
        for method in ("baseline", "lw"):
            for seed in (0, 1):
                src = write_run(tmp_path / "tmp", base, method, seed, acc + 0.01 * seed + (0.05 if method == "lw" else 0),
                                {"margins.q50": float(rounds)})
                rid = f"toy/cnn/n100/noise0/rounds{rounds}/{method}/seed{seed}"
                shutil.copytree(src, tmp_path / "runs" / rid)
                cfg = json.loads((src / "config.json").read_text())
                listed.append({"id": rid, "config": cfg, "axes": {"dataset": "toy", "arch": "cnn", "train_size": 100,
                                                                  "label_noise": 0.0, "method": method, "seed": seed,
                                                                  "rounds": rounds}})
    shutil.rmtree(tmp_path / "tmp")
    (tmp_path / "runs.json").write_text(json.dumps({"runs": listed}))
    write_study(tmp_path, "axes", ["baseline", "lw"])
    col = collect(tmp_path)
    t = compute(col)
    one, two = base._replace(settings=(("rounds", 1),)), base._replace(settings=(("rounds", 2),))
    assert t.combos == [one, two] == sorted([two, one], key=combo_order)
    assert t.cells[one]["lw"].stat.mean == pytest.approx(0.655) and t.cells[two]["lw"].stat.mean == pytest.approx(0.955)
    make_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    # methods as rows, a column per value of the extra axis
    assert "| method | rounds=1 | rounds=2 |" in md
    assert "| lw | 65.50 ± 0.50 (2) | 95.50 ± 0.50 (2) |" in md
    assert "| rounds=2 | margin median | 2 ± 0 (2) | 2 ± 0 (2) |" in md  # the why section too
