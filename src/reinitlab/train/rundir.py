"""The run folder: what it holds, whether a command starts, resumes or finds it finished, and where a
run stands (RunState). Checkpoints and results are written by checkpoint.py.

config.json   the resolved config            split.json    train/val indices, noisy labels, hash
metrics.jsonl one line per epoch             result.json   final numbers; its presence = finished
env.json      versions, commit, device       ckpt.pt       last epoch's state (deleted at the end)
provenance.json  what determined the numbers (provenance.py), written with env.json
model.pt      final weights + reinit state
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..util.errors import UserError
from ..util.files import code_problem, read_json, read_jsonl, writable_problem
from .config import TrainConfig

# Settings in which the command that resumes a run may differ from the one that started it: those
# chosen for speed, which the run keeps at its own values, because each changes the last bits (on the
# CPU intra-op reductions are split by thread, evaluation sums its loss batch by batch, compiled
# kernels round differently) and a resumed run must end bit-identical to an uninterrupted one...
SPEED_SETTINGS = {"threads", "compile", "eval_batch_size"}
# ...or who watches the run: the trackers mirror a run's numbers and never change them, so a run
# (and a study) started without a tracker may be resumed with one, and the other way round.
OBSERVER_SETTINGS = {"tracker", "tracker_dir"}
RESUMABLE_DIFFERENCES = SPEED_SETTINGS | OBSERVER_SETTINGS


# A setting added after a run was made (protocol, optimizer, ...) reads as its default in that run's
# files: the older code trained exactly that.
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def stored_setting(config: dict, key: str):
    """`key` of a stored config: its value, or this code's default where the config predates it."""
    return config[key] if key in config else _DEFAULTS.get(key)


def same_setting(key: str, old, new) -> bool:
    """Whether a stored setting and the one resolved now describe the same run. A method option that
    this code knows and the run's older code did not is at its default (the method spec, compared
    as `method`, is the same string), so a run folder of an older version still resumes."""
    if key == "method_options" and isinstance(old, dict) and isinstance(new, dict):
        return all(k in new and new[k] == v for k, v in old.items())
    return old == new


