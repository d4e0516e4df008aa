"""Protocols: what each stage of a run trains on (protocols/), through the one loop.

Checked for every protocol: the stages are what its table says (sizes, nesting, classes, pixel
permutations, labels), fixed by the data seed alone so that methods compared on one seed see the
same stages; every registered method runs under every protocol; a killed run resumes inside a stage
to bit-identical metrics; the plasticity numbers are in each stage's record; bad inputs fail before
anything is written. And the default protocol (`rounds`) writes exactly what it wrote before."""
import json
import subprocess
import sys

import pytest
import torch

from conftest import synthetic_bundle, train_killed_after
from reinitlab import TrainConfig
from reinitlab.core.method import METHODS
from reinitlab.protocols import PROTOCOLS, permute_pixels
from reinitlab.train.engine import Engine, Schedule, lr_at
from reinitlab.train.loop import run
from reinitlab.train.resolve import prepare
from reinitlab.util.errors import UserError
from reinitlab.util.files import read_jsonl

TINY = dict(width=0.25, epochs=2, batch_size=16, eval_batch_size=64, threads=1, round_log=False)
STAGED = [p for p in PROTOCOLS if PROTOCOLS[p].staged]
ROUNDS = {"warm_start": 1, "chunks": 3, "classes": 3, "permuted": 2, "relabel": 2}


def cfg_of(protocol: str, method: str = "baseline", **kw) -> TrainConfig:
    return TrainConfig(method=method, protocol=protocol, rounds=kw.pop("rounds", ROUNDS.get(protocol, 1)),
                       first_fraction=kw.pop("first_fraction", 0.25), **{**TINY, **kw})


@pytest.fixture(scope="module")
def data():
    return synthetic_bundle(n_train=200, n_test=64, classes=4, size=8)  # 180 training examples after val


def stages(cfg, bundle):
    p = prepare(cfg, bundle)
    return p, [p.protocol.stage(s, p.plan) for s in range(p.cfg.rounds + 1)], Schedule.of(p)


def test_the_protocols_are_the_issues_six_and_staged_ones_are_registered_with_summaries():
    assert list(PROTOCOLS) == ["rounds", "warm_start", "chunks", "classes", "permuted", "relabel"]
    assert not PROTOCOLS["rounds"].staged and all(PROTOCOLS[p].summary for p in PROTOCOLS)


def test_warm_start_trains_a_fixed_share_first_for_about_a_full_stages_steps(data):
    p, (s0, s1), sched = stages(cfg_of("warm_start", first_fraction=0.25, epochs=3), data)
    n = len(p.split.labels)
    assert len(s0.index) == round(0.25 * n) and s1.index is None  # then all of it
    assert len(set(s0.index.tolist())) == len(s0.index) and int(s0.index.max()) < n
    assert sched.epochs == (12, 3)  # E / first_fraction: as many steps as a full stage
    assert sched.stage(0)[0] == round(0.25 * n) and sched.stage(1)[0] == n


def test_chunks_are_equal_disjoint_and_cumulative(data):
    p, st, sched = stages(cfg_of("chunks", rounds=3), data)
    n = len(p.split.labels)
    sets = [set(s.index.tolist()) for s in st]
    assert all(a < b for a, b in zip(sets, sets[1:], strict=False)) and sets[-1] == set(range(n))
    sizes = [len(b - a) for a, b in zip([set()] + sets[:-1], sets, strict=True)]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1


def test_classes_arrive_in_groups_and_the_test_set_follows_the_classes_seen(data):
    p, st, _ = stages(cfg_of("classes", rounds=3), data)
    seen = [set(s.classes.tolist()) for s in st]
    assert [len(c) for c in seen] == [1, 2, 3, 4] and all(a < b for a, b in zip(seen, seen[1:], strict=False))
    for s, classes in zip(st, seen, strict=True):
        assert set(p.split.labels[s.index].tolist()) == classes  # exactly the examples of those classes
        assert len(s.index) == int(torch.isin(p.split.labels, s.classes).sum())
    eng = Engine(p)
    eng.begin_stage(1)
    x, y = eng.test_sets["test"]
    assert set(y.tolist()) == seen[1] and len(eng.test_sets["test_all"][1]) == len(data.y_test)


