"""reinitlab.lightning.ReinitCallback with a real lightning.Trainer on the CPU: a reset changes exactly
what the method says and gives a fresh optimizer and schedule, a fit resumed from a checkpoint ends
where an uninterrupted one does, and LW (and an in-round method, and a loss-term method) trained
through the callback ends bit-identical to reinitlab's own loop on the same model, data, seed and
schedule."""
import csv
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import synthetic_bundle

lightning = pytest.importorskip("lightning", reason="the lightning extra (in the test extras) is not installed")
L = lightning.pytorch

from reinitlab import TrainConfig  # noqa: E402
from reinitlab.lightning import ReinitCallback  # noqa: E402
from reinitlab.train.engine import Engine, lr_at  # noqa: E402
from reinitlab.train.loop import run_keeping_engine  # noqa: E402
from reinitlab.train.resolve import prepare  # noqa: E402
from reinitlab.util.seeding import generator  # noqa: E402

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class EpochBatches(torch.utils.data.Sampler):
    """reinitlab's batch order: epoch e of round r draws a permutation from (seed, "order", r, e),
    whole batches only. Lightning tells the epoch (set_epoch, also on a resumed fit), to the
    `sampler` of a batch sampler: here itself."""

    def __init__(self, n, batch, epochs_per_round, seed=0):
        self.n, self.batch, self.epr, self.seed, self.epoch = n, batch, epochs_per_round, seed, 0
        self.sampler = self

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):  # a generator: the order is drawn at the first batch, after set_epoch
        e = self.epoch
        perm = torch.randperm(self.n, generator=generator(self.seed, "order", e // self.epr, e % self.epr))
        for i in range(len(self)):
            yield perm[i * self.batch:(i + 1) * self.batch].tolist()

    def __len__(self):
        return self.n // self.batch


class Net(L.LightningModule):
    """Any network, trained as reinitlab's loop trains: SGD (Nesterov), a cosine schedule per round."""

    def __init__(self, net, x, y, epochs_per_round, batch=16, lr=0.05, seed=0):
        super().__init__()
        self.net, self.x, self.y = net, x, y
        self.epr, self.batch, self.lr, self.seed = epochs_per_round, batch, lr, seed
        self.configured = 0

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, i):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(self.x, self.y)
        return torch.utils.data.DataLoader(data, batch_sampler=EpochBatches(len(self.y), self.batch, self.epr, self.seed))

    def configure_optimizers(self):
        self.configured += 1
        opt = torch.optim.SGD(self.net.parameters(), lr=self.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        total = self.epr * (len(self.y) // self.batch)
        # lr_at(s, total, 1.0, 0) * lr rounds as lr_at(s, total, lr, 0): the factor 0.5 in it is exact
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, 1.0, 0.0))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def data():
    b = synthetic_bundle()
    x = (b.x_train.float() - 127.5) / 64
    return x, b.y_train


def trainer(tmp_path, epochs, callbacks, **kw):
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks, logger=kw.pop("logger", False),
                     enable_checkpointing=kw.pop("enable_checkpointing", False), enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                     default_root_dir=tmp_path, **kw)


class Spy(L.Callback):
    """The weights (and buffers) as round 0 ended and as round 1 begins (after the ReinitCallback
    before it in the list), and the optimizer each time."""

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == 0:
            self.before = {k: v.clone() for k, v in module.net.state_dict().items()}
            self.opt_before = trainer.optimizers[0]

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            self.after = {k: v.clone() for k, v in module.net.state_dict().items()}
            self.opt_after = trainer.optimizers[0]
            self.lr_after = trainer.optimizers[0].param_groups[0]["lr"]
            self.state_after = dict(trainer.optimizers[0].state)


