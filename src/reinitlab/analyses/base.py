"""The one interface every analysis implements, the data it reads, and the result it returns.

    result = ANALYSES["margins"].run(model, groups, data, options)   # AnalysisResult
    ANALYSES["margins"].plot(result, "margins.png")

`numbers` is a flat dict of named scalars (what studies aggregate over seeds and methods);
`arrays` holds per-example, per-layer or per-sigma lists (what plots and distribution comparisons
need); `info` says how the numbers were obtained (examples used, seed, options, definitions).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.groups import Groups
# The analyses' shared helpers live below training and analyses both (measure/), used from here.
from ..measure.common import (accuracy, device_of, eval_mode, histogram, logits_of, one_thread,  # noqa: F401
                              quantiles, subsample)
from ..util.errors import UserError, choices
from ..util.options import parse_options
from ..util.registry import Registry
from .metrics import Metric, Topic


@dataclass
class AnalysisData:
    """Tensors an analysis may read; every tensor already normalized as the model saw it in training."""

    x_train: torch.Tensor
    y_train: torch.Tensor  # labels as trained on (noisy where the run had label noise)
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    noisy: torch.Tensor | None = None  # positions in x_train whose label was replaced by noise
    y_train_true: torch.Tensor | None = None  # the clean labels of x_train; None: y_train is clean
    # Plain cross-entropy by default, not the run's smoothed loss, so that flatness and curvature
    # compare across runs trained with different label smoothing.
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    source: str = ""  # what was analysed (a run folder), named in every plot
    eval_batch_size: int = 1000
    # The run's round-0 parameters by name, as a function: rebuilt only when an analysis asks (distance).
    initial_state: Callable[[], dict[str, torch.Tensor]] | None = None

    @property
    def true_labels(self) -> torch.Tensor:
        return self.y_train if self.y_train_true is None else self.y_train_true

    @property
    def has_noise(self) -> bool:
        return self.noisy is not None and len(self.noisy) > 0

    @classmethod
    def from_engine(cls, eng: Any, source: str = "") -> "AnalysisData":
        """From an `engine.Engine` (e.g. `load_run(run_dir)`): the run's own split and noisy labels."""
        split, bundle = eng.split, eng.bundle
        dev = eng.x_train.device
        return cls(x_train=eng.x_train, y_train=eng.y_train, x_test=eng.x_test, y_test=eng.y_test,
                   x_val=eng.x_val, y_val=eng.y_val, noisy=split.noisy.to(dev),
                   y_train_true=bundle.y_train[split.train].to(dev), source=source,
                   eval_batch_size=eng.config.eval_batch_size, initial_state=eng.initial_state)


def _json_number(v: Any) -> float | int | None:
    if v is None:
        return None
    v = float(v) if not isinstance(v, (int, bool)) else v
    return v if not isinstance(v, float) or math.isfinite(v) else None


def jsonable(obj: Any) -> Any:
    """Tensors to lists; NaN and infinities to null (analysis.json must stay strict JSON)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().tolist()
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _json_number(obj)
    return obj


@dataclass
class AnalysisResult:
    name: str
    numbers: dict[str, float | None]
    arrays: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"numbers": jsonable(self.numbers), "arrays": jsonable(self.arrays), "info": jsonable(self.info)}

    @classmethod
    def from_json(cls, name: str, d: dict) -> "AnalysisResult":
        return cls(name, dict(d["numbers"]), dict(d.get("arrays", {})), dict(d.get("info", {})))


class Analysis:
    """Subclasses set `name`, `summary`, an `Options` dataclass, and implement `run` and `plot`.

    What reaches the report is declared here too (analyses/metrics.py): `metrics`, the numbers shown
    and usable by claims; `topic`, the why-section part they appear under; `headline`, the keys
    `reinitlab analyze` prints (default: the declared metrics)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type]
    metrics: ClassVar[tuple[Metric, ...]] = ()
    topic: ClassVar[Topic | None] = None
    headline: ClassVar[tuple[str, ...]] = ()

    def run(self, model: nn.Module, groups: Groups, data: AnalysisData, options: Any = None) -> AnalysisResult:
        raise NotImplementedError

    def plot(self, result: AnalysisResult, path: str) -> None:
        raise NotImplementedError

    def options(self, **values: Any) -> Any:
        """Typed options (options.parse_options): unknown keys, wrong types and out-of-range values
        (an Options.validate()) are one-line UserErrors."""
        return parse_options(self.Options, values, owner=f"analysis {self.name!r}", prefix=f"{self.name}.")


# the report shows the topics of SPEC's six analyses in this order, then any other analysis file's
ANALYSES: Registry[Analysis] = Registry("analysis", packages=("reinitlab.analyses",),
                                        first=("margins", "norms", "bound", "flatness", "memorization", "probes"),
                                        entry_points="reinitlab.analyses")


def register(cls: type[Analysis]) -> type[Analysis]:
    ANALYSES.add(cls.name, cls())
    return cls


def select(only: str | list[str] | None) -> list[str]:
    """Registry names in registry order; `only` as 'a,b' or a list."""
    if only is None:
        return list(ANALYSES)
    names = [n.strip() for n in only.split(",")] if isinstance(only, str) else list(only)
    names = [n for n in names if n]
    bad = [n for n in names if n not in ANALYSES]
    if bad:
        raise UserError(ANALYSES.unknown(bad[0]))
    if not names:
        raise UserError(f"no analysis selected; valid: {choices(ANALYSES)}")
    return [n for n in ANALYSES if n in names]


def split_settings(names: list[str], settings: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """`{"margins.max_examples": 500, "seed": 1}` -> per-analysis option dicts.

    A dotted key targets one analysis; a bare key goes to every selected analysis that has it
    (and must fit at least one)."""
    per: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in (settings or {}).items():
        target, dot, opt = key.partition(".")
        if dot:
            if target not in ANALYSES:
                raise UserError(f"--set {key}: {ANALYSES.unknown(target)}")
            if target not in per:
                raise UserError(f"--set {key}: analysis {target!r} is not selected (--only)")
            per[target][opt] = value
            continue
        takers = [n for n in names if key in {f.name for f in dataclasses.fields(ANALYSES[n].Options)}]
        if not takers:
            valid = sorted({f"{n}.{f.name}" for n in names for f in dataclasses.fields(ANALYSES[n].Options)})
            raise UserError(f"--set {key}: no selected analysis has this option; valid: {', '.join(valid)}")
        for n in takers:
            per[n][key] = value
    return per
