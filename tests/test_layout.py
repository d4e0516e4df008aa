"""The house rules the code layout promises: hooks observe a run without changing it, process-wide
settings change only where an entry point sets them, `import reinitlab` stays light, and imports
only go down the layers."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import synthetic_bundle

from reinitlab import TrainConfig, run
from reinitlab.train.engine import Engine, Schedule
from reinitlab.train.hooks import Hooks
from reinitlab.train.resolve import prepare
from reinitlab.util.files import read_jsonl

TINY = dict(width=0.25, epochs=2, rounds=1, batch_size=16, eval_batch_size=64, threads=1)
SRC = Path(__file__).resolve().parents[1] / "src" / "reinitlab"


class Recorder:
    """Every event, and an attempt to disturb the run that must not show in its numbers: reading the
    step sums (a device sync) and keys added to the rows and records."""

    def __init__(self):
        self.events = []

    def on_run_start(self, ctx):
        self.events.append(("run_start", ctx.state.epochs_total))

    def on_round_start(self, ctx, reset):
        self.events.append(("round_start", ctx.state.round, None if reset is None else reset["round"]))

    def on_step(self, ctx, steps, loss_sum, correct):
        float(loss_sum), int(correct)

    def on_epoch_end(self, ctx, row):
        assert "group_norms" in row  # the default diagnostics hook came first
        row["mine"] = 1
        self.events.append(("epoch_end", row["round"], row["epoch"]))

    def on_round_end(self, ctx, record):
        assert "diagnostics" in record
        self.events.append(("round_end", record["round"]))

    def on_run_end(self, ctx, result):
        self.events.append(("run_end", result["status"]))


def test_hooks_see_every_event_in_order_and_change_no_number(tmp_path):
    bundle = synthetic_bundle()
    cfg = TrainConfig(method="lw", **TINY)
    plain = run(cfg, tmp_path / "plain", progress=False, bundle=bundle)
    rec = Recorder()
    watched = run(cfg, tmp_path / "watched", progress=False, bundle=bundle, hooks=[rec])
    assert rec.events == [("run_start", 0), ("round_start", 0, None), ("epoch_end", 0, 1), ("epoch_end", 0, 2),
                          ("round_end", 0), ("round_start", 1, 1), ("epoch_end", 1, 1), ("epoch_end", 1, 2),
                          ("round_end", 1), ("run_end", "finished")]
    timing = {"seconds", "diagnostics_seconds", "train_images_per_second"}

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in timing}
        return [strip(v) for v in x] if isinstance(x, list) else x
    assert strip(watched) == strip(plain)
    rows = read_jsonl(tmp_path / "watched/metrics.jsonl")
    assert all(r.pop("mine") == 1 for r in rows)  # what a hook adds reaches metrics.jsonl
    assert strip(rows) == strip(read_jsonl(tmp_path / "plain/metrics.jsonl"))


def test_an_object_without_hook_methods_is_refused():
    with pytest.raises(TypeError, match="is not a hook"):
        Hooks([print])


def test_a_library_run_leaves_the_callers_process_as_it_found_it():
    """`run` trains on the run's own threads but puts the caller's count back, and leaves the C
    allocator alone (keeping freed memory holds a process's peak memory until it exits: an entry
    point's choice, not a library call's). A fresh interpreter: other tests' entry points switched
    the allocator in this one."""
    code = """
import torch
from reinitlab import TrainConfig, run
from reinitlab.speed import allocator
from conftest import synthetic_bundle
torch.set_num_threads(1)
run(TrainConfig(method="baseline", round_log=False, width=0.25, epochs=1, rounds=1, batch_size=16,
                eval_batch_size=64, threads=2), progress=False, bundle=synthetic_bundle())
print(torch.get_num_threads(), allocator._applied)
"""
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=here,
                         env={**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{SRC.parent}"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "None"]


def test_building_an_engine_changes_no_process_setting():
    bundle = synthetic_bundle()
    torch.set_num_threads(1)
    eng = Engine(prepare(TrainConfig(method="lw", **{**TINY, "threads": 2}), bundle))
    assert torch.get_num_threads() == 1
    assert eng.config.threads == 2


def test_the_schedule_is_what_the_engine_trains():
    bundle = synthetic_bundle(n_train=100)  # 90 after the validation split
    p = prepare(TrainConfig(method="lw", **{**TINY, "batch_size": 32}), bundle)
    s = Schedule.of(p)
    assert s == Engine(p).schedule
    assert (s.examples, s.batch, s.steps, s.epochs, s.stat_batches) == (90, 32, 2, (2, 2), 2)
    assert (s.rounds, s.total_epochs) == (1, 4)


def loaded_modules(statement: str) -> set[str]:
    code = f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.slow  # three fresh interpreters importing torch
def test_import_reinitlab_is_light():
    bare = loaded_modules("import reinitlab")
    assert {m for m in bare if m.startswith("reinitlab")} == {"reinitlab"} and "torch" not in bare
    mods = loaded_modules("from reinitlab import Reinitializer")
    assert "reinitlab.core.reinit" in mods
    assert not {m for m in mods if m.startswith(("reinitlab.train", "reinitlab.data", "reinitlab.analyses",
                                                   "reinitlab.speed"))}
    assert not {m for m in loaded_modules("import reinitlab.train.loop") if m.startswith("reinitlab.analyses")}


# Each folder's layer (docs/architecture.md): a module imports only from its own layer or below.
# Registries find their entries by package name (util/registry.py), which is how a lower layer
# (the method registry in core/, the tracker registry in train/) meets what registers above it.
LAYERS = {
    1: ["util", "version"],
    2: ["data", "models", "protocols"],
    3: ["core"],
    4: ["methods"],
    5: ["measure"],
    6: ["speed"],
    7: ["train"],
    8: ["trackers", "analyses", "bench"],
    9: ["study"],
    10: ["report"],
    11: ["paper"],
    12: ["cli", "lightning"],
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def _imports(path: Path) -> list[str]:
    """The reinitlab modules `path` imports, at the top or inside functions (not for type names only)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                mod = ".".join(base + ([node.module] if node.module else []))
                found += [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            elif node.module and node.module.startswith("reinitlab"):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("reinitlab")]
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_imports_only_go_down_the_layers():
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        me = _top(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        if me in ("", "__init__", "__main__"):
            continue
        if me not in LAYER_OF:
            problems.append(f"{path.relative_to(SRC)}: module {me!r} has no layer; add it to LAYERS")
            continue
        for target in _imports(path):
            other = _top(target)
            if other and other != me and other in LAYER_OF and LAYER_OF[other] > LAYER_OF[me]:
                problems.append(f"{path.relative_to(SRC)} (layer {LAYER_OF[me]}) imports {target} "
                                f"(layer {LAYER_OF[other]})")
    assert not problems, "\n".join(problems)
