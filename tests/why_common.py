"""Synthetic study folders for the "why" section and the claims verdict: run folders with
result.json (per-round diagnostics included) and hand-written analysis.json files, so every table
and verdict can be checked against numbers computed by hand."""
import json
from pathlib import Path

from reinitlab.report.collect import Combo

GROUPS = ["stem", "block1", "block2", "block3", "head"]


def run_id(combo, method, seed):
    d, a, n, p = combo[:4]
    return f"{d}/{a}/n{n}/noise{p:g}/{method}/seed{seed}"


def write_run(root: Path, combo, method, seed, acc, numbers=None, arrays=None, diagnostics=None, rounds=None):
    """A finished run. `numbers`: analysis.json's flat numbers ("<analysis>.<key>"), grouped into
    per-analysis entries as analyses/runner.py writes them; None: no analysis.json. `diagnostics`:
    the final round's diagnostics (earlier rounds get the same values scaled down)."""
    d, a, n, p = combo[:4]
    folder = Path(root) / "runs" / run_id(combo, method, seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"dataset": d, "arch": a, "method": method, "train_size": n, "label_noise": p, "seed": seed,
           "epochs": 2, "rounds": 3, "width": 0.5}
    (folder / "config.json").write_text(json.dumps(cfg))
    if rounds is None:
        rounds = 0 if method in ("baseline", "long") else 3
    per_round = []
    for r in range(rounds + 1):
        row = {"round": r, "test_acc": acc, "epochs_total": 2 * (r + 1)}
        if diagnostics is not None:
            scale = (r + 1) / (rounds + 1)
            row["diagnostics"] = {k: v * scale for k, v in diagnostics.items()}
        per_round.append(row)
    res = {"status": "finished", "test_acc": acc, "val_acc": acc, "train_acc": 1.0, "rounds": rounds,
           "epochs_total": 2 * (rounds + 1), "seconds": 1.0, "per_round": per_round}
    (folder / "result.json").write_text(json.dumps(res))
    if numbers is not None:
        analyses = {}
        for key, v in numbers.items():
            name, _, k = key.partition(".")
            analyses.setdefault(name, {"numbers": {}, "arrays": {}, "info": {}, "seconds": 0.1})["numbers"][k] = v
        for name, arr in (arrays or {}).items():
            analyses.setdefault(name, {"numbers": {}, "arrays": {}, "info": {}, "seconds": 0.1})["arrays"] = arr
        doc = {"source": str(folder), "model_sha256": "0" * 16, "run": cfg, "numbers": dict(numbers),
               "analyses": analyses}
        (folder / "analysis.json").write_text(json.dumps(doc))
    return folder


def write_study(root: Path, name: str, methods: list[str]):
    (Path(root) / "study.json").write_text(json.dumps({"definition": {"name": name, "methods": methods}}))


# ---- one study with every topic, numbers chosen to be checked by hand -------------------------------
A = Combo("toy", "cnn", 100, 0.0)  # analysis.json on every run
B = Combo("toy", "cnn", 200, 0.0)  # no analysis.json: margins and norms from the final-round diagnostics
N = Combo("toy", "cnn", 100, 0.2)  # label noise: memorization
SEEDS = (0, 1, 2)
Q50 = {"baseline": [1.0, 1.5, 2.0], "long": [1.2, 1.2, 1.2], "lw": [2.0, 2.0, 3.5]}
FROB = {"baseline": [10.0, 11.0, 12.0], "long": [13.0, 13.0, 13.0], "lw": [9.0, 10.0, 11.0]}
INC = {"baseline": [0.20, 0.30, 0.40], "long": [0.25, 0.25, 0.25], "lw": [0.10, 0.20, 0.20]}  # sigma 0.05
MEM = {"baseline": [0.60, 0.70, 0.80], "long": [0.90, 0.90, 0.90], "lw": [0.30, 0.40, 0.50]}
B_Q50 = {"baseline": [0.5, 0.6, 0.7], "long": [0.8, 0.8, 0.8], "lw": [0.9, 1.0, 1.1]}


def numbers_for(combo, method, seed, with_memorization=False):
    i = SEEDS.index(seed)
    q = Q50[method][i]
    nums = {"margins.q05": q - 1, "margins.q25": q - 0.5, "margins.q50": q, "margins.negative_fraction": 0.05,
            "margins.spectral_normalized_q50": q * 1e-5, "margins.frobenius_normalized_q50": q * 1e-4,
            "norms.frobenius_total": FROB[method][i], "norms.log10_spectral_product": 2.0 + 0.1 * i,
            "norms.log10_spectral_product_raw": 1.5, "bound.log10_R": 5.0 + 0.1 * i,
            "flatness.loss": 0.3, "flatness.increase_sigma_0": 0.0, "flatness.increase_sigma_0.05": INC[method][i],
            "flatness.increase_sigma_0.1": 2 * INC[method][i], "flatness.hessian_top_eigenvalue": 100.0 + 10 * i}
    for k, g in enumerate(GROUPS):
        nums[f"probes.linear_acc.{g}"] = 0.5 + 0.1 * k + (0.05 if method == "lw" else 0.0)
        nums[f"probes.knn_acc.{g}"] = 0.45 + 0.1 * k
    if with_memorization:
        nums.update({"memorization.memorized_fraction": MEM[method][i], "memorization.noisy_true_label_acc": 0.3,
                     "memorization.clean_train_acc": 0.99})
    arrays = {"margins": {"margins": [q - 1 + 0.1 * j for j in range(21)],
                          "spectral_normalized": [(q - 1 + 0.1 * j) * 1e-5 for j in range(21)]},
              "flatness": {"sigmas": [0.0, 0.05, 0.1], "mean": [0.0, INC[method][i], 2 * INC[method][i]]},
              "probes": {"groups": GROUPS}}
    return nums, arrays


def make_why_study(root: Path) -> Path:
    root = Path(root)
    for method in ("baseline", "long", "lw"):
        for i, seed in enumerate(SEEDS):
            acc = {"baseline": 0.70, "long": 0.72, "lw": 0.74}[method] + 0.01 * i
            diag = {"frobenius_total": FROB[method][i], "log10_spectral_product": 2.0, "log10_spectral_complexity": 5.0,
                    "margin_q50": Q50[method][i], "normalized_margin_q50": Q50[method][i] * 1e-5}
            nums, arrays = numbers_for(A, method, seed)
            write_run(root, A, method, seed, acc, nums, arrays, diag)
            diag_b = {**diag, "margin_q50": B_Q50[method][i]}
            write_run(root, B, method, seed, acc + 0.05, None, None, diag_b)
            nums, arrays = numbers_for(N, method, seed, with_memorization=True)
            write_run(root, N, method, seed, acc - 0.1, nums, arrays, diag)
    write_study(root, "why-study", ["baseline", "long", "lw"])
    return root
