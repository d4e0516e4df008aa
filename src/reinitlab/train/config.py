"""Typed run configuration.

Every field has a type and a range; `TrainConfig.from_dict` refuses unknown keys, wrong types and
out-of-range values with one line naming the key, the value and what is valid, before anything
trains (options.py does the parsing, as for method and analysis options). The resolved config
(`resolve.resolve`: defaults filled in, method options expanded) is written to each run.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ..util.errors import UserError
from ..util.options import option_value, parse_options

Augment = Literal["none", "flip", "crop", "flip+crop"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16"]
Protocol = Literal["rounds", "warm_start", "chunks", "classes", "permuted", "relabel"]  # protocols/: one file each
Optimizer = Literal["sgd", "adam"]
LrSchedule = Literal["cosine", "constant"]
Tracker = Literal["none", "tensorboard", "mlflow", "wandb"]  # trackers/: one file each, TRACKERS lists them


@dataclass
class TrainConfig:
    """One run: which data, which model, which method, how to train. Defaults follow SPEC, Training and data protocol.

    Settings (the `--set KEY=VALUE` keys; `reinitlab train --help` prints this table with each
    key's type and default, and `test_cli_help` fails when a field is missing here):

    dataset          a registered dataset (`reinitlab list datasets`), folder:PATH or npz:PATH
    arch             a registered architecture (`reinitlab list archs`)
    method           a registered method, optionally with options: lw:rescale=false,order=top_down
    method_options   every option of the method, filled in from the method spec when the run is resolved
    train_size       examples drawn (stratified, nested) from the pool left after the validation split; none = all
    val_fraction     share of the training pool held out for validation, fixed by data_seed; 0 = none
    label_noise      share of the training examples whose label is replaced by a random other class
    seed             model seed: initialization, batch order, augmentation, fresh draws, masks
    data_seed        seed of the subset, the validation split and the label noise; none = the model seed
    resolution       image side in pixels; none = the dataset's default
    data_dir         where the dataset's files are; none = the cache folder ($REINITLAB_DATA)
    init_from        a finished run folder or a state_dict file whose final weights start round 0; none = a fresh draw
    init_from_sha256  hash of the init_from weights, filled in when the run is resolved; set it to pin the weights
    protocol         what each round (stage) trains on: rounds (the same data every round), warm_start, chunks, classes, permuted or relabel
    first_fraction   warm_start: the share of the training subset stage 0 trains on (it trains epochs/first_fraction epochs)
    rounds           R, reset rounds after round 0 (stages after stage 0); none = the architecture's full LW budget (K-1); warm_start: 1
    epochs           E, epochs per round; `long` trains (R+1)*E epochs in one round
    patience         end a round once training accuracy is >= fit_acc this many epochs in a row; 0 = never
    fit_acc          the training accuracy that counts as fitted, for patience
    width            channel width multiplier of the architecture
    batch_size       training batch size
    optimizer        sgd (with momentum) or adam, created fresh every round
    lr_schedule      cosine (warm-up, then cosine decay to 0 over the round) or constant (warm-up, then lr)
    lr               peak learning rate of each round's schedule
    momentum         SGD momentum
    nesterov         Nesterov momentum
    weight_decay     weight decay (SGD's; Adam's L2 penalty)
    warmup           share of each round's steps with a linear warm-up
    label_smoothing  label smoothing of the training loss
    augment          batched augmentation of the training images
    device           where to train; auto = CUDA if available, else the CPU
    precision        auto = bf16 autocast if the device has native bf16 and it measures >= 1.2x fp32 on the run's shape, else fp32 (TF32 on CUDA)
    threads          torch intra-op threads; none = all cores
    channels_last    NHWC memory format for the convolutions
    compile          torch.compile the model
    eval_batch_size  evaluation batch size; none = 256 on a CPU, 1024 on a GPU
    norm_log         per-group weight norms in metrics.jsonl after every epoch
    round_log        cheap diagnostics (norms, spectral complexity, margins) after every round
    tracker          mirror the run into an experiment tracker's local store: none, tensorboard, mlflow or wandb
    tracker_dir      the tracker's store; none = tensorboard/, mlflow/ or wandb/ in the study folder, else beside the run folder
    """

    dataset: str = "fashion-mnist-small"
    arch: str = "cnn"
    method: str = "lw"  # a registry name, optionally with options: "lw:rescale=false,order=top_down"
    method_options: dict = field(default_factory=dict)  # filled in by resolve.resolve(): every option's value
    train_size: int | None = None  # examples drawn (stratified) from the pool left after the val split
    val_fraction: float = 0.1  # of the training pool, stratified, fixed by data_seed; 0 = no val split
    label_noise: float = 0.0
    seed: int = 0  # model seed: init, batch order, augmentation, fresh draws, masks
    data_seed: int | None = None  # subset, val split, label noise; None = same as seed
    resolution: int | None = None  # None = the dataset's default
    data_dir: str | None = None
    init_from: str | None = None  # a run folder or state_dict file (train/init_from.py); None = the seed's own draw
    init_from_sha256: str | None = None  # resolved: the hash of the weights init_from holds (provenance)
    protocol: Protocol = "rounds"  # what each round (stage) trains on; protocols/ says what each value does
    first_fraction: float = 0.1  # warm_start: stage 0's share of the subset (the FIRE harness's 10%; Ash & Adams: 0.5)
    rounds: int | None = None  # R after round 0; None = the architecture's full LW budget (K-1); warm_start: 1
    epochs: int = 15  # per round (E); `long` trains (R+1)*E epochs in one round
    patience: int = 0  # >0: end a round once train acc is >= fit_acc for this many epochs in a row
    fit_acc: float = 1.0  # the training accuracy that counts as fitted (Ash & Adams: 0.99; the DASH code: 0.999)
    width: float = 1.0
    batch_size: int = 128
    optimizer: Optimizer = "sgd"
    lr_schedule: LrSchedule = "cosine"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup: float = 0.05  # fraction of a round's steps with linear warm-up
    label_smoothing: float = 0.0
    augment: Augment = "none"
    device: Device = "auto"
    precision: Precision = "auto"  # auto: chosen by measurement (precision.py); the resolved config holds fp32 or bf16
    threads: int | None = None  # torch intra-op threads; None = all cores
    channels_last: bool = True
    compile: bool = False
    eval_batch_size: int | None = None  # None: 256 on CPU (measured 1.3-1.5x faster than 1024), 1024 on GPUs
    norm_log: bool = True  # per-group weight norms in metrics.jsonl every epoch
    round_log: bool = True  # cheap diagnostics (norms, spectral complexity, margins) after every round
    tracker: Tracker = "none"  # mirror the run into an experiment tracker (local store); the run folder stays the record
    tracker_dir: str | None = None  # the tracker's store; None = tensorboard/, mlflow/ or wandb/ in the study folder, else beside the run folder

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        return parse_options(cls, values, noun="run setting")

    def set(self, key: str, value: Any) -> None:
        hints = typing.get_type_hints(type(self))
        setattr(self, key, option_value(hints, self.field_names(), key, value, noun="run setting"))

    def replace(self, **changes) -> "TrainConfig":
        new = dataclasses.replace(self)
        for k, v in changes.items():
            new.set(k, v)
        new.validate()
        return new

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("rounds", self.rounds is None or self.rounds >= 0, "an integer >= 0"),
            ("train_size", self.train_size is None or self.train_size >= 1, "an integer >= 1"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "a number in [0, 1)"),
            ("label_noise", 0.0 <= self.label_noise < 1.0, "a number in [0, 1)"),
            ("resolution", self.resolution is None or 4 <= self.resolution <= 512, "an integer in [4, 512]"),
            ("patience", self.patience >= 0, "an integer >= 0"),
            ("fit_acc", 0.0 < self.fit_acc <= 1.0, "a number in (0, 1]"),
            ("first_fraction", 0.0 < self.first_fraction < 1.0, "a number in (0, 1)"),
            ("width", 0.0 < self.width <= 16.0, "a number in (0, 16]"),
            ("batch_size", self.batch_size >= 2, "an integer >= 2"),
            ("eval_batch_size", self.eval_batch_size is None or self.eval_batch_size >= 1, "an integer >= 1"),
            ("lr", self.lr > 0.0, "a number > 0"),
            ("momentum", 0.0 <= self.momentum < 1.0, "a number in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0.0, "a number >= 0"),
            ("warmup", 0.0 <= self.warmup < 1.0, "a number in [0, 1)"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "a number in [0, 1)"),
            ("threads", self.threads is None or self.threads >= 1, "an integer >= 1"),
            ("seed", self.seed >= 0, "an integer >= 0"),
            ("data_seed", self.data_seed is None or self.data_seed >= 0, "an integer >= 0"),
        ]
        for key, ok, valid in checks:
            if not ok:
                raise UserError(f"{key}={getattr(self, key)!r} is out of range: expected {valid}")
        if self.nesterov and self.momentum == 0.0 and self.optimizer == "sgd":
            raise UserError("nesterov=true needs momentum > 0 (set nesterov=false or a momentum in (0, 1))")


@functools.lru_cache(maxsize=1)
def setting_help() -> dict[str, str]:
    """field -> its one-line description, read from the table in TrainConfig's docstring."""
    lines = inspect.cleandoc(TrainConfig.__doc__ or "").splitlines()
    rows = (re.match(r"(\w+) {2,}(\S.*)$", line) for line in lines)
    return {m.group(1): m.group(2) for m in rows if m and m.group(1) in _hints(TrainConfig)}


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)
