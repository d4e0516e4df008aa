"""Named studies. Each function returns the same mapping a TOML study file holds; its docstring is
what `reinitlab study --presets` prints: the command, what it costs, and what to expect.

Every preset sets `rounds` explicitly: all methods of one comparison must share the budget (R rounds
after round 0, E epochs each), and the `long` baseline then trains (R+1)*E epochs in one round, the
same compute as every reinit method. Left unset, R would default per architecture to its full LW
budget (K-1), which differs between architectures and makes the paper preset 4x more expensive.
A list of rounds (the budget preset) is one budget per value, each compute-matched the same way.
"""
from __future__ import annotations

from typing import Callable

ALL_METHODS = ["baseline", "long", "fc", "ke", "welsr", "dsd", "sp", "llf", "lw", "dnr"]


def quick() -> dict:
    """The main job: does reinitialization help a small CNN on little data, and is LW's gain more
    than extra epochs buy?

    Command: reinitlab study quick --out runs/quick && reinitlab report runs/quick   (make run)
    Runs:    fashion-mnist-small (embedded, offline) x cnn (width 0.5, batch 64) x train sizes 500
             and 2000 x baseline/long/fc/ke/llf/lw x 3 seeds = 36 runs; R=3 rounds after round 0
             (the cnn's full LW budget), E=11 epochs per round, so the reinit methods and `long`
             train 44 epochs, `baseline` 11.
    Cost:    measured 2026-11-27 on the quiet 2-core development CPU (2 worker processes x 1
             thread): the study 8m 02s (its plan had estimated 8m 24s), the report ~15 s; per run
             with 1 thread lw at 2000 examples ~44 s, at 500 ~18 s (the 10,000 test images are
             evaluated after every round). The plan printed at the start gives the machine's own
             estimate; a machine shared with other jobs takes longer. On one H200 GPU with
             --workers 4: 46 s (TF32/bf16 arithmetic: accuracies differ from the CPU's in the
             last digits, the conclusions do not).
    Expect:  (measured, 3 seeds) test accuracy 77-81% at 500 examples and 85-86% at 2000.
             `long` beats `baseline` by ~4 points at 500 and ~0.3 at 2000: most of what the reinit
             methods gain over `baseline` is their 4x epochs. Against `long`, fc and ke are within
             ±0.2 points, llf and lw about 1 point below at 500 and level at 2000. With 3 seeds and
             2 combinations the paired intervals are wide and the sign test cannot reach
             significance (its smallest two-sided p over 2 combinations is 0.5): this preset shows
             the pipeline and the direction of effects, not proof.
    """
    return {
        "name": "quick",
        "description": "fashion-mnist-small, cnn: 6 methods x 2 sizes x 3 seeds, compute-matched long baseline",
        "datasets": ["fashion-mnist-small"],
        "archs": ["cnn"],
        "methods": ["baseline", "long", "fc", "ke", "llf", "lw"],
        "train_sizes": [500, 2000],
        "label_noise": [0.0],
        "seeds": [0, 1, 2],
        "width": 0.5,
        "batch_size": 64,
        "rounds": 3,
        "epochs": 11,
    }


def paper() -> dict:
    """The source paper's grid: 12 benchmarks x 4 architectures x every method, at GPU scale.

    Command: reinitlab study paper --out runs/paper [--backend ray --address HEAD:6379]
    Runs:    mnist, fashion-mnist, kmnist, cifar10, cifar100, svhn, stl10, flowers102, dtd,
             oxford-pets, caltech101, eurosat (each at its registered resolution, full training
             set after the 10% validation split) x resnet50, vgg, mobilenetv2, resnet18 x
             baseline/long/fc/ke/welsr/dsd/sp/llf/lw/dnr x 3 seeds = 1440 runs; R=4, E=30, so every
             reinit method and `long` train 150 epochs, `baseline` 30.
    Archs:   ResNet-50, VGG and MobileNet(V2) are the paper's (ResNet-50 named, the others most
             likely); ResNet-18 is the fourth because KE, LLF and DNR all report on it, so our
             numbers can be set beside theirs; the plain cnn is too weak to stand for a real
             architecture. R=4 is VGG's full LW budget; the deeper nets spread their 4 LW rounds
             evenly over their blocks.
    Cost:    GPU only. On one H100-class GPU roughly 150-250 GPU-hours (ResNet-50 and MobileNetV2 on
             the 50k-image sets dominate); use --backend ray over several GPUs. On the 2-core CPU:
             months, do not.
    Needs:   the dataset files (`reinitlab data list` says which are found).
    Expect:  per SPEC 5 claims 1-2: LW above baseline and the other reinit methods in most
             combinations with small training sets; little or no gain on the large sets and for
             ResNet-50; `long` is the baseline to beat.
    """
    return {
        "name": "paper",
        "description": "12 benchmarks x 4 architectures x all methods (the source paper's grid)",
        "datasets": ["mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "svhn", "stl10", "flowers102",
                     "dtd", "oxford-pets", "caltech101", "eurosat"],
        "archs": ["resnet50", "vgg", "mobilenetv2", "resnet18"],
        "methods": list(ALL_METHODS),
        "train_sizes": ["full"],
        "label_noise": [0.0],
        "seeds": [0, 1, 2],
        "rounds": 4,
        "epochs": 30,
    }


