"""The command line: each subcommand parses its arguments and calls one library function."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .config import TrainConfig
from .options import parse_assignment
from .errors import UserError


# Each feature owns its subcommand: a module with `add_parser(subparsers)` that sets `func`.
SUBCOMMANDS = [
    "reinitlab.data.cli",  # data list | info | prepare
    "reinitlab.study.cli",  # study
    "reinitlab.report.cli",  # report
    "reinitlab.analyses.cli",  # analyze
    "reinitlab.bench",  # bench
    "reinitlab.trackers.cli",  # export
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        raise UserError(f"{self.prog}: {message}")


def _train_config(args) -> TrainConfig:
    values = {}
    for key in ("dataset", "arch", "method", "train_size", "seed", "rounds", "epochs", "width", "data_dir"):
        v = getattr(args, key, None)
        if v is not None:
            values[key] = v
    for item in args.set or []:
        k, v = parse_assignment(item)
        if k == "method_options":
            raise UserError("method options go in the method spec, e.g. --method lw:rescale=false,order=top_down")
        values[k] = v
    return TrainConfig.from_dict(values)


def cmd_train(args) -> int:
    from .train import run
    cfg = _train_config(args)
    result = run(cfg, Path(args.out), progress=not args.quiet)
    if result["status"] != "finished":
        print(f"{result['status']} at {result.get('diverged_at')}; see {args.out}/metrics.jsonl", file=sys.stderr)
        return 1
    print(f"test_acc {result['test_acc']:.4f}  val_acc {result['val_acc'] if result['val_acc'] is None else round(result['val_acc'], 4)}  "
          f"train_acc {result['train_acc']:.4f}  rounds {result['rounds']}  epochs {result['epochs_total']}  "
          f"{result['seconds']:.1f}s  -> {args.out}")
    return 0


def cmd_list(args) -> int:
    if args.what == "methods":
        from .methods import METHODS
        for name, cls in METHODS.items():
            opts = ", ".join(f"{k}={v!r}" for k, v in cls().options_dict().items())
            print(f"{name:10s} {cls.summary}" + (f"  [{opts}]" if opts else ""))
    elif args.what == "archs":
        from .models import ARCHS
        for name, info in ARCHS.items():
            print(f"{name:12s} {info.description}")
    else:
        from .data import DATASETS
        for name, info in DATASETS.items():
            print(f"{name:20s} {info.num_classes:4d} classes  {info.train_size:6d} train  {info.test_size:6d} test  "
                  f"{info.resolution:3d}px  {info.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reinitlab", description="Weight reinitialization studies for CNNs on small image datasets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train one run and write its folder")
    t.add_argument("--dataset")
    t.add_argument("--arch")
    t.add_argument("--method", help="registry name, optionally with options: lw:rescale=false")
    t.add_argument("--train-size", dest="train_size", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--rounds", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--width", type=float)
    t.add_argument("--data-dir", dest="data_dir")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any run setting (repeatable)")
    t.add_argument("--out", required=True)
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=cmd_train)

    ls = sub.add_parser("list", help="list registered methods, archs or datasets")
    ls.add_argument("what", choices=["methods", "archs", "datasets"])
    ls.set_defaults(func=cmd_list)

    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as e:  # one line, whatever the message quotes (a parser's error may span lines)
        print("reinitlab: " + " ".join(part.strip() for part in str(e).splitlines() if part.strip()), file=sys.stderr)
        return e.exit_code
    except OSError as e:  # disk full, permissions, vanished files: the environment, not a bug
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"reinitlab: {where}{e.strerror or e}; files written before this point are intact "
              "(run the same command again to resume)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("reinitlab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
