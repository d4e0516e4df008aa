"""`reinitlab export-model RUN_DIR --out FILE [--format ...] [--onnx]`"""
from __future__ import annotations

from pathlib import Path


def cmd_export_model(args) -> int:
    from .export import describe, export_model
    manifest = export_model(Path(args.run_dir), Path(args.out), format=args.format, onnx=args.onnx)
    print(describe(manifest, Path(args.out)))
    return 0


def add_parser(subparsers) -> None:
    from .export import FORMATS
    p = subparsers.add_parser(
        "export-model", help="write a run's final model in a form that runs without reinitlab",
        description="Write the final model of a finished run: a plain state_dict of the architecture when LW's "
                    "standardizations fold exactly into the weights (or there are none), else a self-contained "
                    "program. FILE.json beside it says the format, the input (size, normalization) and how to load it.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="auto (default): state_dict where the fold is exact, else torch.export")
    p.add_argument("--onnx", action="store_true", help="also write FILE.onnx (needs the onnx package)")
    p.set_defaults(func=cmd_export_model)
