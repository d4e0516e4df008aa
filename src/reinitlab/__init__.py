"""reinitlab: weight reinitialization during training of CNNs on small image datasets."""
from __future__ import annotations

import importlib
from typing import Any

# The public names, each imported from its module on first use (PEP 562): `import reinitlab` loads
# nothing else, and `from reinitlab import Reinitializer` loads the reset machinery, not the
# training loop, the data readers or the analyses.
_EXPORTS = {
    "TrainConfig": "config", "UserError": "errors", "Groups": "groups", "groups_of": "groups",
    "METHODS": "methods", "make_method": "methods", "ARCHS": "models", "build_model": "models",
    "Reinitializer": "reinit", "Action": "reset", "ResetEvent": "reset", "apply_event": "reset",
    "fresh_state": "reset", "run": "train", "__version__": "version",
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