def test_a_reset_changes_exactly_the_intended_parameters_and_renews_optimizer_and_schedule(tmp_path):
    x, y = data()
    module = Net(small_net(), x, y, epochs_per_round=1)
    spy = Spy()
    cb = ReinitCallback("fc", rounds=1, epochs_per_round=1, module="net")
    t = trainer(tmp_path, 2, [cb, spy], logger=L.loggers.CSVLogger(tmp_path, name="log"))
    t.fit(module)
    head = {"8.weight", "8.bias"}  # groups of the automatic rule: stem (conv+bn), block1 (conv+bn), head
    assert set(cb.reinit.groups.params["head"]) == head
    for k, v in spy.before.items():
        changed = not torch.equal(v, spy.after[k])
        assert changed == (k in head), f"{k}: changed={changed}"
    assert cb.history[0]["redrawn_fraction"] == {"stem": 0.0, "block1": 0.0, "head": 1.0}
    # a new optimizer (no momentum carried over) at the start of its schedule
    assert spy.opt_after is not spy.opt_before and not spy.state_after
    assert module.configured == 2 and spy.lr_after == pytest.approx(module.lr)
    rows = list(csv.DictReader(open(tmp_path / "log" / "version_0" / "metrics.csv")))
    logged = [r for r in rows if r.get("reinit/round")]
    assert [float(r["reinit/round"]) for r in logged] == [1.0] and float(logged[0]["reinit/redrawn_fraction/head"]) == 1.0


def test_max_epochs_must_match_the_rounds(tmp_path):
    x, y = data()
    with pytest.raises(ValueError, match=r"max_epochs=4"):
        trainer(tmp_path, 3, [ReinitCallback("lw", rounds=1, epochs_per_round=2, module="net")]).fit(
            Net(small_net(), x, y, 2))


def final_state(module):
    return {k: v.clone() for k, v in module.net.state_dict().items()}


@pytest.mark.parametrize("resume_after", [2, 3])  # at the round boundary (the reset follows), inside round 1
def test_a_resumed_fit_equals_an_uninterrupted_one(tmp_path, resume_after):
    """LW with its standardization: the checkpoint holds the standardization buffers and the
    reinitializer's state, which must be in place before Lightning loads the weights."""
    x, y = data()
    ckpt = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_top_k=-1, every_n_epochs=1,
                                       filename="{epoch}")
    whole = Net(small_net(), x, y, epochs_per_round=2)
    cb = ReinitCallback("lw", rounds=1, epochs_per_round=2, module="net")
    trainer(tmp_path, 4, [cb, ckpt], enable_checkpointing=True).fit(whole)
    assert cb.reinit.standardized  # LW's frozen standardization is in the model
    resumed = Net(small_net(), x, y, epochs_per_round=2)
    cb2 = ReinitCallback("lw", rounds=1, epochs_per_round=2, module="net")
    trainer(tmp_path, 4, [cb2]).fit(resumed, ckpt_path=tmp_path / "ck" / f"epoch={resume_after - 1}.ckpt")
    want, got = final_state(whole), final_state(resumed)
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    assert cb2.history == cb.history and len(cb.history) == 1


LOOP = dict(width=0.25, epochs=2, rounds=1, batch_size=16, eval_batch_size=64, threads=1, channels_last=False,
            warmup=0.0, precision="fp32", round_log=False, norm_log=False)


@pytest.mark.parametrize("method", ["lw", "swr:every=2,maturity=1,rate=0.05", "l2init:lam=0.01"])
def test_the_callback_trains_as_reinitlabs_own_loop(tmp_path, method):
    """Same registry model, initial weights, batches, seed and per-round schedule: the final weights
    are bit-identical. (The loop's warm-up is set to 0 here only because LambdaLR multiplies the peak
    by a factor, which rounds differently from the loop's peak * (step + 1) / w in the last bit.)"""
    bundle = synthetic_bundle()
    cfg = TrainConfig(method=method, **LOOP)
    _, loop_eng = run_keeping_engine(cfg, None, progress=False, bundle=bundle)
    eng = Engine(prepare(cfg, bundle))  # the same initial model and the same normalized tensors
    module = Net(eng.model, eng.x_train, eng.y_train, epochs_per_round=cfg.epochs, batch=cfg.batch_size,
                 lr=cfg.lr, seed=cfg.seed)
    cb = ReinitCallback(method, rounds=1, epochs_per_round=cfg.epochs, module="net", seed=cfg.seed,
                        data=eng.stat_batches)
    trainer(tmp_path, 2 * cfg.epochs, [cb]).fit(module)
    want, got = loop_eng.model.state_dict(), module.net.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    assert cb.history == loop_eng.reinit.history
    assert cb.reinit.in_round_log == loop_eng.reinit.in_round_log
