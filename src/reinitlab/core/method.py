"""The one interface every reinitialization method implements, and the method registry.

A method spec is a name with optional options: "lw", "lw:rescale=false,order=top_down",
"ke:mode=kels,split_rate=0.5"; the registry names are the CLI strings and the values stored in
results. Methods live one per file in reinitlab/methods/ (and in plugins): the registry imports them
when it is first asked for a name, so adding a method is adding its file.
"""
from __future__ import annotations

import dataclasses
import typing
import warnings
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Optional, Sequence

import torch
import torch.nn as nn

from ..util.errors import ReinitlabWarning, UserError
from ..util.options import parse_options, parse_value, unknown_key_message
from ..util.registry import Registry
from .groups import Groups
from .reset import ResetEvent


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


@dataclass(frozen=True)
class Fidelity:
    """One point where a method's default differs from the code of the peer it reproduces (the docs'
    fidelity table is made from these)."""

    ours: str  # what reinitlab does by default
    peer: str  # what the peer's code does
    how: str  # how to get the peer's behaviour: an option, "not offered", "same on the registry models", ...


@dataclass(frozen=True)
class InRoundReach:
    """What a method's in-round events can do in one run's schedule, known before training."""

    events: int  # in-round events the schedule lets fire, at most; 0: the method never acts in the run
    first: tuple[int, int] | None  # (round, step or epoch within it) of the first; None without any
    why: str = ""  # without any: why not, naming the setting that would make it act


@dataclass(frozen=True)
class Cadence:
    """When a method's in-round events may fire, as its options set them: after every `every`-th
    optimizer step (unit "step") or epoch (unit "epoch") of a round, counted from the round's start;
    an epoch event never follows a round's last epoch (the next round's start comes then). With
    `mature_after`, an event can replace only what has aged more than that many optimizer steps,
    counted over the whole run from its first step (SWR's maturity), so none fires before."""

    unit: Literal["step", "epoch"]
    every: int
    setting: str  # the option that sets `every`, as a method spec writes it ("every", "every_epochs")
    mature_after: int = 0
    maturity_setting: str = ""  # the option that sets `mature_after`

    def __post_init__(self):
        # a method's own declaration, checked once: a wrong unit would otherwise count as steps
        if self.unit not in ("step", "epoch") or not isinstance(self.every, int) or self.every < 1 \
                or not self.setting:
            raise ValueError(f"Cadence({self.unit!r}, {self.every!r}, {self.setting!r}): expected unit 'step' or "
                             "'epoch', every >= 1 and the option's name")

    def reach(self, steps: int, epochs: Sequence[int]) -> InRoundReach:
        """Events possible in a run of `epochs[r]` epochs of `steps` optimizer steps in round r."""
        events, first, start, last = 0, None, 0, None  # start: the run's steps before round r
        for r, e in enumerate(epochs):
            per = self.every * (steps if self.unit == "epoch" else 1)  # optimizer steps between slots
            slots = (e - 1) // self.every if self.unit == "epoch" else e * steps // self.every
            lo = self.mature_after - start  # a slot k acts when k * per > lo
            k0 = 1 if lo < 0 else lo // per + 1
            if slots:
                last = start + slots * per
            if slots >= k0:
                events += slots - k0 + 1
                first = first or (r, k0 * self.every)
            start += e * steps
        return InRoundReach(events, first, "" if events else self._why(steps, epochs, last, start))

    def _why(self, steps: int, epochs: Sequence[int], last: int | None, total: int) -> str:
        longest = max(epochs, default=0)
        round_text = f"{longest} epoch{'s' if longest != 1 else ''}"
        step_text = f"{steps} step{'s' if steps != 1 else ''}"
        if self.unit == "epoch" and last is None:
            return (f"{self.setting}={self.every} acts after every {self.every} epochs of a round but never after "
                    f"its last, and a round of this run trains at most {round_text}; "
                    + (f"set {self.setting} < {longest}, or epochs > {self.every}" if longest > 1 else
                       f"train epochs > {self.every}"))  # no every_epochs acts within a one-epoch round
        if last is None:
            also = (f", and {self.maturity_setting} < {total} (the run's steps)"
                    if self.maturity_setting and self.mature_after >= total else "")
            return (f"{self.setting}={self.every} acts every {self.every} optimizer steps, and a round of this run "
                    f"has at most {longest * steps} ({round_text} of {step_text}); set {self.setting} <= "
                    f"{longest * steps}{also}, or train more steps per round (epochs, a smaller batch_size)")
        return (f"it replaces only what is older than {self.maturity_setting}={self.mature_after} steps, and "
                f"its last chance comes at step {last} of the run's {total}; set {self.maturity_setting} < {last}, "
                "or train longer (epochs, rounds)")


