from . import preset


@preset
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
