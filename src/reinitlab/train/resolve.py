"""From a TrainConfig as given to everything one run needs, checked before anything is written.

    p = prepare(cfg)          # Prepared: the resolved config, the method, the data, the split, the device
    p.cfg                     # resolve()'s value: every None filled in; what config.json holds

The resolved config is a new value, built once by `resolve`; the config given is never changed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..core.groups import groups_of
from ..core.method import METHODS, Method, parse_spec, warn_budget
from ..data import DataBundle, check_dataset, load_dataset
from ..data.split import Split, make_split
from ..models import build_model, check_arch
from ..protocols import PROTOCOLS, Protocol, StagePlan
from ..speed.precision import Shape, choose
from ..speed.runtime import resolve_device
from ..util.errors import UserError
from . import init_from
from .config import TrainConfig


@dataclass(frozen=True)
class Prepared:
    """A run, resolved and checked."""

    cfg: TrainConfig  # resolved (see `resolve`)
    method: Method
    bundle: DataBundle
    split: Split
    device: torch.device
    protocol: Protocol  # what each round trains on (protocols/)

    @property
    def plan(self) -> StagePlan:
        """What the protocol needs to lay out the stages."""
        return StagePlan(n=len(self.split.labels), labels=self.split.labels, num_classes=self.bundle.num_classes,
                         pixels=self.bundle.resolution ** 2, data_seed=self.split.data_seed, rounds=self.cfg.rounds,
                         epochs=self.cfg.epochs, first_fraction=self.cfg.first_fraction)

    @property
    def val_size(self) -> int:
        return len(self.bundle.y_val) if self.split.val_official else len(self.split.val)

    @property
    def test_size(self) -> int:
        return len(self.bundle.y_test)


def prepare(cfg: TrainConfig, bundle: DataBundle | None = None) -> Prepared:
    """Check every input (method, arch, dataset, device, sizes) and resolve the config. `bundle`: an
    in-memory dataset (library use, tests), recorded under its own name; None loads `cfg.dataset`.
    Raises UserError."""
    cfg.validate()
    name, spec_options = parse_spec(cfg.method)
    method = METHODS[name](**{**cfg.method_options, **spec_options})
    check_arch(cfg.arch)
    if bundle is None:
        dataset = cfg.dataset
        bundle = load_dataset(cfg.dataset, cfg.data_dir, cfg.resolution or check_dataset(cfg.dataset).resolution)
    else:
        dataset = bundle.name
    device = resolve_device(cfg.device)
    data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
    split = make_split(bundle, cfg.train_size, cfg.val_fraction, cfg.label_noise, data_seed)
    if len(split.train) < 2:
        raise UserError(f"train_size={len(split.train)}: need at least 2 training examples")
    protocol = PROTOCOLS[cfg.protocol]()
    cfg = check_protocol(cfg, protocol, method)
    init_hash = _check_init_from(cfg, bundle)
    resolved = resolve(cfg, method, bundle, split, device, dataset)
    resolved = dataclasses.replace(resolved, init_from_sha256=init_hash)
    p = Prepared(resolved, method, bundle, split, device, protocol)
    protocol.check(p.plan)
    if method.resets and cfg.rounds is not None:  # rounds beyond LW's distinct steps repeat resets
        warn_budget(method, resolved.rounds, _groups_probe(cfg, bundle))
    return p


def check_protocol(cfg: TrainConfig, protocol: Protocol, method: Method) -> TrainConfig:
    """What a staged protocol asks of the run, refused in one line: `long` (one round of (R+1)*E
    epochs) has no stages to compare with; the protocol's own rounds (warm_start: two stages)."""
    if not protocol.staged:
        return cfg
    if method.name == "long":
        raise UserError(f"method 'long' has no meaning under protocol={protocol.name}: it trains one round on one "
                        "set of data; the references of a staged protocol are baseline (trained on across the "
                        "stages: warm start) and scratch (re-drawn at every stage)")
    if cfg.rounds is None:
        if protocol.rounds_default is None:
            raise UserError(f"protocol={protocol.name} needs rounds (its stages after the first), e.g. --rounds 4 "
                            "for 5 stages")
        return cfg.replace(rounds=protocol.rounds_default)
    return cfg


def resolve(cfg: TrainConfig, method: Method, bundle: DataBundle, split: Split, device: torch.device,
            dataset: str) -> TrainConfig:
    """The complete config of a run, a new value with every None filled in from what `prepare`
    found: the method's options, the dataset's name and resolution, the data seed, the device, the
    precision, threads, evaluation batch, rounds and the number of training examples."""
    threads = torch.get_num_threads() if cfg.threads is None else cfg.threads
    precision = cfg.precision
    if precision == "auto":  # measured on this run's shape (precision.py); a study passes its own choice
        shape = shape_of(cfg.replace(threads=threads), bundle.channels, bundle.resolution, device.type, len(split.train))
        precision = choose([shape], device).precision
    return dataclasses.replace(
        cfg,
        method_options=method.options_dict(),
        dataset=dataset,
        resolution=bundle.resolution,
        data_seed=split.data_seed,
        device=device.type,
        precision=precision,
        threads=threads,
        eval_batch_size=(1024 if device.type == "cuda" else 256) if cfg.eval_batch_size is None
        else cfg.eval_batch_size,
        rounds=_full_lw_budget(cfg, bundle) if cfg.rounds is None else cfg.rounds,
        train_size=len(split.train),
    )


def _check_init_from(cfg: TrainConfig, bundle: DataBundle) -> str | None:
    """The hash of init_from's weights, once they are known to fit the run's model; None without."""
    if cfg.init_from is None:
        if cfg.init_from_sha256 is not None:
            raise UserError(f"init_from_sha256={cfg.init_from_sha256} needs init_from=PATH (the weights it pins)")
        return None
    source = init_from.load(cfg.init_from)
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg.arch, bundle.channels, bundle.num_classes, cfg.width, bundle.resolution)
    init_from.check(source, model, cfg.arch, cfg.width, bundle.channels, bundle.num_classes)
    digest = source.sha256
    if cfg.init_from_sha256 is not None and cfg.init_from_sha256 != digest:
        raise UserError(f"init_from={cfg.init_from}: its weights have sha256 {digest}, not the pinned "
                        f"init_from_sha256={cfg.init_from_sha256} (trained again since?); unpin it or restore them")
    return digest


def _full_lw_budget(cfg: TrainConfig, bundle: DataBundle) -> int:
    """K - 1 resets: one per group boundary of the architecture."""
    return _groups_probe(cfg, bundle).K - 1


def _groups_probe(cfg: TrainConfig, bundle: DataBundle):
    with torch.random.fork_rng(devices=[]):  # a probe of the groups; the caller's RNG stays as it was
        return groups_of(build_model(cfg.arch, bundle.channels, bundle.num_classes, cfg.width, bundle.resolution))


def shape_of(cfg: TrainConfig, channels: int, resolution: int, device: str, examples: int | None = None) -> Shape:
    """The shape a run of `cfg` trains, which decides its arithmetic's speed (threads: all of torch's
    where `cfg` leaves them open); `examples`: its training examples, where known (a smaller set
    trains smaller batches)."""
    batch = cfg.batch_size if examples is None else min(cfg.batch_size, examples)
    return Shape(cfg.arch, cfg.width, resolution, channels, batch, cfg.channels_last,
                 cfg.threads or torch.get_num_threads(), device)
