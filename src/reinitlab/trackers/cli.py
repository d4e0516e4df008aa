"""`reinitlab export tensorboard|mlflow|wandb STUDY_DIR [--to DIR]`"""
from __future__ import annotations


def cmd_export(args) -> int:
    from .export import export
    res = export(args.tracker, args.study_dir, args.to)
    print(f"{len(res.runs)} run(s) -> {res.store}" + (f"  ({len(res.skipped)} unfinished run folder(s) left out)"
                                                      if res.skipped else ""))
    print(f"open with: {res.open_with}")
    return 0


def add_parser(subparsers) -> None:
    from . import TRACKERS
    p = subparsers.add_parser(
        "export", help="mirror finished run folders into TensorBoard, MLflow or W&B (offline)",
        description="Write every finished (or diverged) run below STUDY_DIR into a local tracker store, "
                    "read from the run folders alone (config.json, metrics.jsonl, result.json). Writing "
                    "the same folders again replaces their earlier tracker runs.")
    p.add_argument("tracker", choices=list(TRACKERS))
    p.add_argument("study_dir", metavar="STUDY_DIR", help="a study folder, a run folder or a folder of run folders")
    p.add_argument("--to", metavar="DIR", help="the tracker's store (default: tensorboard/, mlflow/ or the "
                                               "wandb/ folder in the study folder, or beside the run folders)")
    p.set_defaults(func=cmd_export)
