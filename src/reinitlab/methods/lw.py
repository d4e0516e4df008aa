"""Layerwise reinitialization (Alabdulmohsin, Maennel, Keysers 2021), bottom-up by default.

Round r keeps groups 0..k_r, rescales each kept tensor to its initial norm, inserts a frozen
per-channel standardization after group k_r, and re-draws every group above it; then the whole
model trains. With the full budget R = K-1 (K+1 groups, stem to head) round r keeps groups 0..r;
with fewer rounds the steps are spread, k_r = ceil(r*K/(R+1)), and `schedule=floor` spreads them
with floor instead, as the LW re-implementation in the Later-Layer Forgetting code does (with K = 9
and R = 3 it keeps up to groups 2, 4, 6 where the default keeps 3, 5, 7; the two agree at the full
budget). More rounds than distinct steps repeat a step (a warning says so before training).

- `rescale`: each kept tensor t is multiplied by ||w0_t|| / ||w_t||; tensors that started at zero
  (BatchNorm biases) are set back to zero.
- `normalize`: the per-channel mean and standard deviation of group k_r's output on 4 training
  batches (no augmentation, BatchNorm in train mode with its running statistics untouched), frozen
  from then on; earlier standardizations stay.
- `order=top_down` keeps all but the top ceil(r*K/(R+1)) groups instead (at least the head is
  re-drawn)."""
from dataclasses import dataclass
from typing import Literal

from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import reset_groups_from, span


@dataclass
class LWOptions:
    rescale: bool = True
    normalize: bool = True
    order: Literal["bottom_up", "top_down"] = "bottom_up"
    schedule: Literal["ceil", "floor"] = "ceil"  # s_r = ceil(r*K/(R+1)), or floor as in the LLF code


def last_kept(r: int, rounds: int, K: int, order: str, schedule: str = "ceil") -> int:
    """Index of the last kept group in round r of R (groups 0..K, K = head).

    With the full budget R = K-1, bottom-up keeps groups 0..r (round 1: stem + block1; round K-1:
    everything below the head) and top-down keeps all but the top r groups. With fewer rounds the
    steps are spread evenly: s_r = ceil(r*K/(R+1)), which equals r when R = K-1. With more rounds
    than blocks the same formula repeats some steps (never keeping the head). `schedule="floor"`:
    s_r = floor(r*K/(R+1)), the LLF code's "generation g resets from unit (g*L)//G" with its units
    block1..head (L = K) and G = R+1 generations; it may keep the stem alone (s_r = 0)."""
    n, d = r * K, rounds + 1
    spread = n // d if schedule == "floor" else -(-n // d)
    step = min(spread, K - 1) if K > 1 else 0
    # top-down re-draws at least the head: with two groups (K = 1) the step above is 0
    return step if order == "bottom_up" else max(K - max(step, 1), 0)


@register
class LW(Method):
    name = "lw"
    summary = "layerwise: keep groups up to k_r (rescaled to initial norms, then a frozen standardization), re-draw the rest"
    Options = LWOptions
    fidelity = (
        Fidelity("round r keeps groups 0..ceil(r·K/(R+1))",
                 "floor(r·K/(R+1))",
                 "`schedule=floor`"),
        Fidelity("a re-drawn BatchNorm gets its running statistics cleared",
                 "its parameters are re-drawn, its running statistics left stale",
                 "not offered"),
        Fidelity("tensors whose initial norm is exactly 0 are set back to 0",
                 "those whose initial norm is below 1e-6",
                 "same on the registry models (their initial norms are 0 or far above 1e-6)"),
        Fidelity("standardization: mean and population std over 4 training batches",
                 "the first training batch, unbiased std",
                 "not offered"),
    )

    def budget_warning(self, rounds: int, groups) -> str | None:
        kept = [last_kept(r, rounds, groups.K, self.options.order) for r in range(1, rounds + 1)]
        steps = sorted(set(kept), reverse=self.options.order == "top_down")
        if len(steps) >= rounds:
            return None
        return (f"lw: rounds={rounds} but this model's {len(groups.names)} groups give only {len(steps)} distinct "
                f"steps (keep up to {', '.join(groups.names[k] for k in steps)}): {rounds - len(steps)} of the "
                f"{rounds} rounds repeat an earlier round's reset; rounds={len(steps)} gives each step once")

    def event(self, ctx: ResetContext) -> ResetEvent:
        g, o = ctx.groups, self.options
        k = last_kept(ctx.round, ctx.rounds, g.K, o.order, o.schedule)
        actions = reset_groups_from(g, k + 1)
        if o.rescale:
            for name, p in ctx.params().items():
                if name in actions:
                    continue
                n0, n = ctx.init_norms[name], float(p.detach().norm())
                # Initial norm 0 (BN bias, zero-init biases): back to 0. A tensor trained to exactly
                # zero has no direction to keep; it stays.
                scale = 0.0 if n0 == 0.0 else (n0 / n if n > 0.0 else 1.0)
                actions[name] = Action(scale=scale)
        return ResetEvent(actions, normalize_after=g.names[k] if o.normalize else None,
                          description=f"keep {span(g.names, 0, k)}, reset {span(g.names, k + 1, g.K)}")
