"""The runs side by side, for a report of loose run folders (`reinitlab report runA runB`): one row
per run with what differs between the runs' configs and its final numbers from result.json. A
study's report leaves it out: its tables already average the seeds, and a study has many runs."""
from __future__ import annotations

from .collect import STANDARD_AXES, Collected, RunRecord
from .part import Part
from .settings import value_text


def _num(v, percent: bool = False) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return ""
    return f"{100 * v:.2f}" if percent else f"{v:g}" if isinstance(v, int) else f"{v:.1f}"


def differing(col: Collected) -> list[str]:
    """The axes and settings whose values differ between the runs, method and seed first."""
    keys = [k for k in ("method", "seed", *STANDARD_AXES[:4])
            if len({repr(r.axes.get(k)) for r in col.runs}) > 1]
    return keys + [k for k in col.extra_axes if k not in keys]


def _row(r: RunRecord, keys: list[str], in_round: bool) -> list[str]:
    res = r.result or {}
    return ([r.id] + [value_text(r.axes.get(k)) for k in keys] + [r.status]
            + [_num(res.get(k), True) for k in ("test_acc", "val_acc", "train_acc")]
            + [_num(res.get(k)) for k in ("rounds", "epochs_total", "seconds")]
            + ([_num(res.get("in_round_events"))] if in_round else []))


def runs_part(col: Collected) -> Part:
    keys = differing(col)
    # a method acting within rounds says how often it did: 0 means it never acted in that run
    in_round = any("in_round_events" in (r.result or {}) for r in col.runs)
    header = ["run", *keys, "status", "test acc (%)", "val acc (%)", "train acc (%)", "rounds trained",
              "epochs trained", "seconds"] + (["in-round events"] if in_round else [])
    intro = ("Each run folder given, with the settings that differ between them" if keys else
             "Each run folder given; their settings are the same") + " (the Settings section has the shared ones) " \
        "and its final numbers from result.json. Runs that differ in anything but the method and the seed are " \
        "never averaged or paired in the tables below."
    return Part("Runs compared", intro, [("Runs", "", header, [_row(r, keys, in_round) for r in col.runs])])
