from . import preset


@preset
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