def test_permuted_stages_permute_train_and_test_pixels_alike(data):
    p, st, _ = stages(cfg_of("permuted", rounds=2), data)
    assert st[0].permutation is None
    perms = [s.permutation for s in st[1:]]
    assert all(sorted(q.tolist()) == list(range(8 * 8)) for q in perms) and not torch.equal(perms[0], perms[1])
    eng = Engine(p)
    eng.begin_stage(2)
    flat = eng.x_train.reshape(len(eng.x_train), -1)
    assert torch.equal(eng.x_stage.reshape(len(flat), -1), flat[:, perms[1]])
    xt = eng.test_sets["test"][0].reshape(len(data.y_test), -1)
    assert torch.equal(xt, eng.x_test.reshape(len(data.y_test), -1)[:, perms[1]])
    assert eng.x_stage.is_contiguous(memory_format=torch.channels_last)


def test_relabel_draws_new_labels_for_every_stage(data):
    p, st, _ = stages(cfg_of("relabel", rounds=2), data)
    labels = [s.labels for s in st]
    assert all(len(lab) == len(p.split.labels) and 0 <= int(lab.min()) and int(lab.max()) < 4 for lab in labels)
    assert not torch.equal(labels[0], labels[1]) and not torch.equal(labels[0], p.split.labels)


@pytest.mark.parametrize("protocol", STAGED)
def test_the_stages_come_from_the_data_seed_alone(data, protocol):
    """Two methods, and two model seeds, on one data seed see the same stages; another data seed
    sees others."""
    def layout(**kw):
        p, st, _ = stages(cfg_of(protocol, **kw), data)
        return [[None if t is None else t.tolist() for t in (s.index, s.labels, s.permutation, s.classes)]
                for s in st]
    same = layout(method="scratch", seed=0, data_seed=5)
    assert same == layout(method="sp", seed=3, data_seed=5)
    assert same != layout(method="scratch", seed=0, data_seed=6)


@pytest.mark.parametrize("protocol", STAGED)
@pytest.mark.parametrize("method", [m for m in METHODS if m != "long"])
def test_every_method_runs_under_every_protocol(protocol, method):
    """Methods that act within rounds take the options the resume tests give them, under which they
    act in a few steps (their defaults would be refused on so short a run: they never act)."""
    from test_methods_resume import IN_ROUND
    spec = next((s for s in IN_ROUND if s.split(":")[0] == method), method) if METHODS[method]().in_round else method
    bundle = synthetic_bundle(n_train=72, n_test=16, classes=4, size=8)
    cfg = cfg_of(protocol, method=spec, epochs=2, rounds=1 if protocol != "chunks" else 2, batch_size=8)
    result = run(cfg, None, progress=False, bundle=bundle)
    assert result["status"] in ("finished", "diverged") and len(result["per_round"]) == cfg.rounds + 1


@pytest.mark.parametrize("protocol", STAGED)
def test_each_stage_record_has_what_plasticity_work_measures(data, protocol):
    cfg = cfg_of(protocol, method="sp", epochs=3)
    result = run(cfg, None, progress=False, bundle=data)
    for rec in result["per_round"]:
        assert {"dormant", "srank", "weight_norm", "grad_norm"} <= set(rec["plasticity"])
        assert 0 <= rec["plasticity"]["dormant"] <= 1 and rec["plasticity"]["srank"] >= 1
        assert rec["examples"] >= 1 and 0 <= rec["online_acc"] <= 1
    assert ("test_all_acc" in result["per_round"][-1]) == (protocol == "classes")
    if protocol == "permuted":
        accs = [rec["test_acc"] for rec in result["per_round"]]
        assert result["per_round"][-1]["test_acc_mean"] == pytest.approx(sum(accs) / len(accs))


def test_online_accuracy_is_the_stages_mean_training_accuracy_before_each_update(data, tmp_path):
    result = run(cfg_of("chunks", method="baseline", epochs=3), tmp_path / "run", progress=False, bundle=data)
    rows = read_jsonl(tmp_path / "run/metrics.jsonl")
    for rec in result["per_round"]:
        accs = [r["train_acc"] for r in rows if r["round"] == rec["round"]]
        assert rec["online_acc"] == pytest.approx(sum(accs) / len(accs)) and len(accs) == 3
    provenance = json.loads((tmp_path / "run/provenance.json").read_text())
    assert provenance["result"]["config"]["protocol"] == "chunks"  # what determined the numbers


