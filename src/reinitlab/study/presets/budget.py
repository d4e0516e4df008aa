from . import preset


@preset
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
