from . import preset

# Plain training (baseline), the cold start, and what is said to keep plasticity: L2-Init at Kumar
# et al.'s best strength for permuted MNIST with Adam, shrink-and-perturb, ReDo recycling after
# every task (at every stage start, as Kumar et al. recycle once per task), FIRE; and the plasticity
# methods: CBP as the permuted-MNIST config of Dohare et al. (rate 1e-4, maturity 100, adaptable
# contribution), SNR with its defaults, Hare & Tortoise reset at every task start (its trainer's counter
# resets one-epoch tasks after their only epoch).
METHODS = ["baseline", "scratch", "l2init:lam=0.01", "sp", "redo", "fire",
           "cbp:replacement_rate=0.0001,maturity=100,utility=adaptable_contribution", "snr",
           "hare:at_round_start=true"]


@preset
def continual() -> dict:
    """Does plain training lose the ability to learn new tasks when the task keeps changing, while
    L2-Init and the resets keep it (Dohare et al. 2024; Kumar et al. 2024)?

    Command: reinitlab study continual --out runs/continual && reinitlab report runs/continual
    Runs:    fashion-mnist-small (offline) x mlp (2 hidden layers of 100 units, Kumar et al.'s net)
             x the methods above x 3 seeds, Adam 1e-3 at a constant rate, batch 16, no validation
             split, in two variants: `permuted`, 200 tasks (a new pixel permutation each) of one
             epoch over all 5,000 training images; `relabel`, 20 tasks of 30 epochs over 500 images
             with new random labels each.
    Cost:    54 runs; the plan's estimate on the quiet 2-core AMD EPYC Zen 3 development CPU is 23m 10s
             (2 worker processes x 1 thread; fp32); measured 2026-12-07 on that CPU while it also ran
             the test suite and two other jobs (load 3-5): 1h 15m; a permuted run 1.5-14 min, a
             relabel run 0.5-7 min; the report ~10 s.
    Expect:  (measured, 3 seeds) plain training (baseline) loses plasticity: online accuracy over the
             last third of the permuted tasks minus the first third -2.7 points [-3.4, -1.9]; on random
             labels -35.3 [-36.4, -34.2], fitting 14% of the last task against 98% of the first.
             L2-Init, sp, ReDo, FIRE, SNR and scratch keep it (every interval includes 0, 91-98% of the
             last random-label task fitted); CBP at rate 1e-4 slows the loss without stopping it; Hare &
             Tortoise keeps it on permuted tasks, not on random labels. Results: docs/results.md.
    """
    return {
        "name": "continual",
        "description": "shifting tasks on fashion-mnist-small with an MLP 2x100, Adam constant: 200 permuted tasks "
                       "and 20 random-label tasks, plain training vs L2-Init and resets, 3 seeds",
        "datasets": ["fashion-mnist-small"],
        "archs": ["mlp"],
        "methods": list(METHODS),
        "label_noise": [0.0],
        "seeds": [0, 1, 2],
        "optimizer": "adam",
        "lr": 0.001,
        "lr_schedule": "constant",
        "warmup": 0.0,
        "weight_decay": 0.0,
        "batch_size": 16,
        "val_fraction": 0.0,
        "round_log": False,
        "norm_log": False,
        "variants": [
            {"protocol": "permuted", "train_sizes": ["full"], "epochs": 1, "rounds": 199},
            {"protocol": "relabel", "train_sizes": [500], "epochs": 30, "rounds": 19},
        ],
    }