def open_run(out: Path, cfg: TrainConfig) -> str:
    """'new', 'resume' or 'finished'. Refuses a folder that holds something else. To resume, `cfg`
    takes the run's own values of SPEED_SETTINGS."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    cfg_path = out / "config.json"
    if out.exists() and any(out.iterdir()) and not cfg_path.exists():
        raise UserError(f"--out {out}: the folder is not empty and holds no reinitlab run; choose an empty "
                        "or new folder")
    _check_writable(out)
    if not cfg_path.exists():
        return "new"
    try:
        old = read_config(cfg_path)
    except OSError as e:
        raise UserError(f"{cfg_path}: unreadable ({e}); remove the folder to start over") from None
    except UserError as e:
        raise UserError(f"{e}; remove the folder to start over") from None
    new = cfg.to_dict()
    diff = [k for k in new if k not in RESUMABLE_DIFFERENCES and not same_setting(k, stored_setting(old, k), new[k])]
    if diff:
        k = diff[0]
        raise UserError(f"--out {out} holds a run with {k}={stored_setting(old, k)!r}, not {new[k]!r}; use another "
                        "folder or the same settings to resume")
    if not (out / "result.json").exists():
        for k in SPEED_SETTINGS & old.keys():
            cfg.set(k, old[k])
        return "resume"
    try:
        result = read_json(out / "result.json")
    except (OSError, ValueError) as e:
        result = e
    if not isinstance(result, dict) or result.get("status") not in ("finished", "diverged"):
        what = f"unreadable ({result})" if isinstance(result, Exception) else "not a finished run's result"
        raise UserError(f"{out / 'result.json'}: {what}; delete it to train the run again")
    return "finished"


def _check_writable(out: Path) -> None:
    """Fail before training, not after the first epoch, when results could not be saved."""
    problem = writable_problem(out)
    if problem:
        raise UserError(f"--out {out}: {problem}; choose a folder you can write to")


JSON_FILES = ("config.json", "result.json", "error.json", "analysis.json")
TORCH_FILES = ("model.pt", "ckpt.pt")


def folder_problem(d: Path, json_files: tuple[str, ...] = JSON_FILES, metrics: bool = True) -> str | None:
    """Why run folder `d` cannot be read as it stands, naming the file, or None. Files a run writes
    atomically (`json_files`) must parse whole; metrics.jsonl may end in a line a kill cut short, but
    no other line may be broken; model.pt and ckpt.pt must be complete and hold data only (a static
    look: nothing in them is unpickled, and their weights are not read)."""
    for name in json_files:
        f = d / name
        if not f.exists():
            continue
        if name == "config.json":
            try:
                read_config(f)
            except UserError as e:
                return str(e)
            except OSError as e:
                return f"{f}: unreadable ({short(e)})"
            continue
        try:
            data = read_json(f)
        except (OSError, ValueError) as e:
            return f"{f}: unreadable ({short(e)})"
        if not isinstance(data, dict):
            return f"{f}: holds a {type(data).__name__}, not what a run writes there"
        if name == "result.json" and data.get("status") not in ("finished", "diverged"):
            return f"{f}: not a finished run's result (status {data.get('status')!r})"
    try:
        if metrics:
            read_jsonl(d / "metrics.jsonl")
    except (OSError, ValueError) as e:
        return f"{d / 'metrics.jsonl'}: a broken line ({short(e)})"
    for name in TORCH_FILES:
        if (d / name).is_file():
            problem = code_problem(d / name)
            if problem:
                return f"{d / name}: {problem}"
    return None


# What every run's config.json holds, whatever version of reinitlab wrote it: which run it is. A
# JSON object without them (`{}`) would read as a run whose every setting is unknown.
IDENTITY = ("dataset", "arch", "method", "seed")


def read_config(path: Path) -> dict:
    """A run folder's config.json as a dict: the one reader of it (resume, load_run, report, plot,
    export). UserError naming the file where it is torn, not a JSON object, lacks what names the run
    (IDENTITY) or holds what TrainConfig refuses (an unknown key, a bad value: the message names it);
    OSError where it cannot be read at all."""
    path = Path(path)
    try:
        values = read_json(path)
    except ValueError as e:
        raise UserError(f"{path}: unreadable ({short(e)}); not a complete run config") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: holds a {type(values).__name__}, not a run config")
    try:
        TrainConfig.from_dict(values)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    missing = [k for k in IDENTITY if k not in values]
    if missing:
        raise UserError(f"{path}: not a run config: it lacks {', '.join(missing)}, which every run's config.json "
                        "holds")
    return values


def short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class RunState:
    """Where a run stands; with the weights, the optimizer and the reinitializer, what a checkpoint
    restores."""

    round: int = 0
    epoch: int = 0  # epochs of `round` done
    streak: int = 0  # epochs in a row at training accuracy >= fit_acc (patience)
    round_done: bool = False
    reset: dict | None = None  # what the reset that started `round` changed
    per_round: list[dict] = field(default_factory=list)  # one record per finished round
    elapsed: float = 0.0  # seconds of training, evaluation, resets and hooks
    epochs_total: int = 0
    online: list[float] = field(default_factory=list)  # the training accuracy of each epoch of `round` so far

    def to_checkpoint(self) -> dict:
        return {"pos": {"round": self.round, "epoch": self.epoch, "streak": self.streak,
                        "round_done": self.round_done, "reset": self.reset},
                "per_round": self.per_round, "elapsed": self.elapsed, "epochs_total": self.epochs_total,
                "online": self.online}

    @classmethod
    def from_checkpoint(cls, ck: dict) -> "RunState":
        pos = ck["pos"]
        return cls(pos["round"], pos["epoch"], pos["streak"], pos["round_done"], pos.get("reset"),
                   ck["per_round"], ck["elapsed"], ck["epochs_total"], list(ck.get("online", [])))

