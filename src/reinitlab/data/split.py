"""Validation split, stratified training subset and label noise, all fixed by the data seed.

The model seed never enters here, so two methods run with the same data seed see the same examples
and the same noisy labels. Indices refer to the dataset's training pool; the manifest goes to
split.json with a hash of its content."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

from ..errors import UserError
from ..seeding import generator
from . import DataBundle


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


def stratified_pick(labels: torch.Tensor, n: int, num_classes: int, g: torch.Generator) -> torch.Tensor:
    """Positions of n examples with class proportions as in `labels` (largest remainders), sorted."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    quota = counts * n / len(labels)
    take = quota.floor().long()
    short = n - int(take.sum())
    if short:
        rem = quota - take.double()
        # stable: ties go to the lower class index
        order = sorted(range(num_classes), key=lambda c: (-float(rem[c]), c))
        for c in order[:short]:
            take[c] += 1
    picked = []
    for c in range(num_classes):
        if take[c] == 0:
            continue
        pos = torch.nonzero(labels == c).flatten()
        picked.append(pos[torch.randperm(len(pos), generator=g)[: int(take[c])]])
    return torch.cat(picked).sort().values if picked else torch.zeros(0, dtype=torch.long)


def make_split(bundle: DataBundle, train_size: int | None, val_fraction: float, label_noise: float,
               data_seed: int) -> Split:
    C, y = bundle.num_classes, bundle.y_train
    pool = torch.arange(len(y))
    if bundle.x_val is not None:
        val, official = torch.arange(len(bundle.y_val)), True
    elif val_fraction > 0:
        n_val = max(int(round(val_fraction * len(y))), C)
        val, official = stratified_pick(y, n_val, C, generator(data_seed, "val")), False
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[val] = False
        pool = pool[keep]
    else:
        val, official = torch.zeros(0, dtype=torch.long), False
    if train_size is None:
        train = pool
    else:
        if train_size > len(pool):
            raise UserError(f"train_size={train_size} is larger than the training pool of {bundle.name} "
                            f"({len(pool)} examples after the validation split); use at most {len(pool)}")
        train = pool[stratified_pick(y[pool], train_size, C, generator(data_seed, "subset"))]
    counts = torch.bincount(y[train], minlength=C)
    if (counts == 0).any():
        c = int(torch.nonzero(counts == 0)[0])
        raise UserError(f"train_size={len(train)} leaves class {bundle.classes[c]!r} of {bundle.name} with no "
                        f"example; use a train_size of at least {C} per class share")
    labels = y[train].clone()
    n_noisy = int(round(label_noise * len(train)))
    g = generator(data_seed, "noise")
    noisy = torch.randperm(len(train), generator=g)[:n_noisy].sort().values
    if n_noisy:
        # a uniformly random *other* class: add 1..C-1 modulo C
        labels[noisy] = (labels[noisy] + torch.randint(1, C, (n_noisy,), generator=g)) % C
    return Split(train=train, val=val, val_official=official, labels=labels, noisy=noisy, data_seed=data_seed)
