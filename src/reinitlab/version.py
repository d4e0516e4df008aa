"""The package version, read in one place: the installed distribution's metadata, or, in a source
checkout that was never installed, the version line of the checkout's pyproject.toml."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        return metadata.version("reinitlab")
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M)
    except OSError:
        match = None
    return match.group(1) if match else "0+unknown"


__version__ = _version()
