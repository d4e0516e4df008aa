"""The command line: each subcommand parses its arguments and calls one library function."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import sys
import textwrap
import typing
import warnings
from pathlib import Path

from .train.config import TrainConfig, setting_help
from .util.errors import ReinitlabWarning, UserError, unknown_message
from .util.options import parse_assignments, same_value, type_name
from .version import __version__

# Each feature owns its subcommand: a module with `add_parser(subparsers)` that sets `func`.
SUBCOMMANDS = [
    "reinitlab.data.cli",  # data list | info | prepare
    "reinitlab.study.cli",  # study
    "reinitlab.report.cli",  # report
    "reinitlab.analyses.cli",  # analyze
    "reinitlab.bench.benchmark",  # bench
    "reinitlab.trackers.cli",  # export
    "reinitlab.train.export_cli",  # export-model
]


class _StoreOnce(argparse._StoreAction):
    """An option given twice with different values is refused (argparse keeps the last one silently,
    so `--epochs 3 --epochs 5` would train 5 epochs and say nothing); the same value twice is fine."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given_flags", {})
        if option_string is not None:
            if self.dest in given and given[self.dest][1] != values:
                first, value = given[self.dest]
                raise UserError(f"{first} {value} and {option_string} {values} disagree; give {option_string} once")
            given[self.dest] = (option_string, values)
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def error(self, message):  # one line, exit 2, like every other bad input
        # main() prefixes "reinitlab: " once; the subcommand ("train", "data info") says where
        where = self.prog.partition(" ")[2]
        bad = re.fullmatch(r"argument (\S+): invalid choice: '?(.*?)'? \(choose from (.*)\)", message)
        if bad:  # a misspelled subcommand or choice: the same did-you-mean as a misspelled method
            name = bad.group(1)
            what = "command" if name in ("command", "data_command") else name if name.startswith("-") else "choice"
            message = unknown_message(what, bad.group(2), [c.strip(" '\"") for c in bad.group(3).split(",")],
                                      sort=False)
        raise UserError(f"{where}: {message}" if where else message)


# The run settings that `train` takes as options of their own; every other one goes through --set.
TRAIN_OPTIONS = {"dataset": str, "arch": str, "method": str, "train_size": int, "seed": int, "rounds": int,
                 "epochs": int, "width": float, "data_dir": str}
NOT_SETTABLE = {"method_options"}  # resolved from the method spec


def _default_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _valid_text(key: str, tp) -> str:
    """Valid values of a run setting: the registry's names where there is one, else its type."""
    if key == "dataset":
        from .data.registry import DATASETS, PREFIXES
        return "one of " + ", ".join([*DATASETS, *(f"{p}:PATH" for p in PREFIXES)])
    if key == "arch":
        from .models import ARCHS
        return "one of " + ", ".join(ARCHS)
    if key == "method":
        from .core.method import METHODS
        return "one of " + ", ".join(METHODS) + ", each NAME or NAME:KEY=VALUE,..."
    if typing.get_origin(tp) is typing.Literal:  # bare words, as --set takes them
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    return type_name(tp)


def _default(key: str):
    field = {f.name: f for f in dataclasses.fields(TrainConfig)}[key]
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def _option_help(key: str) -> str:
    valid = f"; {_valid_text(key, None)}" if key in ("arch", "method") else ""
    return f"{setting_help()[key]}{valid} (default: {_default_text(_default(key))})"


def settings_epilog(width: int = 100) -> str:
    """Every --set key with its default, what it does and its valid values, from TrainConfig's
    fields, their annotations, the registries and the docstring table: generated, so it cannot drift."""
    hints = typing.get_type_hints(TrainConfig)
    keys = [k for k in TrainConfig.field_names() if k not in NOT_SETTABLE]
    entries = [(f"{k}={_default_text(_default(k))}", f"{setting_help()[k]} [{_valid_text(k, hints[k])}]") for k in keys]
    w = min(max(len(a) for a, _ in entries), 21)
    lines = ["run settings, each shown with its default: --set KEY=VALUE (repeatable)",
             "  VALUE is TOML (0.1, true, [1, 2], \"x\") or a bare word; none where a key says what none means", ""]
    for left, text in entries:
        first = f"  {left:{w}s}  " if len(left) <= w else f"  {left}\n" + " " * (w + 4)
        wrapped = textwrap.wrap(text, width - w - 4)
        lines.append(first + wrapped[0])
        lines += [" " * (w + 4) + rest for rest in wrapped[1:]]
    return "\n".join(lines)


def _train_config(args) -> TrainConfig:
    """The run's settings from train's own options and --set; one setting given both ways with
    different values (`--epochs 3 --set epochs=5`) is refused, not resolved by a silent precedence."""
    values, flags = {}, {}
    for key in TRAIN_OPTIONS:
        v = getattr(args, key, None)
        if v is not None:
            values[key], flags[key] = v, f"--{key.replace('_', '-')} {v}"
    for k, v in parse_assignments(args.set).items():
        if k in NOT_SETTABLE:
            raise UserError("method options go in the method spec, e.g. --method lw:rescale=false,order=top_down")
        if k in flags and not same_value(values[k], v):
            raise UserError(f"{flags[k]} and --set {k}={v} disagree; give {k} once")
        values[k] = v
    return TrainConfig.from_dict(values)