def sizes() -> dict:
    """Where does LW's gain vanish as the training set grows? (the paper's decision tree split at
    about 35K examples)

    Command: reinitlab study sizes --out runs/sizes
    Runs:    fashion-mnist (the 60k IDX files; Debian: apt-get install dataset-fashion-mnist) x cnn x
             train sizes 500, 1000, 2000, 5000, 10000, 20000 and the full 54,000 left after the
             validation split x baseline/long/fc/llf/lw x 3 seeds = 105 runs; R=3, E=10 (40 epochs
             for the reinit methods and `long`, 10 for `baseline`).
    Cost:    about 10-12 hours on the 2-core CPU (2 workers x 1 thread); about 1 hour on one GPU.
    Expect:  LW (and the other reinit methods) minus `long` positive at 500-2000 examples and
             shrinking toward 0 as the size grows; the accuracy-vs-size plot shows where the curves
             meet.
    """
    return {
        "name": "sizes",
        "description": "fashion-mnist, cnn: training-set size from 500 to the full set",
        "datasets": ["fashion-mnist"],
        "archs": ["cnn"],
        "methods": ["baseline", "long", "fc", "llf", "lw"],
        "train_sizes": [500, 1000, 2000, 5000, 10000, 20000, "full"],
        "label_noise": [0.0],
        "seeds": [0, 1, 2],
        "rounds": 3,
        "epochs": 10,
    }


def claims() -> dict:
    """Do the paper's five claims (SPEC section 5) hold here? Every claim tested, with a verdict.

    Command: reinitlab study claims --out runs/claims && reinitlab report runs/claims
             any dataset or architecture: --set 'datasets=["cifar10"]' --set 'archs=["resnet18"]'
    Runs:    fashion-mnist-small (embedded, offline) x cnn (width 0.5, batch 64) x train sizes 500
             and 2000 (claim 2 needs >= 2 sizes) x label noise 0 and 0.2 (claim 5's memorization)
             x baseline/long/fc/ke/llf/lw x 4 seeds = 96 runs; R=3, E=8 (32 epochs for the reinit
             methods and long, 8 for baseline); every run analysed after training: margins, norms,
             bound, flatness, memorization, probes (about 30% of the compute, flatness half of it).
    Cost:    measured 2026-11-27 on the quiet 2-core development CPU (2 workers x 1 thread): the
             study 22m 58s (its plan had estimated 22m 40s), the report 14 s. `--dry-run` prints this machine's own estimate (training and analyses
             measured here; a busy machine measures slower). On one H200 GPU with --workers 6:
             1m 45s (measured 2026-11-27; planned 2m 00s).
    Expect:  (measured, 4 seeds, CPU) claim 1 not supported: LW beats baseline by +2.15 points
             [+0.89, +3.41] and llf by +0.86, but trails fc (-0.44) and ke (-0.75) and the
             compute-matched long (-1.02 [-1.95, -0.09]). Claim 2 supported where testable: LW's gain
             over baseline is 2.71 points smaller at 2000 than at 500 examples. Claim 3 not
             supported: larger median margins (+2.43) at equal Frobenius norm, but spectral
             complexity grows more (log10 R +0.34), so normalized margins do not improve. Claim 4
             not supported: no flatness difference at any sigma. Claim 5 not supported against
             baseline (which trains 4x fewer epochs and memorizes little) but supported against
             long: 30 points less memorization, +0.66 points lower-layer probe accuracy. The
             compute-matched comparison with long is the one that separates reinitialization from
             extra epochs.
    Verdict: the report ends in a table with, per claim, each test's pooled seed-paired effect LW -
             baseline, its 95% interval and p, and supported / not supported / not testable; the
             same tests against `long` sit beside it. Claim 2's "vanish at ~35K examples" is not
             testable at these sizes (the embedded set has 4,500 training images after the
             validation split): use the sizes preset, or --set train_sizes on a larger dataset.
    """
    return {
        "name": "claims",
        "description": "the paper's five claims (SPEC 5): fashion-mnist-small, cnn, 6 methods x sizes 500/2000 x "
                       "label noise 0/0.2 x 4 seeds, every analysis on every run",
        "datasets": ["fashion-mnist-small"],
        "archs": ["cnn"],
        "methods": ["baseline", "long", "fc", "ke", "llf", "lw"],
        "train_sizes": [500, 2000],
        "label_noise": [0.0, 0.2],
        "seeds": [0, 1, 2, 3],
        "width": 0.5,
        "batch_size": 64,
        "rounds": 3,
        "epochs": 8,
        "analyses": ["margins", "norms", "bound", "flatness", "memorization", "probes"],
    }


