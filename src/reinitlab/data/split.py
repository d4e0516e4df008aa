"""Validation split, stratified training subset and label noise, all fixed by the data seed.

The model seed never enters here, so two methods run with the same data seed see the same examples
and the same noisy labels. Indices refer to the dataset's training pool; the manifest goes to
split.json with a hash of its content.

- Stratified: each class gets its share of `n` by largest remainders, so class proportions match
  the pool's to within one example per class.
- Nested: each class's examples are taken in the order of one permutation per (data seed, class),
  so with one data seed the subset of 500 is contained in the subset of 1000.
- Label noise: exactly round(p * n) training positions (Python's round: halves go to the even
  number), drawn uniformly, get a uniformly random *other* class; indices and both labels are stored.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import torch

from ..util.errors import UserError
from ..util.seeding import generator
from .bundle import DataBundle


@dataclass
class Split:
    train: torch.Tensor  # indices into the training pool
    val: torch.Tensor  # indices into the training pool (or into the official val set)
    val_official: bool
    labels: torch.Tensor  # labels of `train` as trained on (noisy where label_noise > 0)
    noisy: torch.Tensor  # positions in `train` whose label was replaced
    data_seed: int

    def manifest(self, bundle: DataBundle) -> dict:
        body = {
            "dataset": bundle.name, "source": bundle.source.get("fingerprint"), "data_seed": self.data_seed,
            "train": self.train.tolist(), "val": self.val.tolist(), "val_official": self.val_official,
            "noisy": self.noisy.tolist(), "noisy_labels": self.labels[self.noisy].tolist(),
            "true_labels_of_noisy": bundle.y_train[self.train[self.noisy]].tolist(),
        }
        body["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return body


def quotas(counts: torch.Tensor, n: int) -> torch.Tensor:
    """Per-class shares of n proportional to counts, by largest remainders (ties: lower class)."""
    total = int(counts.sum())
    exact = [int(c) * n / total for c in counts.tolist()]
    take = [math.floor(q) for q in exact]
    order = sorted(range(len(exact)), key=lambda c: (-(exact[c] - take[c]), c))
    for c in order[: n - sum(take)]:
        take[c] += 1
    return torch.tensor(take, dtype=torch.long)


def stratified_pick(labels: torch.Tensor, n: int, num_classes: int, g: torch.Generator,
                    cap: torch.Tensor | None = None) -> torch.Tensor:
    """Positions of n examples with class proportions as in `labels`, sorted. `cap` (per class)
    limits what a class may give; the pick is then smaller than n by what was capped."""
    counts = torch.bincount(labels, minlength=num_classes)
    take = quotas(counts, n)
    if cap is not None:
        take = torch.minimum(take, cap)
    picked = []
    for c in range(num_classes):
        pos = torch.nonzero(labels == c).flatten()
        perm = torch.randperm(len(pos), generator=g)  # drawn for every class, so picks nest across n
        picked.append(pos[perm[: int(take[c])]])
    return torch.cat(picked).sort().values if picked else torch.zeros(0, dtype=torch.long)


def min_train_size(counts: torch.Tensor) -> int:
    """Smallest n whose stratified pick gives every class of the pool at least one example."""
    lo, hi = 1, int(counts.sum())
    while lo < hi:  # quotas are monotone in n: binary search
        mid = (lo + hi) // 2
        if bool((quotas(counts, mid)[counts > 0] > 0).all()):
            hi = mid
        else:
            lo = mid + 1
    return lo


def val_count(n: int, num_classes: int, val_fraction: float) -> int:
    """Examples the validation split asks for: a share of the pool, at least one per class."""
    return max(int(round(val_fraction * n)), num_classes) if val_fraction > 0 else 0


def pool_size(n: int, num_classes: int, val_fraction: float, official_val: bool) -> int:
    """The training pool left after the validation split, from the dataset's sizes alone (no data
    read): exact unless a class has at most two examples (a class keeps its last one)."""
    return n if official_val else n - val_count(n, num_classes, val_fraction)


def pool_counts(bundle: DataBundle, val_fraction: float) -> torch.Tensor:
    """Per-class examples of the training pool after the validation split. The counts do not depend
    on the data seed (only which examples do), so one check covers every seed."""
    counts = torch.bincount(bundle.y_train, minlength=bundle.num_classes)
    if bundle.x_val is not None or val_fraction <= 0:
        return counts
    n_val = val_count(len(bundle.y_train), bundle.num_classes, val_fraction)
    return counts - torch.minimum(quotas(counts, n_val), (counts - 1).clamp_min(0))


def check_train_size(bundle: DataBundle, train_size: int | None, counts: torch.Tensor) -> None:
    """Refuse a train_size the pool (per-class `counts`) cannot give, with every class represented."""
    pool = int(counts.sum())
    if train_size is None:
        return
    if train_size > pool:
        raise UserError(f"train_size={train_size} is larger than the training pool of {bundle.name} "
                        f"({pool} examples after the validation split); use at most {pool}")
    take = quotas(counts, train_size)
    short = [c for c in range(bundle.num_classes) if take[c] == 0]
    if short:
        c = short[0]
        raise UserError(f"train_size={train_size} is too small for {bundle.name}: class {bundle.classes[c]!r} "
                        f"({int(counts[c])} of {pool} pool examples) would get no example; use "
                        f"train_size >= {min_train_size(counts)}")


def make_split(bundle: DataBundle, train_size: int | None, val_fraction: float, label_noise: float,
               data_seed: int) -> Split:
    C, y = bundle.num_classes, bundle.y_train
    counts = torch.bincount(y, minlength=C)
    pool = torch.arange(len(y))
    if bundle.x_val is not None:
        val, official = torch.arange(len(bundle.y_val)), True
    elif val_fraction > 0:
        n_val = val_count(len(y), C, val_fraction)
        # a class never gives its last example to validation: it must stay trainable
        val = stratified_pick(y, n_val, C, generator(data_seed, "val"), cap=(counts - 1).clamp_min(0))
        official = False
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[val] = False
        pool = pool[keep]
    else:
        val, official = torch.zeros(0, dtype=torch.long), False
    check_train_size(bundle, train_size, torch.bincount(y[pool], minlength=C))
    if train_size is None:
        train = pool
    else:
        train = pool[stratified_pick(y[pool], train_size, C, generator(data_seed, "subset"))]
    labels = y[train].clone()
    n_noisy = int(round(label_noise * len(train)))
    g = generator(data_seed, "noise")
    noisy = torch.randperm(len(train), generator=g)[:n_noisy].sort().values
    if n_noisy:
        # a uniformly random *other* class: add 1..C-1 modulo C
        labels[noisy] = (labels[noisy] + torch.randint(1, C, (n_noisy,), generator=g)) % C
    return Split(train=train, val=val, val_official=official, labels=labels, noisy=noisy, data_seed=data_seed)
