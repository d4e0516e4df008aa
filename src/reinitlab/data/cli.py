"""`reinitlab data list | info | prepare`: thin wrappers over the registry, prepare and grid."""
from __future__ import annotations

from pathlib import Path

import torch


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="datasets: list them, inspect one, download and cache one")
    sub = p.add_subparsers(dest="data_command", required=True, parser_class=type(p))

    ls = sub.add_parser("list", help="registered datasets: classes, sizes, resolution, found locally or not")
    ls.add_argument("--data-dir", help="also look here (and in DIR/<name>) for each dataset's files")
    ls.set_defaults(func=cmd_list)

    info = sub.add_parser("info", help="one dataset: files, split sizes, class counts; optionally a PNG of samples")
    info.add_argument("name", help="a registered name, folder:PATH or npz:PATH")
    info.add_argument("--data-dir")
    info.add_argument("--resolution", type=int)
    info.add_argument("--grid", metavar="PATH.png", help="write a grid of sample training images per class")
    info.set_defaults(func=cmd_info)

    prep = sub.add_parser("prepare", help="download (with checksums) or find the files, unpack, build the cache")
    prep.add_argument("name")
    prep.add_argument("--data-dir", help="where the files are or go (default: the cache folder, $REINITLAB_DATA)")
    prep.add_argument("--resolution", type=int, help="build the cache at this resolution (default: the dataset's)")
    prep.add_argument("--no-download", dest="download", action="store_false", help="only use files already there")
    prep.set_defaults(func=cmd_prepare)


def cmd_list(args) -> int:
    from . import DATASETS
    d = Path(args.data_dir).expanduser() if args.data_dir else None
    print(f"{'name':20s} {'classes':>7s} {'train':>7s} {'val':>6s} {'test':>7s} {'res':>5s}  {'local':5s}  description")
    for name, info in DATASETS.items():
        local = "yes" if info.available(d) else "no"
        val = str(info.val_size) if info.val_size else "-"
        print(f"{name:20s} {info.num_classes:7d} {info.train_size:7d} {val:>6s} {info.test_size:7d} "
              f"{info.resolution:3d}px  {local:5s}  {info.description}")
    print("your own data: folder:PATH (one sub-folder per class; optional train/, val/, test/) or npz:PATH "
          "(x_train, y_train, x_test, y_test)")
    return 0


def cmd_info(args) -> int:
    from .grid import sample_grid
    from .registry import cache_file, check_dataset, load_info
    info = check_dataset(args.name)
    d = Path(args.data_dir).expanduser() if args.data_dir else None
    bundle = load_info(info, d, args.resolution)
    print(f"{info.name}: {info.description}")
    if info.layout:
        print(f"files: {info.layout}")
    src = bundle.source
    print(f"source: {', '.join(src.get('files', []))}  fingerprint {src.get('fingerprint')}")
    if src.get("split"):
        print(f"split: {src['split']}")
    if info.cache:
        print(f"cache: {cache_file(info, info.locate(d), bundle.resolution)}")
    print(f"{bundle.num_classes} classes, {bundle.channels} channel{'s' if bundle.channels > 1 else ''}, "
          f"{bundle.resolution} px")
    splits = bundle.splits()
    counts = {s: torch.bincount(y, minlength=bundle.num_classes).tolist() for s, _, y in splits}
    width = max(12, *(len(c) for c in bundle.classes)) if bundle.classes else 12
    print(f"{'class':{width}s} " + " ".join(f"{s:>7s}" for s, _, _ in splits))
    for c, name in enumerate(bundle.classes):
        print(f"{name:{width}s} " + " ".join(f"{counts[s][c]:7d}" for s, _, _ in splits))
    print(f"{'total':{width}s} " + " ".join(f"{len(y):7d}" for _, _, y in splits))
    if args.grid:
        print(f"sample grid: {sample_grid(bundle, Path(args.grid))}")
    return 0


def cmd_prepare(args) -> int:
    from .prepare import prepare
    bundle, path, seconds = prepare(args.name, args.data_dir, args.resolution, allow_download=args.download)
    val = f" / {len(bundle.y_val)} val" if bundle.y_val is not None else ""
    where = f"; cache {path}" if path else ""
    print(f"{bundle.name}: ready: {len(bundle.y_train)} train{val} / {len(bundle.y_test)} test, "
          f"{bundle.num_classes} classes, {bundle.resolution} px (loaded in {seconds:.1f}s){where}")
    return 0
