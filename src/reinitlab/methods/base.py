"""The one interface every reinitialization method implements."""
from __future__ import annotations

import dataclasses
import math
import typing
import warnings
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Optional

import torch
import torch.nn as nn

from ..errors import ReinitlabWarning, UserError
from ..groups import Groups
from ..options import parse_options, unknown_key_message
from ..reset import Action, ResetEvent, preserve_buffers


@dataclass
class NoOptions:
    pass


Redraw = Literal["fresh", "init", "rewind", "peer"]


@dataclass
class RedrawOptions:
    """Where a resetting method's re-drawn values come from (see reset.py). Every method that
    re-draws takes these two options besides its own."""

    redraw: Optional[Redraw] = None  # None: the method's default (fresh; peer for the peer=true variants)
    rewind_epoch: Optional[int] = None  # redraw=rewind only: round 0's epoch whose weights are the source (1)

    def resolve(self, default: str) -> None:
        self.redraw = self.redraw or default
        if self.redraw == "rewind":
            self.rewind_epoch = 1 if self.rewind_epoch is None else self.rewind_epoch
            if self.rewind_epoch < 1:
                raise UserError(f"rewind_epoch={self.rewind_epoch!r} is out of range: expected an integer >= 1")
        elif self.rewind_epoch is not None:
            raise UserError(f"rewind_epoch={self.rewind_epoch!r} applies only with redraw=rewind "
                            f"(this method re-draws with redraw={self.redraw})")


@dataclass
class ResetContext:
    """What a method may look at when it decides a reset event: at the start of round r, or during
    round r's training (`step` or `epoch` set)."""

    model: nn.Module
    groups: Groups
    round: int  # r = 1..R at a round start; 0..R during training
    rounds: int  # R
    init_norms: dict[str, float]  # ||w0_t|| of every parameter, recorded before round 0
    seed: int  # the run's model seed; methods derive their own streams from it
    batches: Callable[[], list[tuple[torch.Tensor, torch.Tensor]]]  # a few training batches, no augmentation
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    step: int | None = None  # in-round: optimizer steps completed in this round (1-based)
    epoch: int | None = None  # in-round: epochs completed in this round (1-based)
    initial: dict[str, torch.Tensor] | None = None  # w0 (parameters and buffers), for methods that keep it

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.model.named_parameters())


