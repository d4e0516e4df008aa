"""The dataset a study process holds in memory: workers train many runs of one dataset and the
provenance check resolves runs against it, so it is loaded once per process. One dataset is kept at
a time, so a study over many datasets does not pile them up."""
from __future__ import annotations

_cache: dict = {}


def bundle_for(cfg):
    from ..data import check_dataset, load_dataset
    res = cfg.resolution or check_dataset(cfg.dataset).resolution
    key = (cfg.dataset, cfg.data_dir, res)
    if key not in _cache:
        _cache.clear()
        _cache[key] = load_dataset(cfg.dataset, cfg.data_dir, res)
    return _cache[key]


def release() -> None:
    _cache.clear()