class Method:
    """A method is a schedule: how many epochs each round trains, and the reset event that starts
    each round r >= 1. It may also act during a round's training: `step_event` after an optimizer
    step, `epoch_event` after an epoch (both return a ResetEvent or None), and `loss_term`, a
    penalty added to the training loss. It never touches weights; `apply_event` does."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    fidelity: ClassVar[tuple[Fidelity, ...]] = ()  # where the default differs from the peer's code
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
    def attach(self, model: nn.Module, groups: Groups) -> None:
        """Called once by the Reinitializer that applies this method to `model`, before any training:
        a method that watches training installs its forward hooks here (cbp, snr: per-unit
        activations) or copies what it needs (hare: the tortoise starts as the initial weights). It
        refuses, with a UserError, a model it cannot handle."""

    @property
    def in_round(self) -> bool:
        """True when step_event or epoch_event may return an event (the loop then asks every step)."""
        return False

    @property
    def has_loss_term(self) -> bool:
        return False

    def cadence(self) -> Cadence | None:
        """When the in-round events may fire (see Cadence); None without any. A method whose
        `in_round` is true implements this, or `in_round_reach` where a Cadence cannot say it, so a
        run in which it could never act is refused before training (`check_acts`)."""
        return None

    def in_round_reach(self, steps: int, epochs: Sequence[int]) -> InRoundReach | None:
        """How many in-round events can fire in a run of `epochs[r]` epochs of `steps` optimizer
        steps in round r (the engine's Schedule), and when the first; None where it cannot be told."""
        c = self.cadence() if self.in_round else None
        return None if c is None else c.reach(steps, epochs)

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


def check_acts(method: Method, steps: int, epochs: Sequence[int], where: str = "") -> None:
    """Refuse a run in which the method's in-round events can never fire: trained, it would be
    reported as the method although it never acted. `where` says which runs ("runs on mnist n=500")."""
    reach = method.in_round_reach(steps, epochs)
    if reach is not None and reach.events == 0:
        raise UserError(f"{where + ': ' if where else ''}method {method.name!r} never acts in this run: {reach.why}")


_REDRAW_KEYS = tuple(f.name for f in dataclasses.fields(RedrawOptions))


# the paper's methods in SPEC's order, then its peers' and the later ones; any other file after them
METHODS: Registry[type[Method]] = Registry("method", packages=("reinitlab.methods",), first=(
    "baseline", "fc", "llf", "ke", "dsd", "sp", "lw", "dnr", "fire", "redo", "dash", "rewind", "l2init", "swr"),
    entry_points="reinitlab.methods")


def register(cls: type[Method]) -> type[Method]:
    return METHODS.add(cls.name, cls)


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in METHODS:
        raise UserError(METHODS.unknown(name))
    options = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise UserError(f"method option {part!r} in {spec!r}: expected key=value")
        options[key.strip()] = parse_value(value)
    return name, options


def make_method(spec: str, **options) -> Method:
    """`make_method("lw:rescale=false")` or `make_method("lw", rescale=False)`."""
    name, parsed = parse_spec(spec)
    parsed.update(options)
    return METHODS[name](**parsed)
