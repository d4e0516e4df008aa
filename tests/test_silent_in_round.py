"""A method that acts within rounds (swr, redo:every, sp:every_epochs) and could
never act in a run's schedule is refused before training, naming the setting that would make it act;
every in-round event is counted per epoch (metrics.jsonl), per round and per run (result.json), and
a report names a method that never acted."""
import json

import pytest
from conftest import synthetic_bundle
from hypothesis import given, settings
from hypothesis import strategies as st

from reinitlab import TrainConfig, run
from reinitlab.cli import main
from reinitlab.core.method import METHODS, Cadence, make_method
from reinitlab.report import make_report
from reinitlab.train.loop import run_keeping_engine
from reinitlab.util.errors import UserError
from reinitlab.util.files import read_jsonl

TINY = dict(width=0.25, rounds=1, batch_size=16, eval_batch_size=64, threads=1, round_log=False, norm_log=False)


def simulated(c: Cadence, steps: int, epochs: list[int]) -> tuple[int, tuple | None]:
    """The events a cadence allows, step by step as the loop goes: (count, (round, step or epoch) of
    the first)."""
    events, first, run_step = 0, None, 0
    for r, e in enumerate(epochs):
        for k in range(1, e * steps + 1):
            run_step += 1
            if c.unit == "step":
                slot = k if k % c.every == 0 else None
            else:  # after epoch k // steps, never after the round's last
                done, rest = divmod(k, steps)
                slot = done if rest == 0 and done < e and done % c.every == 0 else None
            if slot is not None and run_step > c.mature_after:
                events += 1
                first = first or (r, slot)
    return events, first


