"""The engine of one prepared run: its tensors, model, optimizer factory and training steps.

Data lives in memory as normalized float tensors on the device; batches are index gathers with
batched augmentation; losses and accuracies accumulate on the device and are read once per epoch.
Building an Engine changes no process-wide setting (runtime.configure does, once per process).

    eng = Engine(prepare(cfg))
    eng.schedule                       # batch, steps per epoch, epochs per round, statistics batches
    opt = eng.optimizer()
    eng.train_epoch(opt, round_, epoch)
    eng.evaluate(eng.x_test, eng.y_test)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.groups import groups_of
from ..core.method import Method, check_acts
from ..core.reinit import Reinitializer
from ..data import DataBundle
from ..data.augment import augment
from ..data.split import Split
from ..protocols import permute_pixels
from ..models import build_model
from ..speed.step import autocast_for, sgd_step
from ..speed.tune import accelerate, adam_options
from ..util.errors import ReinitlabWarning, UserError
from ..util.files import read_torch, torch_file_problem
from ..util.seeding import derive, generator
from . import init_from
from .config import TrainConfig
from .resolve import Prepared, prepare
from .rundir import read_config

STAT_BATCHES = 4  # training batches a reset may read (DNR's scores, LW's standardization statistics)


@dataclass(frozen=True)
class Schedule:
    """What a run trains, in steps. The loop trains exactly this; the cost estimates read it."""

    examples: int  # training examples
    batch: int  # examples per step
    steps: int  # steps per epoch (a last partial batch is dropped)
    epochs: tuple[int, ...]  # epochs of each round, round 0 first: the method's plan, or the protocol's stages
    stat_batches: int  # batches of un-augmented training examples a reset may read
    # per round (examples, batch, steps) where the protocol gives each stage its own data; () = all as above
    stages: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def of(cls, p: Prepared) -> "Schedule":
        """The schedule `Engine(p)` trains, without building the engine."""
        n = len(p.split.labels)
        plan = p.method.epochs(p.cfg.rounds, p.cfg.epochs)  # also checks the method's options against E
        if not p.protocol.staged:
            return cls.planned(n, p.cfg.batch_size, plan)
        batch = min(p.cfg.batch_size, n)
        stages = []
        for s in range(p.cfg.rounds + 1):
            st = p.protocol.stage(s, p.plan)
            m = n if st.index is None else len(st.index)
            b = min(p.cfg.batch_size, m)
            stages.append((m, b, m // b))
        epochs = tuple(p.protocol.epochs(s, p.plan) for s in range(p.cfg.rounds + 1))
        return cls(n, batch, n // batch, epochs, min(STAT_BATCHES, n // batch), tuple(stages))

    @classmethod
    def planned(cls, examples: int, batch_size: int, epochs) -> "Schedule":
        """The schedule of `examples` training examples at `batch_size`, `epochs` per round: what a
        study knows of its runs before reading their data."""
        batch = min(batch_size, examples)
        steps = examples // batch
        return cls(examples, batch, steps, tuple(epochs), min(STAT_BATCHES, steps))

    def check_acts(self, method: Method, where: str = "") -> None:
        """Refuse (UserError) a method whose in-round events can never fire in this schedule (where
        stages differ in size, as if every stage had the largest one's steps: no refusal of a method
        that acts in some stage)."""
        check_acts(method, self._most_steps(), self.epochs, where)

    def acts_only_in_round(self, method: Method) -> bool:
        """Whether the method's in-round events are all it does in this schedule (its reach can be
        told), so that 0 of them means it never acted; false for a method that also acts at every
        round start (hare:at_round_start)."""
        return method.in_round and method.in_round_reach(self._most_steps(), self.epochs) is not None

    def _most_steps(self) -> int:
        return max(st[2] for st in self.stages) if self.stages else self.steps

    def stage(self, r: int) -> tuple[int, int, int]:
        """(examples, batch, steps per epoch) of round r."""
        return self.stages[r] if self.stages else (self.examples, self.batch, self.steps)

    @property
    def rounds(self) -> int:
        return len(self.epochs) - 1

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs)

    @property
    def images(self) -> int:
        """Training images over the whole run (epochs x steps x batch, per round)."""
        return sum(e * self.stage(r)[2] * self.stage(r)[1] for r, e in enumerate(self.epochs))


def lr_at(step: int, total: int, peak: float, warmup: float, schedule: str = "cosine") -> float:
    """Linear warm-up over the first `warmup` fraction of `total` steps, then cosine decay to 0
    (`cosine`) or `peak` to the end (`constant`, as continual learning trains)."""
    w = int(round(warmup * total))
    if step < w:
        return peak * (step + 1) / w
    if schedule == "constant":
        return peak
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - w) / max(total - w, 1)))


def initial_model(cfg: TrainConfig, bundle: DataBundle) -> nn.Module:
    """The run's round-0 model: built under the seed's own init stream, or loaded from `init_from`, so
    building it again from the run's config gives the very same weights (analyses measure the
    distance from them)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive(cfg.seed, "init"))
        model = build_model(cfg.arch, bundle.channels, bundle.num_classes, cfg.width, cfg.resolution)
    if cfg.init_from is not None:  # another run's weights (init_from.py), checked against the resolved hash
        source = init_from.load(cfg.init_from)
        if cfg.init_from_sha256 is not None and source.sha256 != cfg.init_from_sha256:
            raise UserError(f"init_from={cfg.init_from}: its weights changed since this run was resolved (sha256 "
                            f"{source.sha256}, the run's config says {cfg.init_from_sha256})")
        init_from.apply(model, source)
    return model


