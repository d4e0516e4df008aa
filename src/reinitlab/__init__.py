"""reinitlab: weight reinitialization during training of CNNs on small image datasets."""
from __future__ import annotations

import importlib
from typing import Any

# The public names, each imported from its module on first use (PEP 562): `import reinitlab` loads
# nothing else, and `from reinitlab import Reinitializer` loads the reset machinery, not the
# training loop, the data readers or the analyses.
_EXPORTS = {
    "TrainConfig": "train.config", "UserError": "util.errors", "Groups": "core.groups", "groups_of": "core.groups",
    "METHODS": "core.method", "make_method": "core.method", "ARCHS": "models", "build_model": "models",
    "Reinitializer": "core.reinit", "Action": "core.reset", "ResetEvent": "core.reset", "apply_event": "core.reset",
    "fresh_state": "core.reset", "run": "train.loop", "__version__": "version",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