def budget() -> dict:
    """At which compute budgets does LW beat training longer? (the paper: "the number of
    reinitialized layers may vary depending on the available compute budget")

    Command: reinitlab study budget --out runs/budget && reinitlab report runs/budget
    Runs:    fashion-mnist-small (embedded, offline) x cnn (width 0.5, batch 64) x train size 500
             (the small-data regime the paper's takeaway is about; 2000 examples cost 4x per run) x
             R = 1, 2 and 3 rounds after round 0 (the cnn has K-1 = 3 blocks to reset layer by
             layer) x baseline/long/fc/ke/llf/lw x 5 seeds = 90 runs; E=8 epochs per
             round, so at R the reinit methods and `long` train (R+1)*8 = 16, 24 and 32 epochs,
             `baseline` 8 (baseline ignores R: its three runs per seed are one computation, kept so
             that every budget is a complete paired set).
    Cost:    measured 2026-12-02 on the 2-core development CPU (AMD EPYC Zen 4; 2 workers x 1
             thread): 30m 34s while three test suites shared its cores; the plan's estimate from
             this machine's probes (--dry-run), which assumes the cores are free, is 9m 00s.
    Expect:  (measured, 5 seeds) the budget frontier: LW loses to the compute-matched `long` at
             every budget: -2.79 [-3.55, -2.04] points at R=1 (16 epochs), -0.89 [-1.44, -0.34] at
             R=2, -1.91 [-2.62, -1.20] at R=3; it beats `baseline` at all three (+1.28, +4.12,
             +3.45). ke is level with long at R=3 (-0.60 [-1.43, +0.23]), every other method
             trails it. More rounds do not help LW steadily here: 75.64 -> 78.48 -> 77.81.
    """
    return {
        "name": "budget",
        "description": "fashion-mnist-small, cnn: 6 methods at R = 1, 2, 3 x 500 examples x 5 seeds, long "
                       "compute-matched at every R",
        "datasets": ["fashion-mnist-small"],
        "archs": ["cnn"],
        "methods": ["baseline", "long", "fc", "ke", "llf", "lw"],
        "train_sizes": [500],
        "label_noise": [0.0],
        "seeds": [0, 1, 2, 3, 4],
        "width": 0.5,
        "batch_size": 64,
        "rounds": [1, 2, 3],
        "epochs": 8,
    }


def tuned() -> dict:
    """Does LW still help once every method gets its best weight decay and augmentation, chosen on
    validation data? And is it less sensitive to them? (Zaidi et al. 2022)

    Command: reinitlab study tuned --out runs/tuned && reinitlab report runs/tuned
    Runs:    fashion-mnist-small (embedded, offline) x cnn (width 0.5, batch 64) x train size 500 x
             weight decay 5e-4 and 5e-3 x augmentation none and flip+crop x baseline/long/fc/lw x
             4 seeds = 64 runs; R=3, E=8 (32 epochs for the reinit methods and `long`, 8 for
             baseline). `tune` names the grid's axes: per method and seed the report picks the
             setting with the best validation accuracy (the default 10% validation split; test
             accuracy is never used to choose) and compares the picked runs seed-paired.
    Cost:    measured 2026-12-02 on the 2-core development CPU (AMD EPYC Zen 4; 2 workers x 1
             thread): 15m 53s while two test suites shared its cores; the plan's estimate from this
             machine's probes (--dry-run) is 10m 00s.
    Expect:  (measured, 4 seeds) validation picks augment=none for every method and seed; tuned
             lw - tuned baseline +3.56 [+2.57, +4.56] points, tuned lw - tuned long -2.10 [-2.94,
             -1.26]; tuned fc is level with tuned long (-0.75 [-1.54, +0.05]). Spread of test
             accuracy over the grid (max - min): baseline 5.43, fc 4.65, lw 3.84, long 2.92 points,
             so LW is less sensitive than the baseline but not than long.
    """
    return {
        "name": "tuned",
        "description": "fashion-mnist-small, cnn: weight decay x augmentation grid, baseline/long/fc/lw, "
                       "validation-selected",
        "datasets": ["fashion-mnist-small"],
        "archs": ["cnn"],
        "methods": ["baseline", "long", "fc", "lw"],
        "train_sizes": [500],
        "label_noise": [0.0],
        "seeds": [0, 1, 2, 3],
        "width": 0.5,
        "batch_size": 64,
        "rounds": 3,
        "epochs": 8,
        "weight_decay": [5e-4, 5e-3],
        "augment": ["none", "flip+crop"],
        "tune": ["weight_decay", "augment"],
    }


