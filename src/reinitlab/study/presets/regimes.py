from . import preset


@preset
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
