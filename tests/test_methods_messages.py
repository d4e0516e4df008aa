"""What the methods tell the user: each reset event's description (kept in the run's reset records,
result.json and the report say what a round did through it) and LW's warning when rounds exceed its
distinct steps (tests/test_cli_help.py checks that it reaches the user
before training). Whole strings are compared, so a changed count, option or group name shows."""
import pytest
from test_core_reset import SEED, trained_model

from reinitlab import Reinitializer
from reinitlab.core.method import METHODS, make_method
from reinitlab.core.groups import groups_of


@pytest.mark.parametrize("spec,description", [
    ("fc", "reset head"),
    ("llf", "reset block3..head"),
    ("ke", "wels split 0.8"),
    ("ke:peer=true", "wels split 0.8 (KE code's rules)"),
    ("welsr", "wels split 0.8"),
    ("dsd", "magnitude keep 0.8"),
    ("sp", "shrink 0.4 perturb 0.1"),
    ("sp:step=0.1", "shrink 0.4 perturb 0.1, step 0.1 per group"),
    ("llf:peer=true", "reset block3..head (LLF code's rules)"),
    ("dnr:scope=global,keep=0.99999999", "snip global keep 0.99999999: nothing below the threshold"),
    ("lw", "keep stem..block1, reset block2..head"),
    ("dnr", "snip keep 0.8"),
    ("dnr:scope=global", "snip global keep 0.8: 0.200 re-drawn (threshold 6.02e-05)"),
    ("fire", "fire alpha 1.0"),
    ("redo", "redo tau 0.1: 0 dormant units"),
    ("dash", "dash lam 0.3"),
    ("l2init", "no reset (L2-Init penalty)"),
    ("swr", "no reset at the round start (SWR acts every step)"),
    ("cbp", "no reset at the round start (cbp acts every step): 0 units replaced so far in 4 unit layers"),
    ("hare", "no reset at the round start (the hare is set to the tortoise inside rounds)"),
    ("scratch", "reset every group"),
    ("snr", "no reset at the round start (snr acts every step): 0 units reset so far in 4 unit layers"),
])
def test_each_methods_event_describes_what_it_did(spec, description):
    model, _, batches = trained_model()
    record = Reinitializer(model, spec, rounds=3, seed=SEED).reset(1, data=batches)
    assert record["event"] == description


def test_rewind_describes_the_epoch_it_returned_to():
    model, _, batches = trained_model()
    reinit = Reinitializer(model, "rewind:rewind_epoch=2", rounds=2, seed=SEED)
    reinit.end_epoch(0, 1)
    reinit.end_epoch(0, 2)
    assert reinit.reset(1, data=batches)["event"] == "rewind to epoch 2"


def test_every_resetting_method_has_a_description_case():
    """A new method joins the table above (or the rewind case): its record is part of its interface."""
    covered = {"fc", "llf", "ke", "welsr", "dsd", "sp", "lw", "dnr", "fire", "redo", "dash", "l2init", "swr",
               "cbp", "hare", "scratch", "snr", "rewind"}
    resetting = {name for name in METHODS if METHODS[name].resets}
    assert resetting <= covered, sorted(resetting - covered)


def lw_warning(spec, rounds):
    model, _, _ = trained_model()  # cnn: stem, block1, block2, block3, head (K = 4)
    return make_method(spec).budget_warning(rounds, groups_of(model))


def test_lw_names_its_distinct_steps_when_rounds_exceed_them():
    assert lw_warning("lw", 5) == (
        "lw: rounds=5 but this model's 5 groups give only 3 distinct steps (keep up to block1, block2, "
        "block3): 2 of the 5 rounds repeat an earlier round's reset; rounds=3 gives each step once")
    assert lw_warning("lw:order=top_down", 5) == (
        "lw: rounds=5 but this model's 5 groups give only 3 distinct steps (keep up to block3, block2, "
        "block1): 2 of the 5 rounds repeat an earlier round's reset; rounds=3 gives each step once")


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_lw_is_quiet_while_every_round_has_a_step_of_its_own(rounds):
    assert lw_warning("lw", rounds) is None
    assert lw_warning("lw:order=top_down", rounds) is None



def test_in_round_events_describe_when_they_acted():
    model, _, _ = trained_model()
    assert Reinitializer(model, "hare:every_epochs=1", rounds=1, seed=SEED).end_epoch(0, 1)["event"] == \
        "hare set to the tortoise after epoch 1"
    assert Reinitializer(model, "swr:every=1,maturity=0,rate=0.1", rounds=1, seed=SEED).after_step(0, 1)["event"] == \
        "swr step 1"
    assert Reinitializer(model, "fc:every=1", rounds=1, seed=SEED).after_step(0, 1)["event"] == "reset head at step 1"
