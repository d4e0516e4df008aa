"""Datasets: every one loads into a `DataBundle` of uint8 image tensors held in memory.

Registered benchmarks read their official files and splits (see each module's docstring and
`reinitlab data info NAME`); `folder:PATH` and `npz:PATH` read your own data. Decoded tensors are
cached under cache_root() so only the first load of a dataset at a resolution decodes anything.
"""
from __future__ import annotations

from .bundle import DataBundle, resize
from .cache import cache_root
from .registry import DATASETS, DatasetInfo, Source, check_dataset, fingerprint, load_dataset, register, register_prefix

__all__ = ["DataBundle", "DatasetInfo", "Source", "DATASETS", "check_dataset", "load_dataset", "register",
           "register_prefix", "resize", "fingerprint", "cache_root"]
