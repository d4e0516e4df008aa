"""`Reinitializer`: one method applied to one model, usable from any training loop.

    reinit = Reinitializer(model, "lw", rounds=3)       # records initial norms now
    for r in range(reinit.rounds + 1):
        if r:
            reinit.reset(r, data=train_loader)           # fresh draw + the method's event
        optimizer = make_optimizer(model)                # a fresh optimizer every round
        train(model, optimizer)
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from .groups import Groups, groups_of
from .methods import Method, ResetContext, make_method
from .reset import apply_event, fresh_state, init_fn_of, insert_standardize, preserve_buffers, standardization_of
from .seeding import derive


STD_EPS = 1e-5


class _Captured(Exception):
    pass


class Reinitializer:
    def __init__(self, model: nn.Module, method: str | Method, rounds: int, groups: Groups | dict | None = None,
                 seed: int = 0, init_fn: Callable[[nn.Module], None] | None = None,
                 loss_fn: Callable | None = None, stat_batches: int = 4):
        self.model = model
        self.method = make_method(method) if isinstance(method, str) else method
        self.rounds = rounds if self.method.resets else 0
        self.groups = groups if isinstance(groups, Groups) else groups_of(model, groups)
        self.seed = seed
        self.init_fn = init_fn or init_fn_of(model)
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.stat_batches = stat_batches
        self.init_norms = {n: float(p.detach().norm()) for n, p in model.named_parameters()}
        self.standardized: dict[str, int] = {}  # group -> channels of its frozen standardization
        self.history: list[dict] = []

    # ---- the event ---------------------------------------------------------------------------
    def reset(self, round: int, data: Any = None) -> dict:
        """Start round `round` (1..R): fresh draw, the method's event, optional standardization.

        `data`: training batches without augmentation, needed by `dnr` and by `lw` with normalize:
        an iterable of (x, y) (a DataLoader), a tuple (x, y) of tensors, or a callable returning
        either. Returns a record of what changed (also kept in `history`)."""
        if not self.method.resets:
            raise ValueError(f"method {self.method.name!r} has no reset rounds")
        batches = lambda: self._batches(data)  # noqa: E731
        ctx = ResetContext(model=self.model, groups=self.groups, round=round, rounds=self.rounds,
                           init_norms=self.init_norms, seed=self.seed, batches=batches, loss_fn=self.loss_fn)
        event = self.method.event(ctx)
        fresh = fresh_state(self.model, derive(self.seed, "fresh", round), self.init_fn)
        redrawn = apply_event(self.model, self.groups, event, fresh)
        if event.normalize_after:
            self._standardize_after(event.normalize_after, batches())
        record = {"round": round, "event": event.description, "redrawn_fraction": redrawn,
                  "standardized": sorted(self.standardized, key=self.groups.names.index)}
        self.history.append(record)
        return record

    def _batches(self, data) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if data is None:
            raise ValueError(f"method {self.method.name!r} needs training data at reset: pass data=...")
        if callable(data):
            data = data()
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
            return [data]
        out = []
        for batch in data:
            out.append((batch[0], batch[1]))
            if len(out) >= self.stat_batches:
                break
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
        insert_standardize(self.model, module_name, mean, std)
        self.standardized[group] = len(mean)

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"init_norms": self.init_norms, "standardized": dict(self.standardized),
                "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        """Restore before `model.load_state_dict`: re-creates the standardization modules whose
        statistics the model's state dict then fills in."""
        self.init_norms = dict(state["init_norms"])
        self.history = list(state["history"])
        for group, channels in state["standardized"].items():
            placeholder = torch.zeros(channels)
            insert_standardize(self.model, self.groups.output[group], placeholder, placeholder + 1)
            self.standardized[group] = channels

    def standardizations(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """group -> (mean, std) of the frozen standardization after it."""
        return {g: standardization_of(self.model.get_submodule(self.groups.output[g])) for g in self.standardized}