def test_baseline_trains_on_across_stages_and_scratch_starts_over(data):
    """Both see stage 0 the same way (one initialization); afterwards baseline keeps its weights (no
    reset is recorded) and scratch re-draws every group."""
    warm = run(cfg_of("chunks", method="baseline"), None, progress=False, bundle=data)
    cold = run(cfg_of("chunks", method="scratch"), None, progress=False, bundle=data)
    assert warm["per_round"][0]["test_acc"] == cold["per_round"][0]["test_acc"]
    assert all(rec["reset"] is None for rec in warm["per_round"])
    assert all(rec["reset"]["event"] == "reset every group" for rec in cold["per_round"][1:])


@pytest.mark.parametrize("protocol", STAGED)
def test_a_kill_inside_a_stage_resumes_to_the_same_metrics(tmp_path, monkeypatch, data, protocol):
    """With Adam where continual learning uses it (its moments and step counts are in the checkpoint)."""
    adam = dict(optimizer="adam", lr=1e-3, lr_schedule="constant") if protocol in ("permuted", "relabel") else {}
    cfg = cfg_of(protocol, method="redo:every=3", epochs=3, **adam)
    ref = run(cfg, tmp_path / "ref", progress=False, bundle=data)
    train_killed_after(4, cfg, tmp_path / "run", monkeypatch, bundle=data)  # stage 1's first epoch done
    resumed = run(cfg, tmp_path / "run", progress=False, bundle=data)

    def timeless(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "diagnostics_seconds")} for r in rows]
    assert timeless(read_jsonl(tmp_path / "run/metrics.jsonl")) == timeless(read_jsonl(tmp_path / "ref/metrics.jsonl"))
    assert timeless(resumed["per_round"]) == timeless(ref["per_round"])


def test_the_rounds_protocol_writes_what_it_wrote_before_protocols(data, tmp_path):
    """No stage fields in its rows and records, and a run folder made before the protocol settings
    existed (a config.json without them) still resumes."""
    cfg = TrainConfig(method="lw", rounds=1, **TINY)
    result = run(cfg, tmp_path / "run", progress=False, bundle=data)
    for rec in result["per_round"]:
        assert not {"online_acc", "plasticity", "examples", "test_all_acc"} & set(rec)
    path = tmp_path / "run/config.json"
    old = {k: v for k, v in json.loads(path.read_text()).items()
           if k not in ("protocol", "first_fraction", "optimizer", "lr_schedule", "fit_acc")}
    path.write_text(json.dumps(old))
    (tmp_path / "run/result.json").unlink()  # as if it had been killed at its very end
    assert run(cfg, tmp_path / "run", progress=False, bundle=data)["test_acc"] == result["test_acc"]


def test_constant_schedule_holds_the_peak_after_warm_up_and_cosine_decays_to_zero():
    assert [lr_at(s, 10, 1.0, 0.2, "constant") for s in range(10)] == [0.5, 1.0] + [1.0] * 8
    assert lr_at(2, 10, 1.0, 0.2) == 1.0 and lr_at(9, 10, 1.0, 0.2) == pytest.approx(0.0380602, abs=1e-6)
    assert lr_at(5, 10, 1.0, 0.0, "constant") == 1.0


def test_adam_is_created_fresh_every_round_with_the_runs_settings(data):
    cfg = cfg_of("permuted", method="baseline", optimizer="adam", lr=1e-3, weight_decay=0.0, lr_schedule="constant",
                 warmup=0.0)
    eng = Engine(prepare(cfg, data))
    opt = eng.optimizer()
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-3 and not opt.state
    assert eng.lr_after(0, 0) == 1e-3 and eng.lr_after(1, 1) == 1e-3
    assert isinstance(Engine(prepare(cfg_of("permuted"), data)).optimizer(), torch.optim.SGD)


