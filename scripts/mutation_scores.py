"""The mutation score per module after `mutmut run` (make mutation; docs/mutation.md).

Reads mutmut's result files (mutants/**/*.py.meta) and prints, per module: mutants, killed,
survived, equivalent (the survivors listed in scripts/mutation_equivalent.toml with why they cannot
be killed), without tests (no selected test reaches the function), not yet run, and the score:
killed / (killed + survived - equivalent). train/engine.py counts its `lr_at` only: its other
functions belong to the training loop, guarded by the slow end-to-end tests, not this selection.
`--survivors` lists the surviving mutants that are not explained as equivalent.
"""
import json
import sys
from collections import Counter
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
ONLY = {"reinitlab.train.engine": {"lr_at"}}
KILLED, SURVIVED, NO_TESTS, NOT_RUN = {1, 3, 36, 24, -24, 152, 255}, {0}, {5, 33}, {None}


def split(key: str) -> tuple[str, str]:
    """"reinitlab.report.stats.x_mean_se__mutmut_5" -> ("reinitlab.report.stats", "mean_se")."""
    head = key.rsplit("__mutmut_", 1)[0]
    module, _, func = head.rpartition(".x")
    return module, func.lstrip("_ǁ").replace("ǁ", ".")


def results(root: Path = ROOT) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        out.update(json.loads(meta.read_text())["exit_code_by_key"])
    return {k: v for k, v in out.items() if split(k)[1] in ONLY.get(split(k)[0], {split(k)[1]})}


def equivalent(root: Path = ROOT) -> dict[str, str]:
    path = root / "scripts" / "mutation_equivalent.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def table(codes: dict[str, int | None], equiv: dict[str, str]) -> list[tuple]:
    by: dict[str, Counter] = {}
    for key, code in codes.items():
        c = by.setdefault(split(key)[0], Counter())
        c["mutants"] += 1
        if code in KILLED:
            c["killed"] += 1
        elif code in SURVIVED:
            c["survived"] += 1
            c["equivalent"] += key in equiv
        elif code in NO_TESTS:
            c["no tests"] += 1
        elif code in NOT_RUN:
            c["not run"] += 1
        else:
            c["other"] += 1
    rows = []
    for module, c in sorted(by.items()):
        tested = c["killed"] + c["survived"] - c["equivalent"]
        score = f"{100 * c['killed'] / tested:.1f}%" if tested else "-"
        rows.append((module, c["mutants"], c["killed"], c["survived"], c["equivalent"], c["no tests"], c["not run"],
                     score))
    return rows


def main(argv: list[str]) -> int:
    codes, equiv = results(), equivalent()
    if not codes:
        print("no mutmut results under mutants/: run `make mutation` first")
        return 1
    head = ("module", "mutants", "killed", "survived", "equivalent", "no tests", "not run", "score")
    rows = table(codes, equiv)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    if "--survivors" in argv:
        for key, code in sorted(codes.items()):
            if code in SURVIVED and key not in equiv:
                print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
