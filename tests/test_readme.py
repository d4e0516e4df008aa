"""The README's code examples run as written."""
import contextlib
import io
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def example(name: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- example: {name}.*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README example {name!r} not found"
    return match.group(1)


def test_own_loop_example_runs_and_resets():
    torch.manual_seed(0)
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example("own-loop"), "README.md", "exec"), scope)
    reinit = scope["reinit"]
    assert reinit.groups.names == ["stem", "block1", "head"]
    assert reinit.history[0]["standardized"] == ["block1"]
    assert reinit.history[0]["redrawn_fraction"]["head"] == 1.0
    assert reinit.history[0]["redrawn_fraction"]["stem"] == 0.0
    assert "'round': 1" in out.getvalue()