class Engine:
    """Tensors, model, method and training steps of one prepared run."""

    def __init__(self, p: Prepared):
        self._p = p
        cfg, dev = p.cfg, p.device
        self.model = initial_model(cfg, p.bundle)
        self.speed = accelerate(self.model, dev, cfg.channels_last)  # the one seam of speed detours
        self.memory_format = self.speed.memory_format
        b, s = p.bundle, p.split
        xtr = b.x_train[s.train].float()
        self.mean = xtr.mean(dim=(0, 2, 3))
        self.std = xtr.std(dim=(0, 2, 3)).clamp_min(1e-3)
        self.x_train = self._prep(xtr)
        self.y_train = s.labels.to(dev)
        if s.val_official:
            self.x_val, self.y_val = self._prep(b.x_val.float()), b.y_val.to(dev)
        elif len(s.val):
            self.x_val, self.y_val = self._prep(b.x_train[s.val].float()), b.y_train[s.val].to(dev)
        else:
            self.x_val = self.y_val = None
        self.x_test, self.y_test = self._prep(b.x_test.float()), b.y_test.to(dev)
        self.begin_stage(0)
        self.groups = groups_of(self.model)
        self._schedule = Schedule.of(p)
        self.reinit = Reinitializer(self.model, p.method, cfg.rounds, self.groups, seed=cfg.seed,
                                    staged=p.protocol.staged,
                                    stat_batches=STAT_BATCHES)
        # bf16 autocasts the training forward pass only (precision.py says what stays in fp32)
        self.autocast = autocast_for(cfg.precision, dev)
        self._forward = self.model

    # ---- what the run is ----------------------------------------------------------------------
    @property
    def config(self) -> TrainConfig:
        """The resolved config (config.json)."""
        return self._p.cfg

    @property
    def prepared(self) -> Prepared:
        """What `resolve.prepare` made of the config: the run's data, split, method and device."""
        return self._p

    @property
    def split(self) -> Split:
        return self._p.split

    @property
    def bundle(self) -> DataBundle:
        return self._p.bundle

    @property
    def device(self) -> torch.device:
        return self._p.device

    @property
    def schedule(self) -> Schedule:
        return self._schedule

    def initial_state(self) -> dict[str, torch.Tensor]:
        """The parameters this run started from (round 0, before any training), rebuilt from its config."""
        return {n: p.detach().to(self.device) for n, p in initial_model(self.config, self.bundle).named_parameters()}

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return x.to(self._p.device).contiguous(memory_format=self.memory_format)

    # ---- the protocol's stages --------------------------------------------------------------
    def begin_stage(self, r: int) -> None:
        """Point training and evaluation at round r's data (protocols/): `x_stage, y_stage` are what
        the round trains on and `train_acc` is measured on, `val_set` and `test_sets` ({"test": ...,
        and "test_all" for classes}) what it is evaluated on. Under `rounds` these are the run's own
        tensors. Called at every round start, and when a killed run resumes inside a round."""
        self.stage_index = r
        test = (self.x_test, self.y_test)
        if not self._p.protocol.staged:
            self.x_stage, self.y_stage = self.x_train, self.y_train
            self.val_set, self.test_sets = (self.x_val, self.y_val), {"test": test}
            return
        st = self._p.protocol.stage(r, self._p.plan)
        dev, fmt = self.device, self.memory_format
        labels = self.y_train if st.labels is None else st.labels.to(dev)
        x, y = self.x_train, labels
        if st.index is not None:
            idx = st.index.to(dev)
            x, y = x[idx], y[idx]
        self.x_stage, self.y_stage = permute_pixels(x, st.permutation, fmt), y
        val = (None, None) if self.x_val is None else (permute_pixels(self.x_val, st.permutation, fmt), self.y_val)
        self.test_sets = {"test": (permute_pixels(self.x_test, st.permutation, fmt), self.y_test)}
        if st.classes is not None:  # evaluated on the classes seen so far, and on all of them
            seen = st.classes.to(dev)
            self.test_sets = {"test": _restrict(test, seen), "test_all": test}
            val = _restrict(val, seen) if val[0] is not None else val
        self.val_set = val

    # ---- training -------------------------------------------------------------------------------
    def loss_fn(self, out, y):
        return F.cross_entropy(out, y, label_smoothing=self.config.label_smoothing)

    def optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adam":  # the FIRE harness's and Kumar et al.'s choice for continual training
            return torch.optim.Adam(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay,
                                    **adam_options(self.device))
        return torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay)

    def compile(self) -> None:
        """Train through torch.compile from here on. Called at the start of every round: a reset
        may change the graph (LW inserts its standardization)."""
        torch._dynamo.reset()
        self._forward = torch.compile(self.model)

    def lr_after(self, round_: int, epoch: int) -> float:
        """The learning rate of the last step of `epoch` (0-based) in `round_`."""
        c, steps = self.config, self._schedule.stage(round_)[2]
        total = self._schedule.epochs[round_] * steps
        return lr_at(min((epoch + 1) * steps, total) - 1, total, c.lr, c.warmup, c.lr_schedule)

    def stat_batches(self, round_: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A few training batches without augmentation, fixed by (seed, round), for DNR scores and
        LW's standardization statistics."""
        self._at_stage(round_)
        examples, batch, steps = self._schedule.stage(round_)
        perm = torch.randperm(examples, generator=generator(self.config.seed, "stats", round_)).to(self.device)
        return [(self.x_stage[perm[i * batch:(i + 1) * batch]], self.y_stage[perm[i * batch:(i + 1) * batch]])
                for i in range(min(self._schedule.stat_batches, steps))]

    def _at_stage(self, round_: int) -> None:
        if self.stage_index != round_ and self._p.protocol.staged:
            self.begin_stage(round_)

    def train_epoch(self, opt, round_: int, epoch: int, on_step: Callable | None = None) -> tuple[float, float]:
        """Epoch `epoch` (0-based) of round `round_` on the round's warm-up + cosine schedule; returns
        (mean loss, accuracy) over its examples as trained (augmented)."""
        steps = self._schedule.stage(round_)[2]
        return self.train_steps(opt, steps, round_, epoch, epoch * steps, self._schedule.epochs[round_] * steps,
                                on_step)

    def train_steps(self, opt, k: int, round_: int = 0, epoch: int = 0, step0: int = 0, total_steps: int | None = None,
                    on_step: Callable | None = None) -> tuple[float, float]:
        """The first `k` steps of epoch `epoch`'s batch order in round `round_`, at the learning rates
        of steps step0.. of a schedule of `total_steps` (default: k). `on_step(steps done, loss sum,
        correct)` every 10 steps, with the sums still on the device. Returns (mean loss, accuracy)."""
        self._at_stage(round_)
        cfg, dev = self.config, self.device
        examples, batch, _ = self._schedule.stage(round_)
        total_steps = k if total_steps is None else total_steps
        self.model.train()
        perm = torch.randperm(examples, generator=generator(cfg.seed, "order", round_, epoch)).to(dev)
        g_aug = generator(cfg.seed, "augment", round_, epoch, device=dev) if cfg.augment != "none" else None
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        for i in range(k):
            idx = perm[i * batch:(i + 1) * batch]
            x, y = self.x_stage[idx], self.y_stage[idx]
            if g_aug is not None:
                x = augment(x, cfg.augment, g_aug)
            lr = lr_at(step0 + i, total_steps, cfg.lr, cfg.warmup, cfg.lr_schedule)
            for group in opt.param_groups:
                group["lr"] = lr
            # the penalty is a method's own loss term (l2init's); None for most methods
            loss, out = sgd_step(self._forward, x, y, opt, self.autocast, self.loss_fn,
                                 lambda: self.reinit.loss_term(round_))
            self.reinit.after_step(round_, step0 + i + 1, opt, data=lambda: self.stat_batches(round_))  # in-round events
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            if on_step is not None and i % 10 == 9:
                on_step(i + 1, loss_sum, correct)
        seen = k * batch
        return loss_sum.item() / seen, correct.item() / seen

    def finite(self, loss: float) -> bool:
        """Whether `loss` and every weight are finite (not diverged)."""
        if not math.isfinite(loss):
            return False
        return bool(torch.stack([torch.isfinite(w).all() for w in self.model.parameters()]).all())

    # ---- evaluation -----------------------------------------------------------------------------
    def evaluate(self, x: torch.Tensor | None, y: torch.Tensor | None) -> tuple[float | None, float | None]:
        """(accuracy, mean loss) of the model in eval mode on (x, y); the model is back in train mode after."""
        if x is None or len(x) == 0:
            return None, None
        try:
            with self.speed.evaluating(self.model) as batch_format:
                return self._evaluate(x, y, batch_format)
        finally:
            self.model.train()

    @torch.inference_mode()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_format: Callable) -> tuple[float, float]:
        self.model.eval()
        bs = self.config.eval_batch_size
        loss = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for i in range(0, len(x), bs):
            xb, yb = batch_format(x[i:i + bs]), y[i:i + bs]
            out = self.model(xb)  # in fp32 under any precision: accuracies and losses are the results
            loss += F.cross_entropy(out, yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
        return correct.item() / len(x), loss.item() / len(x)


def _restrict(xy: tuple[torch.Tensor, torch.Tensor], classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = torch.isin(xy[1], classes)
    return xy[0][keep], xy[1][keep]


def load_run(run_dir: str | Path, device: str | None = None) -> Engine:
    """Rebuild a finished run from its folder: config, data split, normalized tensors, and the final
    weights (with LW's frozen standardizations) from model.pt, read as data only (never code).
    Nothing is retrained. A damaged folder (torn or altered model.pt, corrupt config.json) is a
    UserError naming the file."""
    run_dir = Path(run_dir)
    for f in ("config.json", "model.pt"):
        if not (run_dir / f).exists():
            raise UserError(f"{run_dir}: no {f}; not a finished reinitlab run folder")
    values = read_config(run_dir / "config.json")
    if device is not None:
        values["device"] = device
    model_pt = run_dir / "model.pt"
    problem = torch_file_problem(model_pt)  # before the (slow) data load, and before any unpickling
    if problem:
        raise UserError(f"{model_pt}: {problem}; not loaded")
    try:
        cfg = TrainConfig.from_dict(values)
    except UserError as e:
        raise UserError(f"{run_dir / 'config.json'}: {e}") from None
    with warnings.catch_warnings():  # a finished run's budget warnings were given when it started
        warnings.simplefilter("ignore", ReinitlabWarning)
        eng = Engine(prepare(cfg))
    saved = read_torch(model_pt, map_location=eng.device)
    try:
        eng.reinit.load_state_dict(saved["reinit"])
        eng.model.load_state_dict(saved["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise UserError(f"{model_pt}: does not hold this run's model ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]}); not loaded") from None
    eng.model.eval()
    return eng