def test_patience_ends_a_stage_once_the_fit_accuracy_is_held(data):
    easy = synthetic_bundle(n_train=200, n_test=64, classes=2, size=8)
    result = run(cfg_of("warm_start", method="baseline", epochs=40, patience=2, fit_acc=0.9, lr=0.05), None,
                 progress=False, bundle=easy)
    first = result["per_round"][0]
    assert first["epochs"] < 160 and first["online_acc"] <= 1  # stopped long before its cap of E / 0.25
    assert result["epochs_total"] == sum(rec["epochs"] for rec in result["per_round"])


def test_mlp_trains_and_lw_works_on_its_groups(data):
    result = run(TrainConfig(arch="mlp", method="lw", rounds=1, **TINY), None, progress=False, bundle=data)
    assert result["status"] == "finished" and result["per_round"][1]["reset"]["event"]


def test_permute_pixels_keeps_the_memory_format():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    out = permute_pixels(x, perm, torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out.reshape(2, 3, 16), x.reshape(2, 3, 16)[:, :, perm])


BAD = [
    (["--set", "protocol=warmstart"], "protocol='warmstart' is not valid"),
    (["--set", "protocol=classes", "--rounds", "10"], "11 stages need at least as many classes"),
    (["--set", "protocol=warm_start", "--set", "first_fraction=1"], "first_fraction=1.0 is out of range"),
    (["--set", "protocol=warm_start", "--set", "first_fraction=0"], "first_fraction=0.0 is out of range"),
    (["--set", "protocol=permuted", "--method", "long", "--rounds", "2"], "method 'long' has no meaning under"),
    (["--set", "protocol=warm_start", "--rounds", "3"], "protocol=warm_start has two stages"),
    (["--set", "protocol=chunks"], "protocol=chunks needs rounds"),
    (["--set", "optimizer=rmsprop"], "optimizer='rmsprop' is not valid"),
    (["--set", "lr_schedule=step"], "lr_schedule='step' is not valid"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args,message", BAD)
def test_bad_protocol_input_fails_in_one_line_before_anything_is_written(tmp_path, args, message):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "reinitlab", "train", "--train-size", "100", "--epochs", "1",
                           "--width", "0.25", "--out", str(out), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists()


STUDY = """
name = "protocols"
datasets = ["{data}"]
archs = ["cnn"]
methods = ["baseline", "scratch", "sp"]
train_sizes = [80]
seeds = [0, 1]
protocol = ["warm_start", "chunks", "classes", "permuted", "relabel"]
rounds = 1
epochs = 2
width = 0.25
batch_size = 16
first_fraction = 0.5
round_log = false
threads = 1
"""


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """120 training and 40 test images of 4 classes, 8 px, as an npz dataset file."""
    import numpy as np
    b = synthetic_bundle(n_train=120, n_test=40, classes=4, size=8)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=b.x_train.numpy()[:, 0], y_train=b.y_train.numpy(), x_test=b.x_test.numpy()[:, 0],
             y_test=b.y_test.numpy())
    return f"npz:{path}"


@pytest.mark.slow
def test_a_study_crossing_the_protocols_trains_every_combination_and_reports_the_stages(tmp_path, npz, monkeypatch):
    import csv
    import io
    from reinitlab.report.make import make_report
    from reinitlab.study import load_definition, run_study
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))
    toml = tmp_path / "s.toml"
    toml.write_text(STUDY.replace("{data}", npz))
    result = run_study(load_definition(str(toml)), tmp_path / "out", workers=1)
    assert result.ok and result.finished == 30
    report = make_report(tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out/results.csv").read_text())))
    assert {r["protocol"] for r in rows} == {"warm_start", "chunks", "classes", "permuted", "relabel"}
    assert all(r["status"] == "finished" for r in rows) and len(rows) == 30
    md = (tmp_path / "out/summary.md").read_text()
    assert "## Stages" in md and "protocol relabel: training accuracy reached per stage" in md
    assert "baseline" in md.split("## Stages")[1] and "− scratch (last)" in md
    assert "<h2" in (tmp_path / "out/report.html").read_text() and "Stages" in (tmp_path / "out/report.html").read_text()
    assert any(p.name.startswith("stages_") for p in report.files)


VARIANTS = """
name = "shifting"
datasets = ["{data}"]
archs = ["mlp"]
methods = ["baseline", "scratch"]
seeds = [0]
optimizer = "adam"
lr = 0.001
lr_schedule = "constant"
batch_size = 16
val_fraction = 0.0
threads = 1

[[variants]]
protocol = "permuted"
train_sizes = [96]
epochs = 1
rounds = 5

[[variants]]
protocol = "relabel"
train_sizes = [48]
epochs = 3
rounds = 3
"""


def test_variants_join_grids_with_their_own_settings_in_distinct_folders(tmp_path, npz):
    from reinitlab.study import expand, load_definition
    toml = tmp_path / "v.toml"
    toml.write_text(VARIANTS.replace("{data}", npz))
    defn = load_definition(str(toml))
    runs, budgets = expand(defn)
    assert len(runs) == 4 and len({r.id for r in runs}) == 4
    by_protocol = {r.config["protocol"]: r for r in runs if r.config["method"] == "baseline"}
    assert (by_protocol["permuted"].config["epochs"], by_protocol["permuted"].config["rounds"]) == (1, 5)
    assert (by_protocol["relabel"].config["train_size"], by_protocol["relabel"].config["rounds"]) == (48, 3)
    assert "epochs=1,protocol=permuted,rounds=5" in by_protocol["permuted"].id
    assert set(defn.extra_axes) == {"epochs", "protocol", "rounds"} and len(budgets) == 2
    over = load_definition(str(toml), ["epochs=2"])  # --set wins over every variant
    assert {r.config["epochs"] for r in expand(over)[0]} == {2}


@pytest.mark.slow
def test_a_study_of_variants_reported_elsewhere_is_not_mixed_provenance(tmp_path, npz, monkeypatch):
    """Variants differ in their settings by design: neither the report in the study folder nor one
    written to another folder (which reads the study's runs as loose run folders) calls that mixed."""
    from reinitlab.report.make import make_report
    from reinitlab.study import load_definition, run_study
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))
    toml = tmp_path / "v.toml"
    toml.write_text(VARIANTS.replace("{data}", npz))
    assert run_study(load_definition(str(toml)), tmp_path / "out", workers=1).finished == 4
    for out in (None, tmp_path / "elsewhere"):
        report = make_report(tmp_path / "out", out)
        assert not report.provenance.mixed and "Mixed provenance" not in report.markdown


