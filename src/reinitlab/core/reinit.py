"""`Reinitializer`: one method applied to one model, usable from any training loop.

The complete pattern (the README's own-loop example runs it): the loop calls the reinitializer at
four points, and each call is a no-op for the methods that do not need it, so one loop serves every
method.

    reinit = Reinitializer(model, "lw", rounds=3)        # records the initial norms now
    for r in range(reinit.rounds + 1):
        if r:
            reinit.reset(r, data=batches)                 # the method's reset event starts round r
        opt = make_optimizer(model)                       # a fresh optimizer every round
        step = 0
        for epoch in range(1, epochs + 1):
            for x, y in batches():
                loss = loss_fn(model(x), y)
                extra = reinit.loss_term(r)               # l2init's penalty, else None
                opt.zero_grad()
                (loss if extra is None else loss + extra).backward()
                opt.step()
                step += 1
                reinit.after_step(r, step, opt, data=batches)  # in-round events (swr, redo:every)
            reinit.end_epoch(r, epoch, last=epoch == epochs, optimizer=opt, data=batches)  # rewind, sp:every_epochs

`data` is training batches without augmentation: an iterable of (x, y) (a DataLoader), a tuple of
tensors, or a callable returning either; the methods that score or standardize read a few of them.

What it is given is checked before anything in the model changes: the model, the method, `rounds`
and the round and step numbers of every call (TypeError for a wrong type, ValueError for a value out
of range), and the training data a reset reads (no NaN or inf: LW would freeze non-finite
statistics into the model for good).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import torch
import torch.nn as nn

from ..util.seeding import derive
from .groups import Groups, groups_of
from .method import Method, ResetContext, make_method
from .reset import (
    ResetEvent,
    apply_event,
    fresh_modules,
    fresh_state,
    init_fn_of,
    insert_standardize,
    peer_init,
    preserve_buffers,
    standardization_of,
    state_copy,
)

STD_EPS = 1e-5


class _Captured(Exception):
    pass


class Reinitializer:
    def __init__(self, model: nn.Module, method: str | Method, rounds: int, groups: Groups | dict | None = None,
                 seed: int = 0, init_fn: Callable[[nn.Module], None] | None = None,
                 loss_fn: Callable | None = None, stat_batches: int = 4, staged: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(method, (str, Method)):
            raise TypeError(f"method: expected a method spec such as 'lw' or a Method, got {type(method).__name__}")
        _check_int("rounds", rounds, 0)
        _check_int("seed", seed, 0)
        _check_int("stat_batches", stat_batches, 1)
        self.model = model
        self.method = make_method(method) if isinstance(method, str) else method
        # baseline and long train one round, except under a staged protocol (`staged`), whose loop trains
        # every stage and a method without resets trains on across them (the warm start)
        self.rounds = rounds if self.method.resets or staged else 0
        self.groups = groups if isinstance(groups, Groups) else groups_of(model, groups)
        self.seed = seed
        self.init_fn = init_fn or init_fn_of(model)
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.stat_batches = stat_batches
        self.init_norms = {n: float(p.detach().norm()) for n, p in model.named_parameters()}
        # w0, kept only for the methods that return to it (redraw=init, l2init): one model's worth
        self.initial = state_copy(model) if self.method.needs_initial else None
        self.rewound: dict[str, torch.Tensor] | None = None  # weights after epoch rewind_epoch of round 0
        self.rewound_at: dict | None = None
        self.epochs_seen: dict[int, int] = {}  # round -> epochs ended (end_epoch calls)
        # group -> channels of its frozen standardization; a model that arrives with some (the weights of
        # an LW run loaded as the start, init_from) keeps them frozen, and LW never estimates them again
        self.standardized: dict[str, int] = {
            g: len(found[0]) for g in self.groups.names
            if (found := standardization_of(model.get_submodule(self.groups.output[g]))) is not None}
        self.history: list[dict] = []
        self.in_round_log: list[dict] = []  # per round with in-round events: count and elements replaced
        self.method.attach(model, self.groups)  # hooks of the methods that watch training (cbp, snr)

    # ---- the event at a round start ----------------------------------------------------------
    def reset(self, round_: int, data: Any = None) -> dict:
        """Start round `round_` (1..R): the method's event against its re-draw source, optional
        standardization.

        `data`: training batches without augmentation, needed by `dnr`, `dash`, `redo` and by `lw`
        with normalize: an iterable of (x, y) (a DataLoader), a tuple (x, y) of tensors, or a
        callable returning either. Returns a record of what changed (also kept in `history`)."""
        if not self.method.resets:
            raise ValueError(f"method {self.method.name!r} has no reset rounds")
        self._check_round("reset", round_, 1)
        batches = _Once(lambda: self._batches(data))
        event = self.method.event(self._context(round_, batches))
        record = {"round": round_, "event": event.description}
        stats_from = batches() if event.normalize_after else None  # read and checked before any change
        source = self.source(event, round_, record=record)
        before = state_copy(self.model) if event.normalize_after else None
        redrawn = apply_event(self.model, self.groups, event, source)
        if event.normalize_after:
            try:
                self._standardize_after(event.normalize_after, stats_from)
            except ValueError:
                self.model.load_state_dict(before)  # non-finite statistics: the reset is undone
                raise
        record.update(redrawn_fraction=redrawn,
                      standardized=sorted(self.standardized, key=self.groups.names.index))
        self.history.append(record)
        return record

    def _context(self, round_: int, batches, step: int | None = None, epoch: int | None = None) -> ResetContext:
        return ResetContext(model=self.model, groups=self.groups, round=round_, rounds=self.rounds,
                            init_norms=self.init_norms, seed=self.seed, batches=batches, loss_fn=self.loss_fn,
                            step=step, epoch=epoch, initial=self.initial)

    # ---- where re-drawn values come from -------------------------------------------------------
    def source(self, event: ResetEvent, round_: int, step: Any = None, record: dict | None = None
               ) -> dict[str, torch.Tensor]:
        """The values `event` re-draws from, per the method's `redraw` option. Round starts draw the
        whole model from the stream (seed, "fresh", round); in-round events (`step` given: a step
        number or ("epoch", e)) draw only the modules they touch, from (seed, "fresh", round, step)."""
        how = self.method.redraw
        if how == "init":
            return self.initial
        if how == "rewind":
            if self.rewound is None:
                self._rewind_fallback(record)
            return self.rewound
        init_fn = peer_init if how == "peer" else self.init_fn
        if step is None:
            return fresh_state(self.model, derive(self.seed, "fresh", round_), init_fn)
        names = [n for n, a in event.actions.items() if a.needs_source()] + list(event.fresh_buffers) \
            + [n for n, a in event.buffer_actions.items() if a.needs_source()]
        return fresh_modules(self.model, names, derive(self.seed, "fresh", round_, step), init_fn)

    def _rewind_fallback(self, record: dict | None) -> None:
        """Round 0 ended (patience) before epoch rewind_epoch: its final weights are the source."""
        seen = self.epochs_seen.get(0, 0)
        if not seen:
            raise ValueError(f"method {self.method.name!r} rewinds to the weights after epoch "
                             f"{self.method.rewind_epoch} of round 0: call reinit.end_epoch(round, epoch) "
                             "after every epoch")
        self.rewound, self.rewound_at = state_copy(self.model), {"round": 0, "epoch": seen}
        if record is not None:
            record["rewind"] = f"round 0 ended after {seen} epochs, before rewind_epoch {self.method.rewind_epoch}: its final weights"

    # ---- interventions within a round ------------------------------------------------------------
    def loss_term(self, round_: int = 0) -> torch.Tensor | None:
        """A penalty the loop adds to the training loss (l2init), or None."""
        if not self.method.has_loss_term:
            return None
        return self.method.loss_term(self._context(round_, None))

    def after_step(self, round_: int, step: int, optimizer: torch.optim.Optimizer | None = None,
                   data: Any = None) -> dict | None:
        """Call after every optimizer step; `step` counts the round's completed steps from 1."""
        self._check_round("after_step", round_, 0)
        _check_int("step", step, 1)
        if not self.method.in_round:
            return None
        batches = lambda: self._batches(data)  # noqa: E731
        event = self.method.step_event(self._context(round_, batches, step=step))
        return self._apply_in_round(event, round_, step, optimizer, batches)

    def end_epoch(self, round_: int, epoch: int, last: bool = False,
                  optimizer: torch.optim.Optimizer | None = None, data: Any = None) -> dict | None:
        """Call after every epoch (`epoch` counts the round's completed epochs from 1; `last`: the
        round ends here, so no in-round event follows). Takes the rewind snapshot when it is due."""
        self._check_round("end_epoch", round_, 0)
        _check_int("epoch", epoch, 1)
        self.epochs_seen[round_] = epoch
        if round_ == 0 and epoch == self.method.rewind_epoch:
            self.rewound, self.rewound_at = state_copy(self.model), {"round": 0, "epoch": epoch}
        if last or not self.method.in_round:
            return None
        batches = lambda: self._batches(data)  # noqa: E731
        event = self.method.epoch_event(self._context(round_, batches, epoch=epoch))
        return self._apply_in_round(event, round_, ("epoch", epoch), optimizer, batches)

    def _apply_in_round(self, event: ResetEvent | None, round_: int, step, optimizer, batches) -> dict | None:
        if event is None or not (event.actions or event.fresh_buffers or event.buffer_actions):
            return None
        params = dict(self.model.named_parameters())
        source = self.source(event, round_, step=step)
        redrawn = apply_event(self.model, self.groups, event, source)
        replaced = changed = 0
        for name, act in event.actions.items():
            changed += act.changed(tuple(params[name].shape))
            mask = act.replaced(tuple(params[name].shape))
            if mask is None:
                continue
            replaced += int(mask.sum())
            if optimizer is not None:
                _clear_optimizer_state(optimizer, params[name], mask)
        if event.normalize_after:
            self._standardize_after(event.normalize_after, batches())
        log = self.in_round_log[-1] if self.in_round_log and self.in_round_log[-1]["round"] == round_ else None
        if log is None:
            log = {"round": round_, "events": 0, "replaced_elements": 0, "changed_elements": 0}
            self.in_round_log.append(log)
        log["events"] += 1
        log["replaced_elements"] += replaced
        log["changed_elements"] = log.get("changed_elements", 0) + changed
        return {"round": round_, "step": step, "event": event.description, "redrawn_fraction": redrawn}

    def in_round_count(self, round_: int) -> tuple[int, int, int]:
        """(in-round events, elements they replaced, elements they changed) in round `round_` so far:
        replaced = re-drawn or zeroed (SWR, ReDo), changed also counts shrunk or perturbed (sp)."""
        log = next((r for r in self.in_round_log if r["round"] == round_), None)
        return (log["events"], log["replaced_elements"], log.get("changed_elements", 0)) if log else (0, 0, 0)

    # ---- what it is given --------------------------------------------------------------------
    def _check_round(self, call: str, round_: Any, lo: int) -> None:
        _check_int("round", round_, None, call)
        if not lo <= round_ <= self.rounds:
            if lo > self.rounds:
                raise ValueError(f"{call}({round_}): this Reinitializer has rounds={self.rounds}, so no round "
                                 "starts with a reset")
            what = " (round 0 trains from the initial weights)" if lo == 1 else ""
            raise ValueError(f"{call}({round_}): round out of range: expected an integer in {lo}..{self.rounds}{what}")

    # ---- data and standardization ----------------------------------------------------------------
    def _batches(self, data) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if data is None:
            raise ValueError(f"method {self.method.name!r} needs training data at reset: pass data=...")
        if callable(data):
            data = data()
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
            out = [data]
        else:
            out = []
            for batch in data:
                out.append((batch[0], batch[1]))
                if len(out) >= self.stat_batches:
                    break
        for i, (x, y) in enumerate(out):
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise TypeError(f"data: batch {i} is ({type(x).__name__}, {type(y).__name__}); expected (x, y) tensors")
            if x.is_floating_point() or x.is_complex():
                bad = int((~torch.isfinite(x)).sum())
                if bad:
                    raise ValueError(f"data: batch {i} holds {bad} non-finite input values (NaN or inf); "
                                     "statistics or scores from it would poison the model, which is left unchanged")
            if y.is_floating_point() or y.dtype == torch.bool:
                raise TypeError(f"data: batch {i}'s labels are {y.dtype}; expected integer class indices")
        if not out:
            raise ValueError("data: no batch in it")
        return out

    @torch.no_grad()
    def _standardize_after(self, group: str, batches) -> None:
        module_name = self.groups.output[group]
        if group in self.standardized:
            return  # estimated once, then frozen for good
        target = self.model.get_submodule(module_name)
        total = sq = count = None

        def capture(_m, _inp, out):
            nonlocal total, sq, count
            o = out.detach().double().transpose(0, 1).reshape(out.shape[1], -1)
            total = o.sum(1) if total is None else total + o.sum(1)
            sq = (o * o).sum(1) if sq is None else sq + (o * o).sum(1)
            count = o.shape[1] if count is None else count + o.shape[1]
            raise _Captured  # nothing above the group is needed

        handle = target.register_forward_hook(capture)
        try:
            with preserve_buffers(self.model):
                for x, _ in batches:
                    try:
                        self.model(x)
                    except _Captured:
                        pass
        finally:
            handle.remove()
        mean = total / count
        std = (sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(STD_EPS)  # dead channels stay finite
        if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(std).all())):
            raise ValueError(f"the output of group {group!r} has non-finite statistics on the data given "
                             "(overflowing weights?); a frozen standardization from them would poison the model")
        insert_standardize(self.model, module_name, mean, std)
        self.standardized[group] = len(mean)

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs to replay the same events: with redraw=init / l2init the
        initial values, with redraw=rewind the snapshot once taken, and the method's own state."""
        state = {"init_norms": self.init_norms, "standardized": dict(self.standardized),
                 "history": list(self.history), "epochs_seen": dict(self.epochs_seen),
                 "in_round_log": [dict(r) for r in self.in_round_log], "method": self.method.state_dict()}
        if self.initial is not None:
            state["initial"] = self.initial
        if self.rewound is not None:
            state["rewound"], state["rewound_at"] = self.rewound, self.rewound_at
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore before `model.load_state_dict`: re-creates the standardization modules whose
        statistics the model's state dict then fills in."""
        self.init_norms = dict(state["init_norms"])
        self.history = list(state["history"])
        self.epochs_seen = {int(k): v for k, v in state.get("epochs_seen", {}).items()}
        self.in_round_log = [dict(r) for r in state.get("in_round_log", [])]
        if "initial" in state:
            self.initial = state["initial"]
        self.rewound, self.rewound_at = state.get("rewound"), state.get("rewound_at")
        self.method.load_state_dict(state.get("method", {}))
        for group, channels in state["standardized"].items():
            module = self.groups.output[group]
            if standardization_of(self.model.get_submodule(module)) is None:  # else: it came with the model
                placeholder = torch.zeros(channels)
                insert_standardize(self.model, module, placeholder, placeholder + 1)
            self.standardized[group] = channels

    def standardizations(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """group -> (mean, std) of the frozen standardization after it."""
        return {g: standardization_of(self.model.get_submodule(self.groups.output[g])) for g in self.standardized}


class _Once:
    """A callable computed on its first call and remembered: the batches of one reset, read (and
    checked) once whichever of the method and the standardization asks first."""

    def __init__(self, fn: Callable):
        self.fn, self.value, self.done = fn, None, False

    def __call__(self):
        if not self.done:
            self.value, self.done = self.fn(), True
        return self.value


def _check_int(name: str, value: Any, lo: int | None, call: str = "") -> None:
    where = f"{call}: " if call else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}{name}={value!r}: expected an integer, got {type(value).__name__}")
    if lo is not None and value < lo:
        raise ValueError(f"{where}{name}={value!r} is out of range: expected an integer >= {lo}")


@torch.no_grad()
def _clear_optimizer_state(optimizer: torch.optim.Optimizer, p: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the optimizer's per-element state (SGD momentum, Adam moments) where an in-round event
    replaced the value: momentum built for the old value would push the new one."""
    for v in optimizer.state.get(p, {}).values():
        if isinstance(v, torch.Tensor) and v.shape == p.shape:
            v.masked_fill_(mask.to(v.device), 0)

