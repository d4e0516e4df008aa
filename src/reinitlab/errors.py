"""The one error type users see: a single line, exit code 2, no traceback."""


class UserError(Exception):
    """Bad input from the user (config, CLI, data files). The CLI prints `reinitlab: <msg>` and exits 2."""

    exit_code = 2


def choices(valid) -> str:
    return ", ".join(sorted(valid))