@pytest.mark.parametrize("text,message", [
    ('variants = []', "variants must be a non-empty list of tables"),
    ('[[variants]]\nname = "x"', "'name' cannot differ between variants"),
    ('[[variants]]\nprotocol = "permuted"\nrounds = 2\n[[variants]]\nrounds = 3', "'protocol' is set by another "
     "variant but not by this one"),
    ('[[variants]]\nlr = 0.1\n[[variants]]\nlr = 0.1', "both have the run"),
])
def test_bad_variants_are_refused_in_one_line(tmp_path, npz, text, message):
    from reinitlab.study import expand, load_definition
    toml = tmp_path / "v.toml"
    toml.write_text(f'datasets = ["{npz}"]\narchs = ["mlp"]\nmethods = ["baseline"]\ntrain_sizes = [48]\n'
                    f'seeds = [0]\nepochs = 1\n{text}\n')
    with pytest.raises(UserError, match=message):
        expand(load_definition(str(toml)))


def test_a_study_of_a_staged_protocol_without_rounds_is_refused_before_it_starts(tmp_path, npz):
    from reinitlab.study import expand, load_definition
    toml = tmp_path / "s.toml"
    toml.write_text(f'datasets = ["{npz}"]\narchs = ["cnn"]\nmethods = ["baseline"]\ntrain_sizes = [48]\n'
                    'seeds = [0]\nprotocol = "chunks"\n')
    with pytest.raises(UserError, match="protocol=chunks needs rounds"):
        expand(load_definition(str(toml)))
    toml.write_text(toml.read_text() + "rounds = 2\n")
    toml.write_text(toml.read_text().replace('methods = ["baseline"]', 'methods = ["baseline", "long"]'))
    with pytest.raises(UserError, match="method 'long' has no meaning under protocol=chunks"):
        expand(load_definition(str(toml)))
