"""Continual Backprop (Dohare et al., "Loss of plasticity in deep continual learning", Nature 2024):
after every optimizer step, replace a small share of each layer's least useful mature units.

The rule, per unit layer (units.py: a conv's output channels, a linear layer's outputs, whose
activations the next layer reads), after every optimizer step, from the activations h of that step's
forward pass (the next layer's input: after norm, activation and pooling) and the weights after the
step, as the generate-and-test code (gnt.py, convGnT.py) orders it:

  1. every unit's age grows by 1;
  2. its mean activation m <- decay*m + (1-decay)*mean(h), bias-corrected h_bar = m / (1 - decay^age);
  3. its utility u <- decay*u + (1-decay)*y with, per step,
       contribution            y = mean|w_out| * mean|h|
       adaptable_contribution  y = mean|w_out| * mean|h - h_bar| / mean|w_in|
     (w_out: the unit's outgoing weights; after a flatten, per input column of the next layer, then
     averaged over the unit's columns), bias-corrected u_hat = u / (1 - decay^age);
  4. units older than `maturity` steps are eligible; only while at least one is, the layer owes
     replacement_rate * (eligible count) more units; the whole part of what it owes is replaced now
     and the fraction carries over;
  5. that many eligible units with the lowest u_hat (ties: the lower index) are replaced: incoming
     weights re-drawn, bias 0, the following norm layer's elements (and running statistics) from the
     re-draw source, outgoing weights 0; with `compensate`, the next layer's bias gains the unit's mean
     contribution (h_bar times its outgoing weights), so the network's mean output does not jump; age,
     utility and mean activation restart at 0.

Every unit layer is decided on the same weights before any unit of the step is replaced. The optimizer
state of every replaced element (incoming rows, bias, norm elements, outgoing columns) is cleared:
SGD's momentum, Adam's exp_avg and exp_avg_sq. Adam's `step` is one count per tensor in
torch.optim.Adam, and it is left: AdamGnT, the CBP code's optimizer, keeps a count per element and
zeroes it, so there a replaced element restarts Adam's bias correction; here its moments restart from
0 under the tensor's count (as the SNR code does with optax's single count), which makes its first
updates up to ~3x larger than a fresh Adam's at betas (0.9, 0.999). Round starts reset nothing: ages,
utilities and what is owed carry across rounds (and live in the checkpoint).

Defaults are the paper's configuration for a BatchNorm CNN trained by SGD with momentum (incremental
CIFAR-100, ResNet-18: replacement_rate 1e-5, maturity 1000, contribution), also CBPConv's defaults.
With them a unit layer of C units replaces one unit every 1e5/C steps after step 1000; a small run
replaces nothing, and the round-start record says how many units were replaced so far.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from ..core.method import Cadence, Fidelity, ResetContext, register
from ..core.reset import ResetEvent
from .base import in_range
from .units import UnitLayer, UnitMethod, replacement_event


@dataclass
class CBPOptions:
    replacement_rate: float = 1e-5  # units owed per step per eligible unit
    maturity: int = 1000  # steps a unit is protected after it is drawn
    decay: float = 0.99  # of the running averages of utility and mean activation
    utility: Literal["contribution", "adaptable_contribution"] = "contribution"
    compensate: bool = True  # the next layer's bias takes over a replaced unit's mean contribution

    def validate(self):
        in_range("replacement_rate", self.replacement_rate, 0.0, 1.0)
        in_range("maturity", self.maturity, 0, 10**12)
        in_range("decay", self.decay, 0.0, 1.0, hi_open=True)


@dataclass
class _Layer:
    age: torch.Tensor  # steps since drawn, per unit (int64)
    util: torch.Tensor  # running utility u (not bias-corrected)
    mean: torch.Tensor  # running mean activation m (not bias-corrected)
    owed: float = 0.0  # fractional units owed

    def state(self) -> dict:
        return {"age": self.age.clone(), "util": self.util.clone(), "mean": self.mean.clone(), "owed": self.owed}


@register
class CBP(UnitMethod):
    name = "cbp"
    summary = ("Continual Backprop: after every step replace the lowest-utility mature units "
               "(incoming re-drawn, outgoing 0)")
    Options = CBPOptions
    fidelity = (
        Fidelity("replacement_rate 1e-5, maturity 1000, contribution (the incremental CIFAR-100 config; CBPConv)",
                 "CBPLinear: 1e-4, 100; permuted MNIST config: 1e-4..1e-6, 100, adaptable_contribution; "
                 "continual ImageNet config: 3e-4, 100, adaptable_contribution",
                 "the options `replacement_rate`, `maturity`, `utility`"),
        Fidelity("utility and mean activation are running averages (decay 0.99) with Adam-style bias correction, "
                 "updated every step, replacement after the optimizer step (gnt.py, convGnT.py)",
                 "cbp_linear.py / cbp_conv.py: utility from the last step's features only (decay 0), "
                 "uncorrected, replacement in a backward hook before the optimizer step",
                 "`decay=0` for the features; the rest not offered"),
        Fidelity("a layer owes replacement_rate × (eligible units) per step; the fraction carries over",
                 "GnT's default accumulate=False rounds a share below 1 by a Bernoulli draw; convGnT.py and "
                 "res_gnt.py owe replacement_rate × (all units) once any unit is mature",
                 "not offered"),
        Fidelity("`compensate=true`: the next layer's bias gains h_bar × the unit's outgoing weights",
                 "gnt.py has the line but zeroes the unit's running mean just before it, so it adds 0; "
                 "convGnT, res_gnt, cbp_linear and cbp_conv do not compensate",
                 "`compensate=false`"),
        Fidelity("incoming weights from the model's initializer (registry: He-normal fan-out convs, "
                 "PyTorch-default linear layers)",
                 "U(±√(1/fan_in)) for convs, U(±gain·√(3/fan_in)) for linear layers "
                 "(res_gnt.py: N(0, gain²/fan_in))",
                 "`redraw=peer` gives the conv bound; the linear one is not offered"),
        Fidelity("SGD momentum and Adam's exp_avg/exp_avg_sq of replaced elements cleared; Adam's step "
                 "(one per tensor) left",
                 "AdamGnT: exp_avg, exp_avg_sq and a per-element step zeroed (convGnT.py misses the incoming "
                 "weights' exp_avg); with SGD nothing is cleared",
                 "not offered"),
        Fidelity("unit layers: convs/linears followed by the next conv/linear in an nn.Sequential run "
                 "(a residual block's inner conv; never a conv feeding a residual sum)",
                 "res_gnt.py: every conv in registration order, downsample convs excluded, each with the next one "
                 "as its outgoing layer (a block's last conv too)",
                 "not offered"),
        Fidelity("among equal utilities the lower unit index is replaced first", "torch.topk (order unspecified)",
                 "same rule where utilities differ"),
    )

    def __init__(self, **options):
        super().__init__(**options)
        self.layers: dict[str, _Layer] = {}
        self.replaced_total = 0

    def cadence(self) -> Cadence:
        # every step may replace units once they are older than `maturity` steps (ages run over the
        # whole run from its first step); whether the owed count reaches a unit then depends on the
        # model's units, which the count in metrics.jsonl and result.json shows
        return Cadence("step", 1, "replacement_rate", mature_after=self.options.maturity, maturity_setting="maturity")

    @property
    def in_round(self) -> bool:
        return True

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(description=f"no reset at the round start (cbp acts every step): {self.replaced_total} "
                                      f"units replaced so far in {len(self.units)} unit layers")

    @torch.no_grad()
    def step_event(self, ctx: ResetContext) -> ResetEvent | None:
        if self.tap is None:
            raise ValueError("cbp watches training through forward hooks: apply it with a Reinitializer")
        inputs = self.tap.take()
        replaced, means = {}, {}
        for u in self.units:
            if u.name in inputs:
                chosen = self._test(u, inputs[u.name])
                if chosen is not None:
                    replaced[u.name], means[u.name] = chosen
        if not replaced:
            return None
        count = {n: int(m.sum()) for n, m in replaced.items()}
        self.replaced_total += sum(count.values())
        what = ", ".join(f"{n} {c}" for n, c in count.items())
        return replacement_event(ctx.model, self.units, replaced, means if self.options.compensate else None,
                                 f"cbp step {ctx.step}: {sum(count.values())} units replaced ({what})")

    def _test(self, u: UnitLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Steps 1-5 of the rule for one layer: (mask of the units to replace, their h_bar) or None."""
        o = self.options
        st = self.layers.get(u.name)
        if st is None:
            zeros = torch.zeros(u.width, device=x.device)
            st = self.layers[u.name] = _Layer(torch.zeros(u.width, dtype=torch.long, device=x.device), zeros,
                                              zeros.clone())
        st.age += 1
        h = u.unit_view(x).float()
        dims = [d for d in range(h.dim()) if d != 1]
        st.mean.mul_(o.decay).add_(h.mean(dims), alpha=1 - o.decay)
        correction = (1 - o.decay ** st.age.double()).float()
        h_bar = st.mean / correction
        if o.utility == "adaptable_contribution":
            h = h - h_bar.view(1, -1, *([1] * (h.dim() - 2)))
        w_out = u.outgoing_magnitude().to(h.device)
        if isinstance(u.next_layer, nn.Linear):  # per input column, then averaged over the unit's columns
            y = (w_out * h.abs().mean(0)).mean(1)
        else:
            y = w_out * h.abs().mean(dims)
        if o.utility == "adaptable_contribution":
            y = y / u.incoming_magnitude().to(h.device)
        st.util.mul_(o.decay).add_(y, alpha=1 - o.decay)
        eligible = st.age > o.maturity
        n = int(eligible.sum())
        if n == 0:
            return None  # nothing is owed while no unit is mature
        st.owed += o.replacement_rate * n
        k = min(int(st.owed), n)
        st.owed -= int(st.owed)
        if k == 0:
            return None
        idx = torch.nonzero(eligible).flatten()
        u_hat = st.util / correction
        chosen = idx[torch.sort(u_hat[idx], stable=True).indices[:k]]
        mask = torch.zeros(u.width, dtype=torch.bool, device=x.device)
        mask[chosen] = True
        h_bar = h_bar.clone()
        st.util[mask], st.mean[mask], st.age[mask] = 0.0, 0.0, 0
        return mask, h_bar

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"layers": {n: st.state() for n, st in self.layers.items()}, "replaced_total": self.replaced_total}

    def load_state_dict(self, state: dict) -> None:
        self.layers = {n: _Layer(s["age"].clone(), s["util"].clone(), s["mean"].clone(), float(s["owed"]))
                       for n, s in state["layers"].items()}
        self.replaced_total = int(state["replaced_total"])