class Method:
    """A method is a schedule: how many epochs each round trains, and the reset event that starts
    each round r >= 1. It may also act during a round's training: `step_event` after an optimizer
    step, `epoch_event` after an epoch (both return a ResetEvent or None), and `loss_term`, a
    penalty added to the training loss. It never touches weights; `apply_event` does."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    resets: ClassVar[bool] = True  # False for baseline and long: a single round, no events
    redraws: ClassVar[bool] = True  # takes the redraw / rewind_epoch options (see RedrawOptions)

    def __init__(self, **options):
        common = {k: options.pop(k) for k in list(options) if self.redraws and k in _REDRAW_KEYS}
        self.options = self.parse_options(options)
        self.redraw_options = None
        if self.redraws:
            self.redraw_options = parse_options(RedrawOptions, common, owner=f"method {self.name!r}",
                                                prefix=f"{self.name}.")
            self.redraw_options.resolve(self.default_redraw())

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Options)] + (list(_REDRAW_KEYS) if cls.redraws else [])

    @classmethod
    def parse_options(cls, options: dict) -> typing.Any:
        own, names, owner = [f.name for f in dataclasses.fields(cls.Options)], cls.option_names(), f"method {cls.name!r}"
        for key in options:  # the shared redraw options are named too, so a typo of one finds them
            if key not in own:
                if not names:
                    raise UserError(f"{owner} takes no options; got {key!r}")
                raise UserError(unknown_key_message(key, names, f"option of {owner}"))
        return parse_options(cls.Options, options, owner=owner, prefix=f"{cls.name}.")

    def options_dict(self) -> dict:
        out = dataclasses.asdict(self.options)
        if self.redraw_options is not None:
            out.update(dataclasses.asdict(self.redraw_options))
        return out

    @classmethod
    def options_text(cls, values: dict | None = None) -> str:
        """The options as a method spec writes them ("rescale=true, order=bottom_up (or top_down)");
        an option left to decide at run time reads <what decides it>, e.g. "start=<top block>"."""
        defaults = values is None  # the registry's view: also name the alternatives of a choice
        values = dataclasses.asdict(cls.Options()) if defaults else values
        hints = typing.get_type_hints(cls.Options)
        parts = []
        for f in dataclasses.fields(cls.Options):
            v = values.get(f.name, f.default)
            if v in ("", None):
                text = f"<{f.metadata.get('unset', 'auto')}>"
            else:
                text = ("true" if v else "false") if isinstance(v, bool) else str(v)
                others = [str(a) for a in typing.get_args(hints[f.name]) if a != v] \
                    if typing.get_origin(hints[f.name]) is typing.Literal else []
                text += f" (or {', '.join(others)})" if others and defaults else ""
            parts.append(f"{f.name}={text}")
        return ", ".join(parts)

    # ---- the re-draw source -------------------------------------------------------------------
    def default_redraw(self) -> str:
        return "peer" if getattr(self.options, "peer", False) else "fresh"

    @property
    def redraw(self) -> str:
        return self.redraw_options.redraw if self.redraw_options else "fresh"

    @property
    def rewind_epoch(self) -> int | None:
        """The epoch of round 0 whose weights this method needs (None: none)."""
        return self.redraw_options.rewind_epoch if self.redraw_options else None

    @property
    def needs_initial(self) -> bool:
        """Whether the Reinitializer keeps a copy of the initial values w0 (one model's worth)."""
        return self.redraw == "init"

    # ---- the schedule ---------------------------------------------------------------------------
    def epochs(self, rounds: int, epochs: int) -> list[int]:
        """Epochs of each round, round 0 first."""
        if self.rewind_epoch is not None and self.rewind_epoch > epochs:
            raise UserError(f"rewind_epoch={self.rewind_epoch} is out of range: round 0 trains {epochs} "
                            f"epochs; expected an integer in [1, {epochs}]")
        return [epochs] * (rounds + 1)

    def event(self, ctx: ResetContext) -> ResetEvent:
        raise NotImplementedError

    def budget_warning(self, rounds: int, groups: Groups) -> str | None:
        """A line when `rounds` rounds on these groups probably do not do what was meant, else None."""
        return None

    # ---- interventions within a round ------------------------------------------------------------
    @property
    def in_round(self) -> bool:
        """True when step_event or epoch_event may return an event (the loop then asks every step)."""
        return False

    @property
    def has_loss_term(self) -> bool:
        return False

    def step_event(self, ctx: ResetContext) -> ResetEvent | None:
        return None

    def epoch_event(self, ctx: ResetContext) -> ResetEvent | None:
        return None

    def loss_term(self, ctx: ResetContext) -> torch.Tensor | None:
        return None

    # ---- state that must survive a resume (e.g. SWR's weight ages) -------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def warn_budget(method: Method, rounds: int, groups: Groups) -> None:
    """Warn (once per distinct message, Python's default) where a method's budget misfits the model:
    at resolve time, before anything trains."""
    message = method.budget_warning(rounds, groups)
    if message:
        # stacklevel 1: one location for every caller, so the same text shows once per process
        warnings.warn(message, ReinitlabWarning, stacklevel=1)


_REDRAW_KEYS = tuple(f.name for f in dataclasses.fields(RedrawOptions))



def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every conv and linear layer, in model order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


def training_gradients(ctx: ResetContext) -> dict[str, torch.Tensor]:
    """The summed gradient of the loss over ctx.batches(), per parameter; BatchNorm in train mode with
    its running statistics untouched, the model's own .grad left empty."""
    params = ctx.params()
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    with preserve_buffers(ctx.model), torch.enable_grad():
        saved = {n: p.grad for n, p in params.items()}
        for x, y in ctx.batches():
            ctx.model.zero_grad(set_to_none=True)
            ctx.loss_fn(ctx.model(x), y).backward()
            for n, p in params.items():
                if p.grad is not None:
                    grads[n] += p.grad
        for n, p in params.items():
            p.grad = saved[n]
    return grads


@dataclass
class KeepOptions:
    """The kept fraction of each tensor for score-masked methods (dsd, dnr). 0.8 matches ke's default
    split_rate, so the masked methods compare at the same kept fraction."""

    keep: float = 0.8

    def validate(self):
        in_range("keep", self.keep, 0.0, 1.0, lo_open=True, hi_open=True)


def in_range(name: str, value: float, lo: float, hi: float, lo_open=False, hi_open=False) -> None:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise UserError(f"{name}={value!r} is out of range: expected a number in {lb}{lo}, {hi}{rb}")


def reset_groups_from(groups: Groups, k: int) -> dict[str, Action]:
    """Re-draw every parameter of groups k..K whole."""
    return {p: Action(keep=False) for p in groups.params_from(k)}


def top_fraction_mask(score: torch.Tensor, keep: float) -> torch.Tensor:
    """Bool mask of exactly round(keep * n) largest scores; among equal scores the earlier position
    is kept. A stable sort, not topk: topk's order among ties is unspecified (it differs between
    devices and versions), and ties are common (fresh BatchNorm weights are all 1, DNR scores 0)."""
    n = score.numel()
    k = int(round(keep * n))
    mask = torch.zeros(n, dtype=torch.bool, device=score.device)
    if k > 0:
        order = torch.sort(score.detach().flatten().float(), descending=True, stable=True).indices
        mask[order[:k]] = True
    return mask.view_as(score)


def random_mask(shape, keep: float, generator: torch.Generator) -> torch.Tensor:
    """Bool mask with exactly round(keep * n) True entries at uniformly random positions."""
    n = math.prod(shape)
    k = int(round(keep * n))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[:k]] = True
    return mask.view(shape)
