"""`ReinitCallback`: a reinitialization method inside a PyTorch Lightning `Trainer` (pip install
reinitlab[lightning]).

    trainer = L.Trainer(max_epochs=(rounds + 1) * epochs_per_round,
                        callbacks=[ReinitCallback("lw", rounds=3, epochs_per_round=10, data=stats_loader)])
    trainer.fit(module, train_loader)

Round r trains epochs r*E .. (r+1)*E - 1. At the start of each round r >= 1 the callback applies the
method's reset (core/reinit.py's Reinitializer, the same code as reinitlab's own loop) and then
re-creates the optimizer and learning-rate schedule that `configure_optimizers` returns, through
`trainer.strategy.setup_optimizers(trainer)`: Lightning's own call, which runs configure_optimizers
again and replaces the trainer's optimizers and scheduler configs (so the schedule should span one
round: E epochs). During a round it calls the in-round hooks: the method's loss term (l2init) is
added to the gradients after backward (d(L + P) = dL + dP; the logged loss is L alone), `after_step`
after every optimizer step and `end_epoch` after every epoch. Each reset's record is logged through
the trainer's loggers (keys `reinit/...`) and kept in `history`. The Reinitializer's state (initial
norms, LW's frozen standardizations, rewind snapshots, in-round state) is saved in Lightning's
checkpoints and restored on `fit(ckpt_path=...)` before the model's weights are loaded.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

try:
    import lightning.pytorch as pl
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError("reinitlab.lightning needs PyTorch Lightning: pip install 'reinitlab[lightning]'") from e

from .core.groups import Groups
from .core.method import Method
from .core.reinit import Reinitializer


class ReinitCallback(pl.Callback):
    """Apply `method` (a spec like "lw" or "sp:shrink=0.5", or a Method) for `rounds` rounds of
    `epochs_per_round` epochs to the LightningModule, or to its submodule `module` (an attribute
    path such as "net": the groups and the initializer then come from that network, as for a
    registry architecture).

    `data`: a few training batches without augmentation for the methods that read data at a reset
    (lw's standardization, dnr, redo, dash): an iterable of (x, y) batches, or a callable taking the
    round and returning one; default: the trainer's training dataloader. Batches are moved to the
    module's device. `seed` keys the fresh draws; `groups` a spec as for `groups_of`."""

    def __init__(self, method: str | Method, rounds: int, epochs_per_round: int, module: str | None = None,
                 data: Any = None, seed: int = 0, groups: Groups | dict | None = None, stat_batches: int = 4,
                 log: bool = True):
        if rounds < 0 or epochs_per_round < 1:
            raise ValueError(f"rounds={rounds}, epochs_per_round={epochs_per_round}: need rounds >= 0 and "
                             "epochs_per_round >= 1")
        self.method, self.rounds, self.epochs_per_round = method, rounds, epochs_per_round
        self.module, self.data, self.seed, self.groups = module, data, seed, groups
        self.stat_batches, self.log = stat_batches, log
        self.reinit: Reinitializer | None = None
        self.round_started = 0  # the last round whose reset has been applied (0: round 0)
        self.round_start_step = 0  # trainer.global_step when that round began
        self._last_step = -1

    @property
    def state_key(self) -> str:
        name = self.method if isinstance(self.method, str) else self.method.name
        return self._generate_state_key(method=name, rounds=self.rounds, epochs_per_round=self.epochs_per_round,
                                        module=self.module)

    @property
    def history(self) -> list[dict]:
        """One record per reset: round, event, fraction re-drawn per group, standardized groups."""
        return self.reinit.history if self.reinit else []

    # ---- set-up ---------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.reinit is not None:
            return
        target = pl_module.get_submodule(self.module) if self.module else pl_module
        # built before any training step and before a checkpoint is restored: the initial norms LW
        # rescales to are the untrained weights' (a resumed fit then takes the checkpoint's)
        self.reinit = Reinitializer(target, self.method, self.rounds, self.groups, seed=self.seed,
                                    stat_batches=self.stat_batches)
        self._wrap_checkpoint_loading(pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        want = (self.reinit.rounds + 1) * self.epochs_per_round
        if trainer.max_epochs != want:
            raise ValueError(f"ReinitCallback: {self.reinit.rounds} rounds of {self.epochs_per_round} epochs need "
                             f"Trainer(max_epochs={want}), not {trainer.max_epochs}")
        if self.reinit.method.has_loss_term and str(trainer.precision).startswith("16"):
            raise ValueError(f"ReinitCallback: method {self.reinit.method.name!r} adds a loss term to the gradients, "
                             "which is not done under fp16's loss scaling; use precision 32 or bf16")

    def _wrap_checkpoint_loading(self, pl_module: pl.LightningModule) -> None:
        """Lightning restores a callback's state after the model's weights, but LW's standardization
        buffers must exist before those weights load (a strict load refuses unknown keys). The
        module's own on_load_checkpoint runs first, so the restore goes there, then the module's."""
        own = pl_module.on_load_checkpoint

        def on_load_checkpoint(checkpoint: dict) -> None:
            state = checkpoint.get("callbacks", {}).get(self.state_key)
            if state is not None:
                self.load_state_dict(state)
            own(checkpoint)
        pl_module.on_load_checkpoint = on_load_checkpoint

    # ---- rounds ---------------------------------------------------------------------------------
    def round_of(self, epoch: int) -> int:
        return min(epoch // self.epochs_per_round, self.reinit.rounds)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # also called on a fit resumed from a checkpoint of the epoch before (Lightning skips it only
        # when resuming mid-epoch, and then the round has started already: `round_started` says so)
        r = self.round_of(trainer.current_epoch)
        if r <= self.round_started:
            return
        record = self.reinit.reset(r, data=self._data(r, pl_module))
        # the optimizer and schedule the module configures, new: Lightning's own set-up call
        trainer.strategy.setup_optimizers(trainer)
        self.round_started, self.round_start_step = r, trainer.global_step
        self._log(trainer, {"reinit/round": float(r),
                            **{f"reinit/redrawn_fraction/{g}": float(v) for g, v in record["redrawn_fraction"].items()},
                            "reinit/standardized_groups": float(len(record["standardized"]))})

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.reinit.method.has_loss_term:
            return
        extra = self.reinit.loss_term(self.round_of(trainer.current_epoch))
        if extra is not None:  # the loss Lightning back-propagated was divided by the accumulation
            (extra / trainer.accumulate_grad_batches).backward()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if trainer.global_step == self._last_step:  # an accumulation micro-batch: no step was taken
            return
        self._last_step = trainer.global_step
        r = self.round_of(trainer.current_epoch)
        self.reinit.after_step(r, trainer.global_step - self.round_start_step, _optimizer(trainer),
                               data=self._data(r, pl_module))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        r = self.round_of(trainer.current_epoch)
        epoch = trainer.current_epoch - r * self.epochs_per_round + 1
        last = epoch == self.epochs_per_round
        before = dict(self.reinit.in_round_log[-1]) if self.reinit.in_round_log else None
        self.reinit.end_epoch(r, epoch, last=last, optimizer=_optimizer(trainer), data=self._data(r, pl_module))
        log = self.reinit.in_round_log[-1] if self.reinit.in_round_log else None
        if log is not None and log["round"] == r and log != before:
            self._log(trainer, {"reinit/in_round_events": float(log["events"]),
                                "reinit/replaced_elements": float(log["replaced_elements"])})

    # ---- data and logging ------------------------------------------------------------------------
    def _data(self, round_: int, pl_module: pl.LightningModule) -> Callable[[], list]:
        def batches():
            source = self.data
            if source is None:
                source = pl_module.trainer.train_dataloader
            elif callable(source) and not isinstance(source, torch.utils.data.DataLoader):
                source = source(round_)
            out = []
            for batch in source:
                out.append((_to(batch[0], pl_module.device), _to(batch[1], pl_module.device)))
                if len(out) >= self.stat_batches:
                    break
            return out
        return batches

    def _log(self, trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        if self.log:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    # ---- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"reinit": self.reinit.state_dict() if self.reinit else None, "round_started": self.round_started,
                "round_start_step": self.round_start_step, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Called twice on a resume (by the module hook above, and by Lightning after the weights):
        the second call finds the standardizations in place and changes nothing else."""
        if state_dict.get("reinit") is not None and self.reinit is not None:
            self.reinit.load_state_dict(state_dict["reinit"])
        self.round_started = state_dict["round_started"]
        self.round_start_step = state_dict["round_start_step"]
        self._last_step = state_dict["last_step"]


def _optimizer(trainer: pl.Trainer) -> torch.optim.Optimizer | None:
    return trainer.optimizers[0] if trainer.optimizers else None


def _to(x, device):
    return x.to(device) if isinstance(x, (torch.Tensor, nn.Module)) else x