def cmd_train(args) -> int:
    cfg = _train_config(args)
    if args.dry_run:
        from .train.preview import dry_run
        print(dry_run(cfg, args.out))
        return 0
    if not args.out:
        raise UserError("train: --out DIR is required (or --dry-run to see the run without training)")
    from .speed.runtime import configure
    from .train.loop import run
    from .train.preview import RunHeader, finished_line
    configure(threads=cfg.threads, device=cfg.device)  # an entry point: the allocator on a CPU, TF32 on CUDA
    header = RunHeader(Path(args.out))
    result = run(cfg, Path(args.out), progress=not args.quiet, hooks=[header] if not args.quiet else [])
    if not args.quiet and not header.started:
        print(finished_line(Path(args.out), result))
    if result["status"] != "finished":
        print(f"{result['status']} at {result.get('diverged_at')}; see {args.out}/metrics.jsonl", file=sys.stderr)
        return 1
    print(f"test_acc {result['test_acc']:.4f}  val_acc {result['val_acc'] if result['val_acc'] is None else round(result['val_acc'], 4)}  "
          f"train_acc {result['train_acc']:.4f}  rounds {result['rounds']}  epochs {result['epochs_total']}  "
          + (f"in-round events {result['in_round_events']}  " if "in_round_events" in result else "")
          + f"{result['seconds']:.1f}s  -> {args.out}")
    return 0


def cmd_list(args) -> int:
    if args.what == "methods":
        from .core.method import METHODS as registry
        rows = {name: f"{cls.summary}" + (f"  [{cls.options_text()}]" if cls.options_text() else "")
                for name, cls in registry.items()}
    elif args.what == "protocols":
        from .protocols import PROTOCOLS as registry
        rows = {name: cls.summary for name, cls in registry.items()}
    elif args.what == "archs":
        from .models import ARCHS as registry
        rows = {name: info.description for name, info in registry.items()}
    elif args.what == "analyses":
        from .analyses import ANALYSES as registry
        rows = {name: analysis.summary for name, analysis in registry.items()}
    else:
        from .data import DATASETS as registry
        rows = {name: f"{info.num_classes:4d} classes  {info.train_size:6d} train  {info.test_size:6d} test  "
                      f"{info.resolution:3d}px  {info.description}" for name, info in registry.items()}
    width = {"methods": 10, "protocols": 11, "archs": 12, "analyses": 13}.get(args.what, 20)
    for name, text in rows.items():
        plugin = registry.plugin_of(name)
        print(f"{name:{width}s} {text}" + (f"  (plugin: {plugin})" if plugin else ""))
    if args.what == "methods":
        # stdout stays one row per registry name (scripts read it); the note goes to the terminal
        print("every method that re-draws also takes redraw=fresh (or init, rewind, peer) and rewind_epoch "
              "(with redraw=rewind: round 0's epoch whose weights are the source, default 1)", file=sys.stderr)
    return 0


def cmd_groups(args) -> int:
    from .train.preview import arch_groups
    model, groups = arch_groups(args.arch, args.dataset, args.width, args.resolution)
    print(f"{args.arch} (width {args.width:g}) as built for {args.dataset}: groups bottom to top; "
          f"LW's full budget is K-1 = {groups.K - 1} rounds")
    print(groups.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reinitlab", description="Weight reinitialization studies for CNNs on small image datasets.")
    p.add_argument("--version", action="version", version=f"reinitlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train one run and write its folder", epilog=settings_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train one run into --out; the same command again resumes it (or does nothing "
                                   "when it is finished).")
    for key, tp in TRAIN_OPTIONS.items():
        t.add_argument("--" + key.replace("_", "-"), dest=key, type=tp, metavar=key.upper(), help=_option_help(key))
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any run setting (repeatable); every key is "
                   "listed below")
    t.add_argument("--out", metavar="DIR", help="the run folder (required unless --dry-run)")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config, the split sizes and the "
                   "groups; train and write nothing")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=cmd_train)

    ls = sub.add_parser("list", help="list registered methods, protocols, archs, datasets or analyses (plugins "
                                     "included)")
    ls.add_argument("what", choices=["methods", "protocols", "archs", "datasets", "analyses"])
    ls.set_defaults(func=cmd_list)

    g = sub.add_parser("groups", help="show an architecture's parameter groups: modules, parameters, share",
                       description="The groups a run of ARCH on DATASET would reset: which modules each holds, its "
                                   "parameter count and share, and the module whose output is the group's output. "
                                   "For your own model: print(reinitlab.groups_of(model)).")
    g.add_argument("--arch", required=True, help=_option_help("arch"))
    g.add_argument("--dataset", default=TrainConfig.dataset, help="the data it is built for (input channels, "
                   f"classes, resolution; no data is read); default: {TrainConfig.dataset}")
    g.add_argument("--width", type=float, default=TrainConfig.width, help=f"width multiplier (default: {TrainConfig.width:g})")
    g.add_argument("--resolution", type=int, help="image side in pixels (default: the dataset's)")
    g.set_defaults(func=cmd_groups)

    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """reinitlab's own warnings as one line, like its errors; anything else as Python shows it."""
    if issubclass(category, ReinitlabWarning):
        print(f"reinitlab: warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


# The commands that resume what they were writing when they are run again.
RESUMING = ("train", "study")


def main(argv: list[str] | None = None) -> int:
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return args.func(args)
    except UserError as e:  # one line, whatever the message quotes (a parser's error may span lines)
        print("reinitlab: " + " ".join(part.strip() for part in str(e).splitlines() if part.strip()), file=sys.stderr)
        return e.exit_code
    except OSError as e:  # disk full, permissions, vanished files: the environment, not a bug
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        # only a command that resumes may promise it; the others say what failed and no more
        hint = ("; files written before this point are intact (run the same command again to resume)"
                if command in RESUMING else "")
        print(f"reinitlab: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("reinitlab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
