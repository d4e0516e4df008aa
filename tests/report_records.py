"""Hand-written run records for the report computations (budget, tuned, tree): the shape
report.collect produces, without run folders."""
from __future__ import annotations

from reinitlab.report.collect import RunRecord


def record(method: str, seed: int, test: float | None, val: float | None = 0.5, status: str = "finished",
           dataset: str = "fashion-mnist-small", arch: str = "cnn", train_size=500, label_noise: float = 0.0,
           rounds: int = 1, epochs: int = 5, epochs_total: int | None = None, extra: dict | None = None
           ) -> RunRecord:
    """A run with its axes; `extra` holds its extra-axis values ({"rounds": 2} where rounds is an
    axis; `rounds` and `epochs` alone are shared settings, in the config only)."""
    extra = dict(extra or {})
    axes = {"dataset": dataset, "arch": arch, "train_size": train_size, "label_noise": label_noise,
            "method": method, "seed": seed, **extra}
    config = {"dataset": dataset, "arch": arch, "method": method, "seed": seed, "train_size": train_size,
              "label_noise": label_noise, "rounds": extra.get("rounds", rounds), "epochs": extra.get("epochs", epochs),
              "resolution": 28, **extra}
    result = None
    if status in ("finished", "diverged"):
        result = {"status": status, "test_acc": test, "val_acc": val, "epochs_total": epochs_total}
    setting = ",".join(f"{k}={v}" for k, v in sorted(extra.items()))
    rid = "/".join(x for x in (dataset, arch, f"n{train_size}", f"noise{label_noise:g}", setting, method,
                               f"seed{seed}") if x)
    return RunRecord(rid, status, config, result, None, axes)
