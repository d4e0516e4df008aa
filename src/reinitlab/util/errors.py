"""The one error type users see: a single line, exit code 2, no traceback; and the one way an
unknown name is reported (with a did-you-mean), so every registry and key check reads the same."""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input from the user (config, CLI, data files). The CLI prints `reinitlab: <msg>` and exits 2."""

    exit_code = 2


class ReinitlabWarning(UserWarning):
    """Input that runs but probably not as meant. The CLI prints `reinitlab: warning: <msg>`."""


def choices(valid) -> str:
    return ", ".join(sorted(valid))


def did_you_mean(name: str, valid: Iterable[str]) -> str | None:
    """The closest valid name to a misspelled one, or None. Case is ignored: 'LW' means 'lw'."""
    valid = list(valid)
    lowered = {v.lower(): v for v in valid}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def unknown_message(what: str, name: str, valid: Iterable[str], sort: bool = True, also: str = "") -> str:
    """"unknown method 'lx' (did you mean 'lw'?); valid: ..." for any registry or set of keys.
    `also` is appended to the list of valid names (e.g. the dataset prefixes)."""
    valid = sorted(valid) if sort else list(valid)
    close = did_you_mean(name, valid)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"unknown {what} {name!r}{hint}; valid: {', '.join(valid)}{also}"


def unknown(what: str, name: str, valid: Iterable[str], sort: bool = True, also: str = "") -> UserError:
    return UserError(unknown_message(what, name, valid, sort, also))