def converged() -> dict:
    """The paper's regime: every round trains until convergence ("fine-tune the entire model until
    convergence") instead of a fixed short E.

    Command: reinitlab study converged --out runs/converged && reinitlab report runs/converged
    Runs:    fashion-mnist-small (embedded, offline) x cnn (width 0.5, batch 64) x train size 500 x
             baseline/long/fc/ke/llf/lw x 4 seeds = 24 runs; R=3. A round ends once
             training accuracy has been 100% for 3 epochs in a row (patience 3), at the latest after
             30 epochs (the cap, which also sets the round's learning-rate schedule); `long` is one
             round capped at (R+1)*30 = 120 epochs that ends the same way, so it is matched on the
             cap, not on the epochs the reinit methods actually train (results.csv has both).
    Cost:    measured 2026-12-02 on the 2-core development CPU (AMD EPYC Zen 4; 2 workers x 1
             thread): 4m 27s (one other job on the cores); the plan's estimate (--dry-run), 7m 55s,
             is an upper bound: it counts every round to its cap.
    Expect:  (measured, 4 seeds) rounds end at 100% training accuracy long before the cap:
             baseline trains 19-21 epochs, long 20-22, lw 66-69. LW is level with long (-0.31
             [-0.77, +0.15] points) and with baseline (+0.47 [-0.00, +0.95]); only long beats
             baseline (+0.78 [+0.16, +1.40]). Trained to convergence every method is within about
             1 point: the gains the fixed-E presets show are mostly extra epochs.
    """
    return {
        "name": "converged",
        "description": "fashion-mnist-small, cnn: 6 methods x 500 examples x 4 seeds, every round until 100% "
                       "training accuracy for 3 epochs (cap 30)",
        "datasets": ["fashion-mnist-small"],
        "archs": ["cnn"],
        "methods": ["baseline", "long", "fc", "ke", "llf", "lw"],
        "train_sizes": [500],
        "label_noise": [0.0],
        "seeds": [0, 1, 2, 3],
        "width": 0.5,
        "batch_size": 64,
        "rounds": 3,
        "epochs": 30,
        "patience": 3,
    }


def regimes() -> dict:
    """Where does LW beat the compute-matched `long`, if anywhere? Two real datasets, three sizes
    and two noise levels make 12 combinations: enough for the report's decision tree of LW's gain.

    Command: reinitlab study regimes --out runs/regimes && reinitlab report runs/regimes
    Runs:    fashion-mnist-small (28 px) and digits (16 px), both offline, x cnn (width 0.5, batch
             64) x train sizes 250, 500, 1000 x label noise 0 and 0.2 x baseline/long/lw x 4 seeds
             = 144 runs; R=2, E=8 (24 epochs for lw and `long`, 8 for baseline).
    Cost:    measured 2026-12-02 on the 2-core development CPU (AMD EPYC Zen 3, AVX2, fp32; 2
             workers x 1 thread, a quiet machine): 8m 58s, planned 9m 52s (--dry-run); the report
             27 s.
    Expect:  (measured, 4 seeds; lw - long, points, 95% t-intervals) LW trails `long` on small
             fashion-mnist-small (-3.08 [-4.59, -1.58] at 250, -1.18 [-1.97, -0.40] at 500 clean)
             and on clean digits at 1,000 (-0.50 [-0.91, -0.09]), is level in 6 of the 12
             combinations, and beats it with 20% label noise at 1,000 examples on both datasets
             (+1.59 [+1.24, +1.93] fashion, +3.25 [+0.25, +6.25] digits), where `long` memorizes
             the noisy labels: there the 8-epoch baseline beats `long` on both and LW on digits
             (lw - baseline -0.97 [-2.16, +0.22] fashion, -3.65 [-5.88, -1.42] digits). The tree
             of lw - long splits first on
             training size (about 354 examples: -1.71 points below, +0.38 above), then on label
             noise (+1.34 with noise, -0.59 without) and, below 354, on the dataset.
    """
    return {
        "name": "regimes",
        "description": "fashion-mnist-small and digits, cnn: baseline/long/lw x sizes 250/500/1000 x label "
                       "noise 0/0.2 x 4 seeds",
        "datasets": ["fashion-mnist-small", "digits"],
        "archs": ["cnn"],
        "methods": ["baseline", "long", "lw"],
        "train_sizes": [250, 500, 1000],
        "label_noise": [0.0, 0.2],
        "seeds": [0, 1, 2, 3],
        "width": 0.5,
        "batch_size": 64,
        "rounds": 2,
        "epochs": 8,
    }


PRESETS: dict[str, Callable[[], dict]] = {f.__name__: f for f in (quick, paper, sizes, claims, budget, tuned,
                                                                   converged, regimes)}
