"""Self-Normalized Resets (Farias & Jozefiak, ICLR 2025): a unit that stays silent for much longer
than it usually does is reset.

Per unit (units.py: the units whose activations the next layer reads), counted in training samples:
after every optimizer step, from that step's forward pass (the weights before the step, as the SNR
code measures firing on the batch it then trains on),

  1. the unit *fires* when any of its activations (the next layer's input, after the ReLU and any
     pooling) in the batch is > 0. A firing unit records its age (the samples since it last fired) in
     its histogram of inter-firing gaps and its age becomes 0; a silent one ages by the batch size;
  2. a unit whose age reached its threshold tau is reset (incoming weights re-drawn, bias 0, the
     following norm layer's elements and running statistics from the re-draw source, outgoing weights
     0, the optimizer state of all of these cleared); its age at the reset is recorded as a gap and
     becomes 0;
  3. every `adapt_every` optimizer steps (after that step's resets) each unit's tau adapts: q is the
     smallest recorded gap of at least one batch at which the unit's gap distribution reaches
     `percentile` (1 sample when nothing was recorded: a unit that fires in every batch); tau <- q when
     q < tau, else tau <- expansion * tau; tau is clipped to [batch size, tau_max] and the histogram
     cleared. A unit that always fires thus ends at tau = one batch: one silent batch resets it.

Why this schedule. The SNR code adapts tau after every 16 tasks of its permuted-MNIST stream and the
FIRE authors' PyTorch port after every 16 optimizer steps. reinitlab's rounds are few (a study has 1-4)
and need not be tasks, so adapting per round would leave tau at its initial value in every study;
counting steps, as the port does, adapts at the same rate in every protocol. `adapt_every=` the steps
of 16 tasks gives the SNR code's rate. The histogram bins are one batch wide (a silent unit ages a batch
at a time, so gaps are multiples of the batch size: exact for a fixed batch size). Gaps above tau_max
are not recorded (the SNR code's histogram ends there). tau starts at tau_init (the port: tau_max / 2;
the SNR code takes it as an argument). Round starts reset nothing; ages, thresholds and histograms
carry across rounds (and live in the checkpoint).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.method import Cadence, Fidelity, ResetContext, register
from ..core.reset import ResetEvent
from ..util.errors import UserError
from .base import in_range
from .units import UnitLayer, UnitMethod, replacement_event


@dataclass
class SNROptions:
    percentile: float = 0.99  # quantile of a unit's gaps between firings that tau adapts to
    expansion: float = 2.0  # tau grows by this factor when the quantile is not below it
    adapt_every: int = 16  # optimizer steps between adaptations of tau
    tau_init: int = 10000  # initial threshold, in samples
    tau_max: int = 20000  # largest threshold, in samples; the gap histogram ends here

    def validate(self):
        in_range("percentile", self.percentile, 0.0, 1.0, lo_open=True)
        in_range("expansion", self.expansion, 1.0, 1e6)
        in_range("adapt_every", self.adapt_every, 1, 10**9)
        in_range("tau_max", self.tau_max, 1, 10**9)
        in_range("tau_init", self.tau_init, 1, 10**9)
        if self.tau_init > self.tau_max:
            raise UserError(f"tau_init={self.tau_init} is out of range: expected an integer in [1, tau_max={self.tau_max}]")


@dataclass
class _Layer:
    age: torch.Tensor  # samples since the unit last fired (int64)
    tau: torch.Tensor  # its reset threshold, in samples (int64)
    hist: torch.Tensor  # (units, bins): recorded gaps, bin k = gaps of k batches (int64)
    bin: int  # samples per bin: the batch size when the histogram was made
    batch: int  # samples of the latest step

    def state(self) -> dict:
        return {"age": self.age.clone(), "tau": self.tau.clone(), "hist": self.hist.clone(), "bin": self.bin,
                "batch": self.batch}


@register
class SNR(UnitMethod):
    name = "snr"
    summary = "Self-Normalized Resets: reset a unit silent for longer than the percentile of its own firing gaps"
    Options = SNROptions
    fidelity = (
        Fidelity("tau adapts every `adapt_every=16` optimizer steps, after that step's resets",
                 "the SNR code: every 16 tasks, at a task's end; the FIRE port: every 16 steps, before that "
                 "step's resets",
                 "`adapt_every=` the steps of 16 tasks"),
        Fidelity("percentile 0.99 (the SNR code's default), tau_init 10000, tau_max 20000 (the FIRE port's)",
                 "the FIRE port: percentile 0.9 (its config: 0.98); the SNR code: tau_init given by the caller",
                 "the options `percentile`, `tau_init`, `tau_max`"),
        Fidelity("gap histogram in bins of one batch", "one bin per sample age",
                 "same with a fixed batch size"),
        Fidelity("tau's lower clip: the step's batch size", "the SNR code: 100 (its batch size); the FIRE port: "
                 "the samples in its 512-sample activation window", "same at batch size 100"),
        Fidelity("a silent unit ages by the step's batch size", "the FIRE port: by the size of its 512-sample "
                 "window every step (up to 512 per step whatever the batch)", "the SNR code's rule; the port's "
                 "not offered"),
        Fidelity("firing read at the next layer's input (after norm, ReLU, pooling); the norm layer's "
                 "elements and running statistics reset with the unit",
                 "the layer's own output before the ReLU (> 0 is the same test); no norm layers in its models",
                 "same on norm-free models without pooling"),
        Fidelity("SGD momentum and Adam's moments of reset elements cleared; Adam's per-tensor step kept",
                 "Adam's mu and nu zeroed, optax's single count kept; plain SGD has no state", "same rule"),
    )

    def __init__(self, **options):
        super().__init__(**options)
        self.layers: dict[str, _Layer] = {}
        self.steps = 0
        self.reset_total = 0

    def cadence(self) -> Cadence:
        # a unit may be reset after any step once it has been silent for its threshold (in samples,
        # from tau_init): how soon depends on the data and the batch, so no run is refused; the
        # count in metrics.jsonl and result.json shows whether it acted
        return Cadence("step", 1, "tau_init")

    @property
    def in_round(self) -> bool:
        return True

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(description=f"no reset at the round start (snr acts every step): {self.reset_total} "
                                      f"units reset so far in {len(self.units)} unit layers")

    @torch.no_grad()
    def step_event(self, ctx: ResetContext) -> ResetEvent | None:
        if self.tap is None:
            raise ValueError("snr watches training through forward hooks: apply it with a Reinitializer")
        inputs = self.tap.take()
        self.steps += 1
        replaced = {}
        for u in self.units:
            if u.name not in inputs:
                continue
            x = inputs[u.name]
            st = self._layer(u, x)
            st.batch = x.shape[0]
            h = u.unit_view(x)
            # any value > 0, as a sum of the positive parts: a max over few channels is a slow reduction
            fired = h.clamp_min(0).sum([d for d in range(h.dim()) if d != 1]) > 0
            self._record(st, fired)
            st.age = torch.where(fired, torch.zeros_like(st.age), st.age + st.batch)
            reset = st.age >= st.tau
            if bool(reset.any()):
                self._record(st, reset)
                st.age[reset] = 0
                replaced[u.name] = reset
        if self.steps % self.options.adapt_every == 0:
            for st in self.layers.values():
                self._adapt(st)
        if not replaced:
            return None
        count = {n: int(m.sum()) for n, m in replaced.items()}
        self.reset_total += sum(count.values())
        what = ", ".join(f"{n} {c}" for n, c in count.items())
        return replacement_event(ctx.model, self.units, replaced, None,
                                 f"snr step {ctx.step}: {sum(count.values())} units reset ({what})")

    def _layer(self, u: UnitLayer, x: torch.Tensor) -> _Layer:
        st = self.layers.get(u.name)
        if st is None:
            bins = math.ceil(self.options.tau_max / x.shape[0]) + 1
            long = dict(dtype=torch.long, device=x.device)
            st = self.layers[u.name] = _Layer(torch.zeros(u.width, **long),
                                              torch.full((u.width,), self.options.tau_init, **long),
                                              torch.zeros(u.width, bins, **long), x.shape[0], x.shape[0])
        return st

    def _record(self, st: _Layer, which: torch.Tensor) -> None:
        """Record the current age of the units `which` marks as a gap (ages above tau_max are not)."""
        ok = which & (st.age <= self.options.tau_max)
        # bin k holds gaps in (bin*(k-1), bin*k]; a recorded gap (<= tau_max) lands at most in the last bin
        k = torch.div(st.age + st.bin - 1, st.bin, rounding_mode="floor")
        st.hist[torch.nonzero(ok).flatten(), k[ok]] += 1

    def _adapt(self, st: _Layer) -> None:
        gaps = st.hist[:, 1:].double()
        total = gaps.sum(1, keepdim=True)
        q = (torch.argmax((gaps.cumsum(1) / total >= self.options.percentile).long(), dim=1) + 1) * st.bin
        q[total[:, 0] == 0] = 1  # no gap recorded: q is 1 sample, as the SNR code's argmax over nan gives
        grown = (st.tau.double() * self.options.expansion).long()
        st.tau = torch.where(q < st.tau, q, grown).clamp(st.batch, self.options.tau_max)
        st.hist.zero_()

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"layers": {n: st.state() for n, st in self.layers.items()}, "steps": self.steps,
                "reset_total": self.reset_total}

    def load_state_dict(self, state: dict) -> None:
        self.layers = {n: _Layer(s["age"].clone(), s["tau"].clone(), s["hist"].clone(), int(s["bin"]), int(s["batch"]))
                       for n, s in state["layers"].items()}
        self.steps = int(state["steps"])
        self.reset_total = int(state["reset_total"])
