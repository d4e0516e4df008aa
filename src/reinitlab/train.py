"""The one training loop. Every method runs through `run`, so results differ by the method alone.

Data lives in memory as normalized float tensors on the device; batches are index gathers with
batched augmentation; losses and accuracies accumulate on the device and are read once per epoch.
Each round gets a fresh SGD optimizer and a fresh warm-up + cosine schedule. After every epoch a
checkpoint is written atomically, so a killed run resumes at the epoch it stopped at and ends with
bit-identical metrics on the CPU.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .analyses.round_log import round_log
from .augment import augment
from .config import TrainConfig
from .data import DataBundle, check_dataset, load_dataset
from .data.split import Split, make_split
from .errors import UserError
from .groups import Groups, groups_of
from .hostmem import cpu_eval_memory_format, keep_freed_memory
from .methods import METHODS, Method, parse_spec
from .models import build_model, check_arch
from .progress import Progress
from .reinit import Reinitializer
from .rundir import (append_jsonl, atomic_torch_save, atomic_write_json, checkpoint_problem, environment,
                     read_json, read_jsonl)
from .seeding import derive, generator

# Settings that may differ when a run is resumed: they change speed, not results.
RESUMABLE_DIFFERENCES = {"threads", "compile", "eval_batch_size"}


@dataclass
class Prepared:
    """Everything a run needs, resolved and checked before anything is written."""

    cfg: TrainConfig
    method: Method
    bundle: DataBundle
    split: Split
    device: torch.device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device='cuda' but no CUDA device is available; use device=auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device='mps' but MPS is not available; use device=auto or cpu")
    return torch.device(name)


def prepare(cfg: TrainConfig, bundle: DataBundle | None = None) -> Prepared:
    """Resolve defaults and check every input (method, arch, dataset, sizes). Raises UserError."""
    cfg = dataclasses.replace(cfg, method_options=dict(cfg.method_options))
    cfg.validate()
    name, spec_options = parse_spec(cfg.method)
    method = METHODS[name](**{**cfg.method_options, **spec_options})
    cfg.method_options = method.options_dict()
    check_arch(cfg.arch)
    if bundle is None:
        info = check_dataset(cfg.dataset)
        cfg.resolution = cfg.resolution or info.resolution
        bundle = load_dataset(cfg.dataset, cfg.data_dir, cfg.resolution)
    else:  # an in-memory dataset (library use, tests): recorded under its own name
        cfg.dataset, cfg.resolution = bundle.name, bundle.resolution
    cfg.data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
    device = resolve_device(cfg.device)
    cfg.device = device.type
    # auto is fp32 everywhere. On an H200 at batch 128 bf16 autocast trained 1.07-1.25x slower than fp32
    # with TF32 tensor cores (the casts cost more than the narrower math saves on 28-32 px images);
    # on CPUs without bf16 units it is 13-25x slower.
    cfg.precision = "fp32" if cfg.precision == "auto" else cfg.precision
    if cfg.threads is None:
        cfg.threads = torch.get_num_threads()
    if cfg.eval_batch_size is None:
        cfg.eval_batch_size = 1024 if device.type == "cuda" else 256
    if cfg.rounds is None:
        probe = build_model(cfg.arch, bundle.channels, bundle.num_classes, cfg.width, cfg.resolution)
        cfg.rounds = groups_of(probe).K - 1
    split = make_split(bundle, cfg.train_size, cfg.val_fraction, cfg.label_noise, cfg.data_seed)
    if len(split.train) < 2:
        raise UserError(f"train_size={len(split.train)}: need at least 2 training examples")
    cfg.train_size = len(split.train)
    return Prepared(cfg, method, bundle, split, device)


# ---- the run folder ---------------------------------------------------------------------------
def open_run_dir(out: Path, cfg: TrainConfig) -> str:
    """'new', 'resume' or 'finished'. Refuses a folder that holds something else."""
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
        old = read_json(cfg_path)
    except (OSError, ValueError) as e:
        raise UserError(f"{cfg_path}: unreadable ({e}); remove the folder to start over") from None
    new = cfg.to_dict()
    diff = [k for k in new if k not in RESUMABLE_DIFFERENCES and old.get(k) != new[k]]
    if diff:
        k = diff[0]
        raise UserError(f"--out {out} holds a run with {k}={old.get(k)!r}, not {new[k]!r}; use another "
                        "folder or the same settings to resume")
    if not (out / "result.json").exists():
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
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("/"))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {probe} is not writable; choose a folder you can write to")


# ---- the engine -------------------------------------------------------------------------------
def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    w = int(round(warmup * total))
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - w) / max(total - w, 1)))


def group_norms(model: nn.Module, groups: Groups) -> dict[str, float]:
    params = dict(model.named_parameters())
    with torch.no_grad():
        sq = [torch.stack([params[p].detach().float().pow(2).sum() for p in groups.params[g]]).sum()
              for g in groups.names]
        vals = torch.stack(sq).sqrt().tolist()
    return dict(zip(groups.names, vals))


class Engine:
    """Tensors, model, method and the loop of one prepared run."""

    def __init__(self, p: Prepared):
        self.p, self.cfg = p, p.cfg
        cfg, dev = p.cfg, p.device
        torch.set_num_threads(cfg.threads)
        if dev.type == "cpu":
            keep_freed_memory()  # no page faults on every step's activations (see hostmem)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive(cfg.seed, "init"))
            self.model = build_model(cfg.arch, b.channels, b.num_classes, cfg.width, cfg.resolution)
        self.model = self.model.to(dev, memory_format=self.memory_format)
        self.groups = groups_of(self.model)
        self.reinit = Reinitializer(self.model, p.method, cfg.rounds, self.groups, seed=cfg.seed)
        self.plan = p.method.epochs(cfg.rounds, cfg.epochs)
        self.n = len(self.y_train)
        self.batch = min(cfg.batch_size, self.n)
        self.steps = self.n // self.batch
        self.autocast = (torch.autocast(dev.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
                         else nullcontext())
        if dev.type == "cuda" and cfg.precision == "fp32":
            # TF32 tensor cores for the fp32 matmuls too (cuDNN's convs use them by default).
            torch.backends.cuda.matmul.allow_tf32 = True
        self.forward = self.model
        self.eval_format = (cpu_eval_memory_format(self.model) if dev.type == "cpu" and cfg.channels_last
                            else self.memory_format)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return x.to(self.p.device).contiguous(memory_format=self.memory_format)

    def loss_fn(self, out, y):
        return F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing)

    def optimizer(self) -> torch.optim.Optimizer:
        c = self.cfg
        return torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay)

    def stat_batches(self, round_: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A few training batches without augmentation, fixed by (seed, round), for DNR scores and
        LW's standardization statistics."""
        perm = torch.randperm(self.n, generator=generator(self.cfg.seed, "stats", round_)).to(self.p.device)
        return [(self.x_train[perm[i * self.batch:(i + 1) * self.batch]], self.y_train[perm[i * self.batch:(i + 1) * self.batch]])
                for i in range(min(self.reinit.stat_batches, self.steps))]

    def evaluate(self, x: torch.Tensor | None, y: torch.Tensor | None) -> tuple[float | None, float | None]:
        """(accuracy, mean loss) of the model in eval mode on (x, y); the model is back in train mode after."""
        if x is None or len(x) == 0:
            return None, None
        # Wide ResNets evaluate faster in NCHW on a CPU (hostmem.cpu_eval_memory_format): the weights
        # are converted for the pass and back, an exact copy each way, so training is untouched. The
        # conversion runs outside inference mode: weights made there could not be trained again.
        flip = self.eval_format != self.memory_format
        if flip:
            self.model.to(memory_format=self.eval_format)
        try:
            return self._evaluate(x, y, flip)
        finally:
            if flip:
                self.model.to(memory_format=self.memory_format)
            self.model.train()

    @torch.inference_mode()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, flip: bool) -> tuple[float, float]:
        self.model.eval()
        loss = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for i in range(0, len(x), self.cfg.eval_batch_size):
            xb, yb = x[i:i + self.cfg.eval_batch_size], y[i:i + self.cfg.eval_batch_size]
            if flip:
                xb = xb.contiguous(memory_format=self.eval_format)
            with self.autocast:
                out = self.model(xb)
            loss += F.cross_entropy(out.float(), yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
        return correct.item() / len(x), loss.item() / len(x)

    def train_epoch(self, opt, round_: int, epoch: int, step0: int, total_steps: int, on_step=None):
        """One epoch; returns (mean loss, accuracy) over its examples as trained (augmented)."""
        cfg, dev = self.cfg, self.p.device
        self.model.train()
        perm = torch.randperm(self.n, generator=generator(cfg.seed, "order", round_, epoch)).to(dev)
        g_aug = generator(cfg.seed, "augment", round_, epoch, device=dev) if cfg.augment != "none" else None
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        for i in range(self.steps):
            idx = perm[i * self.batch:(i + 1) * self.batch]
            x, y = self.x_train[idx], self.y_train[idx]
            if g_aug is not None:
                x = augment(x, cfg.augment, g_aug)
            lr = lr_at(step0 + i, total_steps, cfg.lr, cfg.warmup)
            for group in opt.param_groups:
                group["lr"] = lr
            with self.autocast:
                out = self.forward(x)
                loss = self.loss_fn(out.float(), y)
                extra = self.reinit.loss_term(round_)  # a method's penalty (l2init); None for most
            opt.zero_grad(set_to_none=True)
            (loss if extra is None else loss + extra).backward()
            opt.step()
            self.reinit.after_step(round_, step0 + i + 1, opt, data=lambda: self.stat_batches(round_))  # in-round events
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            if on_step is not None and i % 10 == 9:
                on_step(i + 1, loss_sum, correct)
        seen = self.steps * self.batch
        return loss_sum.item() / seen, correct.item() / seen


def run(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True, bundle: DataBundle | None = None,
        label: str = "") -> dict:
    """Train one run and write its folder. Returns result.json's content.

    `out=None` trains without writing anything (library use, tests). An existing folder with the
    same config resumes from its checkpoint, or returns the finished result without training."""
    return execute(cfg, out, progress, bundle, label)[0]


def execute(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True,
            bundle: DataBundle | None = None, label: str = "") -> tuple[dict, Engine | None]:
    """`run`, also returning the engine (model, groups, tensors); None when the folder was finished."""
    p = prepare(cfg, bundle)
    cfg = p.cfg
    out = Path(out) if out is not None else None
    state = open_run_dir(out, cfg) if out else "new"
    if state == "finished":
        return read_json(out / "result.json"), None
    eng = Engine(p)
    model, reinit = eng.model, eng.reinit
    pos = {"round": 0, "epoch": 0, "streak": 0, "round_done": False}
    per_round: list[dict] = []
    elapsed, epochs_total = 0.0, 0
    opt = None  # a fresh optimizer is made at the start of every round
    if out:
        out.mkdir(parents=True, exist_ok=True)
        ckpt_path = out / "ckpt.pt"
        if state == "resume" and ckpt_path.exists():
            try:
                problem = checkpoint_problem(ckpt_path)
                if problem:
                    raise ValueError(problem)
                ck = torch.load(ckpt_path, map_location=p.device, weights_only=False)
                reinit.load_state_dict(ck["reinit"])
                model.load_state_dict(ck["model"])
                opt = eng.optimizer()
                opt.load_state_dict(ck["optimizer"])
                pos, per_round, elapsed, epochs_total = ck["pos"], ck["per_round"], ck["elapsed"], ck["epochs_total"]
            except OSError:
                raise
            except Exception as e:  # torn, garbled, or another model's: never train on from it
                why = " ".join(str(e).split())
                why = why if len(why) <= 160 else why[:157] + "..."
                raise UserError(f"{ckpt_path}: cannot resume from this checkpoint ({type(e).__name__}: {why}); "
                                "delete it to train the run again from the start") from None
            # metrics lines written after the checkpoint belong to the epoch being redone
            rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["epoch_total"] <= epochs_total]
            _rewrite_jsonl(out / "metrics.jsonl", rows)
        else:
            for f in ("metrics.jsonl", "ckpt.pt"):
                (out / f).unlink(missing_ok=True)
            atomic_write_json(out / "config.json", cfg.to_dict())
            atomic_write_json(out / "split.json", {**p.split.manifest(p.bundle),
                                                   "normalization": {"mean": eng.mean.tolist(), "std": eng.std.tolist()}})
            atomic_write_json(out / "env.json", environment(p.device))

    rounds = len(eng.plan) - 1
    bar = Progress(sum(eng.plan), label=label, enabled=progress)
    status, diverged_at = "finished", None
    r = pos["round"] + 1 if pos["round_done"] else pos["round"]
    while r <= rounds:
        E = eng.plan[r]
        resuming = (r == pos["round"] and not pos["round_done"] and pos["epoch"] > 0)
        if not resuming:
            t0 = time.time()
            record = reinit.reset(r, data=lambda r=r: eng.stat_batches(r)) if r > 0 else None
            elapsed += time.time() - t0
            opt = eng.optimizer()
            pos = {"round": r, "epoch": 0, "streak": 0, "round_done": False, "reset": record}
        if eng.cfg.compile:
            torch._dynamo.reset()
            eng.forward = torch.compile(model)
        total_steps = E * eng.steps
        while pos["epoch"] < E and not pos["round_done"]:
            e = pos["epoch"]
            t0 = time.time()

            def on_step(i, loss_sum, correct, e=e):
                # a function: on a GPU, .item() waits for the device, so the bar reads it once a second
                bar.step(epochs_total + i / eng.steps, r, rounds, e + 1, E,
                         lambda: (loss_sum / (i * eng.batch)).item())

            train_loss, train_acc = eng.train_epoch(opt, r, e, e * eng.steps, total_steps, on_step)
            val_acc, val_loss = eng.evaluate(eng.x_val, eng.y_val)
            epochs_total += 1
            pos["epoch"] = e + 1
            pos["streak"] = pos["streak"] + 1 if train_acc >= 1.0 else 0
            last = pos["epoch"] == E or (cfg.patience and pos["streak"] >= cfg.patience)
            row = {"round": r, "epoch": e + 1, "epoch_total": epochs_total,
                   "lr": lr_at(min((e + 1) * eng.steps, total_steps) - 1, total_steps, cfg.lr, cfg.warmup),
                   "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc}
            if cfg.norm_log:
                row["group_norms"] = group_norms(model, eng.groups)
            finite = math.isfinite(train_loss) and bool(torch.stack([torch.isfinite(w).all() for w in model.parameters()]).all())
            if not finite:
                status, diverged_at = "diverged", {"round": r, "epoch": e + 1}
                last = True
            if last and finite:
                test_acc, test_loss = eng.evaluate(eng.x_test, eng.y_test)
                tr_acc, tr_loss = eng.evaluate(eng.x_train, eng.y_train)
                row.update(test_acc=test_acc, test_loss=test_loss, train_eval_acc=tr_acc, train_eval_loss=tr_loss)
            epoch_seconds = time.time() - t0
            elapsed += epoch_seconds
            row["seconds"] = epoch_seconds
            if last and finite:
                record = {"round": r, "epochs": pos["epoch"], "train_acc": row["train_eval_acc"],
                          "train_loss": row["train_eval_loss"], "val_acc": val_acc, "test_acc": row["test_acc"],
                          "reset": pos.get("reset"), "epochs_total": epochs_total}
                if cfg.round_log:  # norms, spectral complexity, margins: their course over rounds
                    t1 = time.time()
                    record["diagnostics"] = round_log(model, eng.groups, eng.x_train, eng.y_train)
                    record["diagnostics_seconds"] = time.time() - t1
                    elapsed += record["diagnostics_seconds"]
                per_round.append(record)
                pos["round_done"] = True
            if finite:  # rewind snapshots and in-round epoch events, before the checkpoint holds them
                reinit.end_epoch(r, e + 1, last=bool(last), optimizer=opt, data=lambda r=r: eng.stat_batches(r))
            bar.epoch(row, rounds)
            if out:
                append_jsonl(out / "metrics.jsonl", row)
            if out and finite:  # never a checkpoint of NaN weights: a kill before result.json would
                # resume from them; the last finite one makes a resumed run diverge the same way
                atomic_torch_save(out / "ckpt.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                    "reinit": reinit.state_dict(), "pos": pos, "per_round": per_round,
                                                    "elapsed": elapsed, "epochs_total": epochs_total})
            if status == "diverged":
                break
        if status == "diverged":
            break
        r += 1

    final = per_round[-1] if per_round else {}
    result = {
        "status": status, "dataset": cfg.dataset, "arch": cfg.arch, "method": cfg.method, "seed": cfg.seed,
        "train_size": cfg.train_size, "label_noise": cfg.label_noise,
        "test_acc": final.get("test_acc"), "val_acc": final.get("val_acc"), "train_acc": final.get("train_acc"),
        "rounds": rounds, "epochs_total": epochs_total, "seconds": elapsed,
        "train_images_per_second": epochs_total * eng.steps * eng.batch / max(elapsed, 1e-9),
        "per_round": per_round,
    }
    if diverged_at:
        result["diverged_at"] = diverged_at
    if out:
        atomic_torch_save(out / "model.pt", {"model": model.state_dict(), "reinit": reinit.state_dict(),
                                             "config": cfg.to_dict()})
        atomic_write_json(out / "result.json", result)
        (out / "ckpt.pt").unlink(missing_ok=True)
    return result, eng


def _rewrite_jsonl(path: Path, rows: list[dict]) -> None:
    import json
    from .rundir import atomic_write_bytes
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def load_run(run_dir: str | Path, device: str | None = None) -> Engine:
    """Rebuild a finished run from its folder: config, data split, normalized tensors, and the final
    weights (with LW's frozen standardizations) from model.pt. Nothing is retrained."""
    run_dir = Path(run_dir)
    for f in ("config.json", "model.pt"):
        if not (run_dir / f).exists():
            raise UserError(f"{run_dir}: no {f}; not a finished reinitlab run folder")
    values = read_json(run_dir / "config.json")
    if device is not None:
        values["device"] = device
    p = prepare(TrainConfig.from_dict(values))
    eng = Engine(p)
    saved = torch.load(run_dir / "model.pt", map_location=p.device, weights_only=False)
    eng.reinit.load_state_dict(saved["reinit"])
    eng.model.load_state_dict(saved["model"])
    eng.model.eval()
    return eng