@settings(max_examples=400, deadline=None)
@given(unit=st.sampled_from(["step", "epoch"]), every=st.integers(1, 25), mature=st.integers(0, 60),
       steps=st.integers(1, 9), epochs=st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_reach_counts_exactly_the_events_the_loop_can_fire(unit, every, mature, steps, epochs):
    c = Cadence(unit, every, "every", mature_after=mature, maturity_setting="maturity")
    reach = c.reach(steps, epochs)
    assert (reach.events, reach.first) == simulated(c, steps, epochs)
    if reach.events == 0:  # the line names the setting and what would make it act
        assert ("every=" in reach.why or "maturity=" in reach.why) and ("; set " in reach.why or "; train " in reach.why)
    else:
        assert reach.why == ""


@pytest.mark.parametrize("spec,epochs", [
    ("swr:every=2,rate=0.5,maturity=3", 2),
    ("swr:every=5,rate=0.5,maturity=7", 2),
    ("redo:tau=1.0,every=2", 2),
    ("sp:every_epochs=1", 3),
    ("sp:every_epochs=2", 3),
])
def test_the_prediction_is_what_the_run_does_and_every_event_is_counted(tmp_path, spec, epochs):
    """With options under which every possible slot replaces something, the run fires exactly the
    events its schedule allows, and metrics.jsonl (per epoch), result.json per_round and the run's
    total agree."""
    bundle = synthetic_bundle()
    cfg = TrainConfig(method=spec, epochs=epochs, **TINY)
    result = run(cfg, tmp_path / "run", progress=False, bundle=bundle)
    _, eng = run_keeping_engine(cfg, out=None, progress=False, bundle=bundle)
    reach = make_method(spec).in_round_reach(eng.schedule.steps, eng.schedule.epochs)
    assert result["in_round_events"] == reach.events > 0
    rows = read_jsonl(tmp_path / "run/metrics.jsonl")
    for rec in result["per_round"]:
        mine = [row for row in rows if row["round"] == rec["round"]]
        assert rec["in_round_events"] == sum(row["in_round_events"] for row in mine)
        for key in ("in_round_replaced", "in_round_changed"):
            assert rec[key] == sum(row[key] for row in mine)
    for key in ("in_round_events", "in_round_replaced", "in_round_changed"):
        assert result[key] == sum(rec[key] for rec in result["per_round"])
    assert result["in_round_changed"] >= result["in_round_replaced"] and result["in_round_changed"] > 0
    if spec.startswith("sp"):  # shrink and perturb changes every element of a tensor and re-draws none
        assert result["in_round_replaced"] == 0
        n = sum(p.numel() for p in eng.model.parameters())
        assert result["in_round_changed"] == n * result["in_round_events"]
    first_round, first_at = reach.first  # the first epoch with an event is the one the schedule said
    first_epoch = first_at if "every_epochs" in spec else -(-first_at // eng.schedule.steps)
    acted = next(row for row in rows if row["in_round_events"])
    assert (acted["round"], acted["epoch"]) == (first_round, first_epoch)


def test_methods_that_never_act_within_a_round_log_no_counts(tmp_path, bundle):
    result = run(TrainConfig(method="fc", epochs=1, **TINY), tmp_path / "run", progress=False, bundle=bundle)
    assert "in_round_events" not in result and "in_round_events" not in result["per_round"][1]
    assert all("in_round_events" not in row for row in read_jsonl(tmp_path / "run/metrics.jsonl"))


def test_a_method_that_also_acts_at_every_round_start_is_not_counted_as_never_acting(tmp_path, bundle):
    """hare:at_round_start sets the network to its tortoise at every round start: with one epoch a
    round it has no in-round event, but it acted, so no count of 0 may call it idle; by default it
    acts only within rounds and is counted."""
    cfg = TrainConfig(method="hare:at_round_start=true", epochs=1, **TINY)
    result = run(cfg, tmp_path / "start", progress=False, bundle=bundle)
    assert "in_round_events" not in result and "tortoise" in result["per_round"][1]["reset"]["event"]
    counted = run(cfg.replace(method="hare:every_epochs=1", epochs=3), tmp_path / "in", progress=False, bundle=bundle)
    assert counted["in_round_events"] > 0


# (method, train options, what the line names, a spec that acts in the same run). fashion-mnist-small,
# 768 examples at batch 128: 6 steps an epoch, as in the issue
RUN = ["--dataset", "fashion-mnist-small", "--train-size", "768", "--width", "0.25", "--set", "threads=1", "--quiet"]
REFUSED = [
    ("swr", ["--epochs", "1", "--rounds", "2"], "every=10 acts every 10 optimizer steps", "swr:every=6,maturity=5"),
    ("swr:every=5", ["--epochs", "1", "--rounds", "2"], "maturity=50", "swr:every=5,maturity=14"),
    ("redo:every=100", ["--epochs", "2", "--rounds", "1"], "set every <= 12", "redo:every=12"),
    ("sp:every_epochs=3", ["--epochs", "3", "--rounds", "1"], "set every_epochs < 3", "sp:every_epochs=2"),
]


@pytest.mark.parametrize("spec,args,named,acting", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_method_that_cannot_act_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys, spec, args,
                                                                                    named, acting):
    out = tmp_path / "run"
    assert main(["train", "--method", spec, *args, *RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"method '{spec.split(':')[0]}' never acts in this run" in err and named in err
    assert not out.exists()
    assert main(["train", "--method", spec, *args, *RUN, "--dry-run"]) == 2  # the dry run says the same
    assert main(["train", "--method", acting, *args, *RUN, "--dry-run"]) == 0  # what the line advises acts
    capsys.readouterr()


def test_a_study_whose_method_cannot_act_is_refused_before_it_starts(tmp_path):
    from reinitlab.study.definition import load_definition
    from reinitlab.study.expand import expand
    toml = tmp_path / "s.toml"
    toml.write_text('datasets = ["fashion-mnist-small"]\narchs = ["cnn"]\nmethods = ["baseline", "swr"]\n'
                    'train_sizes = [768]\nlabel_noise = [0.0]\nseeds = [0]\nepochs = 1\nrounds = 2\nwidth = 0.25\n')
    with pytest.raises(UserError, match=r"runs of swr on fashion-mnist-small \(768 training examples.*never acts"):
        expand(load_definition(str(toml)))
    assert len(expand(load_definition(str(toml), ["epochs=2", 'methods=["baseline", "swr:every=4,maturity=10"]']))[0]) == 2


def test_every_registered_method_that_acts_within_rounds_says_when_it_can():
    """A method added later (one file) gets the refusal by implementing `cadence` (or in_round_reach)."""
    specs = [name for name in METHODS] + ["redo:every=3", "sp:every_epochs=2"]
    checked = 0
    for spec in specs:
        m = make_method(spec)
        if m.in_round:
            checked += 1
            assert m.in_round_reach(3, [2, 2]) is not None, f"{spec}: in_round but no cadence or in_round_reach"
    assert checked >= 3


def test_the_report_names_a_method_that_never_acted(tmp_path, bundle):
    """Schedule-wise swr can act here, but a rate this small never owes one element: 0 events."""
    run(TrainConfig(method="swr:every=1,maturity=0,rate=1e-9", epochs=1, **TINY), tmp_path / "swr", progress=False,
        bundle=bundle)
    run(TrainConfig(method="baseline", epochs=1, **TINY), tmp_path / "base", progress=False, bundle=bundle)
    assert json.loads((tmp_path / "swr/result.json").read_text())["in_round_events"] == 0
    rep = make_report([tmp_path / "swr", tmp_path / "base"], tmp_path / "rep")
    assert "never acted in 1 of its 1 finished run (0 in-round events in result.json)" in rep.markdown
    assert "| in-round events |" in rep.markdown
    row = next(line for line in rep.markdown.splitlines() if line.startswith("| swr"))
    assert row.rstrip(" |").endswith("0")


def test_train_prints_the_in_round_events(tmp_path, capsys):
    """sp after epoch 1 of each 2-epoch round: 2 events, said on the line train ends with."""
    args = ["--dataset", "fashion-mnist-small", "--train-size", "100", "--width", "0.25", "--set", "threads=1",
            "--set", "round_log=false", "--quiet", "--epochs", "2", "--rounds", "1"]
    assert main(["train", "--method", "sp:every_epochs=1", *args, "--out", str(tmp_path / "sp")]) == 0
    assert "in-round events 2  " in capsys.readouterr().out
    assert main(["train", "--method", "fc", *args, "--out", str(tmp_path / "fc")]) == 0
    assert "in-round" not in capsys.readouterr().out


# spec, optimizer steps per epoch, epochs of each round -> in-round events the run allows, and the
# (round, step or epoch) of the first; counted by hand from each method's rule
REACH = [
    ("fc:every=4", 3, [2, 3], 3, (0, 4)),  # 6 steps: step 4; 9 steps: 4 and 8
    ("fc:every_epochs=2", 3, [2, 3], 1, (1, 2)),  # never after a round's last epoch: only round 1's epoch 2
    ("fc:every=4,every_epochs=2", 10, [4], 11, (0, 2)),  # 10 step events, 1 epoch event (after epoch 2)
    ("sp:every_epochs=2", 10, [4], 1, (0, 2)),
    ("redo:every=5", 3, [2, 3], 2, (0, 5)),  # 6 and 9 steps: one slot each
    ("hare", 3, [2, 3], 2, (0, 1)),  # after epoch 1 of each round (1, 11, 21, ...)
    ("hare:every_epochs=2", 10, [4], 2, (0, 1)),  # after epochs 1 and 3, not 4 (the last)
    ("hare:at_round_start=true", 10, [4], 1, (0, 1)),  # one round: no round start to act at
    ("swr:every=3,maturity=10", 3, [2, 3], 2, (1, 6)),  # run steps 12 and 15 are past maturity 10
    ("snr", 3, [2, 3], 15, (0, 1)),  # every step
    ("cbp:maturity=5", 3, [2, 3], 10, (0, 6)),  # every step of the run after its 5th: steps 6..15
    ("redo:every=1", 3, [2, 3], 15, (0, 1)),
]


@pytest.mark.parametrize("spec,steps,epochs,events,first", REACH, ids=[r[0] for r in REACH])
def test_each_method_counts_the_in_round_events_its_schedule_allows(spec, steps, epochs, events, first):
    reach = make_method(spec).in_round_reach(steps, epochs)
    assert (reach.events, reach.first, reach.why) == (events, first, "")


@pytest.mark.parametrize("spec,steps,epochs,why", [
    ("fc:every=4,every_epochs=2", 3, [1, 1],
     "every=4 acts every 4 optimizer steps, and a round of this run has at most 3 (1 epoch of 3 steps); set "
     "every <= 3, or train more steps per round (epochs, a smaller batch_size); every_epochs=2 acts after every 2 "
     "epochs of a round but never after its last, and a round of this run trains at most 1 epoch; train epochs > 2"),
    ("hare:from_first=false", 3, [2, 3],
     "every_epochs=10 acts after every 10 epochs of a round but never after its last, and a round of this run "
     "trains at most 3 epochs; set every_epochs < 3, or epochs > 10"),
    ("hare", 3, [1, 1],
     "hare sets the network to the tortoise after epoch 1 of a round and every every_epochs=10 epochs after, never "
     "after a round's last, and a round of this run trains at most 1 epoch(s); train epochs >= 2"),
    ("cbp", 10, [4],
     "it replaces only what is older than maturity=1000 steps, and its last chance comes at step 40 of the run's "
     "40; set maturity < 40, or train longer (epochs, rounds)"),
])
def test_a_schedule_that_cannot_act_says_what_would_make_it_act(spec, steps, epochs, why):
    reach = make_method(spec).in_round_reach(steps, epochs)
    assert (reach.events, reach.first, reach.why) == (0, None, why)


@pytest.mark.parametrize("spec", ["fc", "hare:at_round_start=true", "l2init", "redo", "sp"])
def test_methods_without_in_round_events_or_with_round_start_ones_are_not_checked(spec):
    assert make_method(spec).in_round_reach(3, [2, 3]) is None


@pytest.mark.parametrize("args", [("steps", 1, "every"), ("step", 0, "every"), ("epoch", 2, "")])
def test_a_cadence_refuses_a_unit_period_or_name_it_could_not_count(args):
    with pytest.raises(ValueError, match="expected unit 'step' or 'epoch', every >= 1"):
        Cadence(*args)
