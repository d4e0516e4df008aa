"""A finished run's final model in a form that loads and runs without reinitlab.

    reinitlab export-model runs/lw --out lw.pt                 # auto: state_dict where exact, else a program
    export_model("runs/lw", "lw.pt", format="torchscript")

Formats (FILE is written atomically; FILE.json beside it says what FILE is and how to feed it):

  state_dict    torch.save of the architecture's own state_dict: `build_model(arch, ...)` (or your own
                copy of the architecture) loads it with strict=True. LW's frozen standardizations are
                folded into the layers that read them (core/fold.py); refused in one line where a
                fold would not be exact (e.g. before a convolution with zero padding).
  torch.export  a self-contained program (torch.export.save): `torch.export.load(FILE).module()(x)`.
  torchscript   a self-contained program (torch.jit.trace): `torch.jit.load(FILE)(x)`.
  auto          state_dict when every standardization folds exactly (and always for runs without one),
                else torch.export.

`onnx=True` also writes FILE.onnx, only where the `onnx` package is installed. Every form computes
the run's eval-mode logits from the input the run's model reads: images at the run's resolution, as
float pixels 0..255 standardized per channel with the training set's mean and std (FILE.json:
"normalization"). The program's batch dimension is dynamic.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn as nn

from ..core.fold import fold_standardizations, standardized_modules
from ..models import build_model
from ..util.errors import UserError
from ..util.files import atomic_write_bytes, atomic_write_json, read_json_dict, writable_problem
from . import init_from

FORMATS = ("auto", "state_dict", "torch.export", "torchscript")
CONTEXT = "export-model"  # what messages from the shared reader of model.pt (init_from.load) begin with


def run_model(run_dir: str | Path) -> tuple[nn.Module, dict, dict]:
    """(the run's final model in eval mode, its config, its split.json's normalization), built from
    the folder alone: no dataset is read."""
    run_dir = Path(run_dir)
    if not (run_dir / "result.json").is_file() or not (run_dir / "model.pt").is_file():
        raise UserError(f"{run_dir}: not a finished reinitlab run folder (needs result.json and model.pt)")
    source = init_from.load(run_dir, context=CONTEXT)
    cfg = source.config or {}
    split = read_json_dict(run_dir / "split.json") or {}
    norm = split.get("normalization") or {}
    if not cfg.get("arch") or not norm.get("mean"):
        raise UserError(f"{run_dir}: config.json or split.json lacks the arch or the input normalization")
    channels, resolution = len(norm["mean"]), int(cfg["resolution"])
    with torch.random.fork_rng(devices=[]):
        probe = build_model(cfg["arch"], channels, 2, cfg["width"], resolution)
    last = [n for n, m in probe.named_modules() if isinstance(m, nn.Linear)][-1]
    classes = int(source.state[f"{last}.weight"].shape[0])
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg["arch"], channels, classes, cfg["width"], resolution)
    init_from.check(source, model, cfg["arch"], cfg["width"], channels, classes, context=CONTEXT)
    init_from.apply(model, source)
    return model.eval(), cfg, norm


def example_input(channels: int, resolution: int, batch: int = 4) -> torch.Tensor:
    """Standardized-scale inputs for tracing and for checking a fold: fixed, whatever the RNG."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, channels, resolution, resolution, generator=g)


def export_model(run_dir: str | Path, out: str | Path, format: str = "auto", onnx: bool = False) -> dict:
    """Write the run's final model to `out` (and `out`.json); returns that manifest."""
    if format not in FORMATS:
        raise UserError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; name the file to write")
    problem = writable_problem(out.parent)  # before the export's work, and before any file is begun
    if problem:
        raise UserError(f"--out {out}: cannot write the model there: {problem}; nothing written")
    if onnx:
        _need_onnx()
    model, cfg, norm = run_model(run_dir)
    channels, resolution = len(norm["mean"]), int(cfg["resolution"])
    x = example_input(channels, resolution)
    standardized = standardized_modules(model)
    chosen, folded, why = format, None, []
    if format in ("auto", "state_dict"):
        folded, report = fold_standardizations(model, x)
        why = report.problems
        if folded is None and format == "state_dict":
            raise UserError(f"{run_dir}: LW's standardization does not fold exactly into plain weights: {why[0]}; "
                            "use --format torch.export or torchscript (a self-contained program)")
        chosen = "state_dict" if folded is not None else "torch.export"
    elif standardized:  # a program was asked for: it computes the standardizations as they are
        why = [f"--format {format} was asked for (a program keeps the standardizations as they are; no fold "
               "into plain weights was tried)"]
    out.parent.mkdir(parents=True, exist_ok=True)
    if chosen == "state_dict":
        atomic_write_bytes(out, _saved(folded.state_dict()))
    elif chosen == "torch.export":
        atomic_write_bytes(out, _exported(model, x))
    else:
        atomic_write_bytes(out, _scripted(model, x))
    manifest = {
        "format": chosen, "arch": cfg["arch"], "width": cfg["width"], "in_channels": channels,
        "classes": int(model(x[:1]).shape[1]), "resolution": resolution,
        "input": f"float32 [N, {channels}, {resolution}, {resolution}]: pixels in 0..255, minus mean, divided by std, "
                 "per channel", "normalization": {"mean": norm["mean"], "std": norm["std"]},
        "output": "logits [N, classes], the model in eval mode",
        "load": {"state_dict": f"model = build_model({cfg['arch']!r}, ...); model.load_state_dict(torch.load(FILE)); "
                               "model.eval()",
                 "torch.export": "torch.export.load(FILE).module()(x)",
                 "torchscript": "torch.jit.load(FILE)(x)"}[chosen],
        "standardizations": standardized, "folded": chosen == "state_dict" and bool(standardized),
        "not_folded_because": why if chosen != "state_dict" else [],
        "run": {"dir": str(run_dir), "method": cfg.get("method"), "dataset": cfg.get("dataset"), "seed": cfg.get("seed")},
    }
    if onnx:
        onnx_path = out.with_name(out.name + ".onnx")
        _onnx(model, x, onnx_path)
        manifest["onnx"] = onnx_path.name
    atomic_write_json(out.with_name(out.name + ".json"), manifest)
    return manifest


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _exported(model: nn.Module, x: torch.Tensor) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},), strict=False)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _scripted(model: nn.Module, x: torch.Tensor) -> bytes:
    with torch.no_grad():
        traced = torch.jit.trace(model, (x,), check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    return buf.getvalue()


def _need_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserError("--onnx needs the onnx package (pip install onnx onnxscript); the model file itself "
                        "needs neither") from None


def _onnx(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.onnx.export(model, (x,), str(tmp), input_names=["x"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1 << 16)},), dynamo=True,
                          verbose=False)
    except Exception as e:  # noqa: BLE001 -- a missing exporter dependency (onnxscript) or an unsupported op
        tmp.unlink(missing_ok=True)
        raise UserError(f"ONNX export failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}); the model "
                        "file is written") from None
    tmp.replace(path)


def describe(manifest: dict, out: Path) -> str:
    """The line `export-model` prints."""
    how = manifest["format"]
    note = ""
    if manifest["standardizations"]:
        note = (f"; LW's {len(manifest['standardizations'])} standardization(s) folded into the weights"
                if manifest["folded"] else f"; not a state_dict because {manifest['not_folded_because'][0]}")
    return f"{how} -> {out} (+ {out.name}.json){note}"
