"""The prepared scripts run on machines the suite never sees (a lent GPU): check what they would
run, here, by parsing them with the CLI's own parser."""
import re
import shlex
from pathlib import Path

from reinitlab.bench.benchmark import parse_variant
from reinitlab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _bench_args(script: Path):
    text = script.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if re.search(r"-m reinitlab bench\b", ln))
    words = shlex.split(line.split("-m reinitlab", 1)[1].split("|")[0])
    return build_parser().parse_args(words)


def test_gpu_check_measures_both_precisions():
    # precision=auto resolves to one precision; the check exists to measure the other one beside it,
    # so it names both explicitly and stays right whatever auto picks on the machine.
    args = _bench_args(ROOT / "scripts" / "gpu_check.sh")
    precisions = {parse_variant(v).get("precision") for v in args.variant or []}
    assert {"fp32", "bf16"} <= precisions
