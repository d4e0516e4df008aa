"""FIRE (Han et al., ICLR 2026): move every conv and linear weight towards an isometry.

For a weight W of shape (out, in, *kernel), each kernel position's out x in slice M is replaced by
its Newton-Schulz orthogonalization: X = M / ||M||_F on the tall orientation (transposed when in >
out), then `iterations` steps of X <- 1.5 X - 0.5 X (X^T X), scaled by sqrt(out/in) / (number of
kernel positions). The event blends W <- alpha * X + (1 - alpha) * W; biases and norm layers are
untouched, and nothing is re-drawn."""
from dataclasses import dataclass

import torch

from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import in_range, weighted_layers


@dataclass
class FIREOptions:
    alpha: float = 1.0  # 1: the orthogonalized weight replaces W
    iterations: int = 10

    def validate(self):
        in_range("alpha", self.alpha, 0.0, 1.0)
        in_range("iterations", self.iterations, 1, 100)


def newton_schulz(m: torch.Tensor, iterations: int) -> torch.Tensor:
    """Approximate orthogonal factor of a 2-D matrix (all singular values driven towards 1)."""
    tall = m.shape[0] >= m.shape[1]
    x = m if tall else m.T
    x = x / x.norm().clamp_min(1e-30)  # a zero slice stays zero
    for _ in range(iterations):
        x = 1.5 * x - 0.5 * x @ (x.T @ x)
    return x if tall else x.T


def fire_target(w: torch.Tensor, iterations: int) -> torch.Tensor:
    out, cin = w.shape[0], w.shape[1]
    slices = w.detach().reshape(out, cin, -1)
    positions = slices.shape[2]
    x = torch.stack([newton_schulz(slices[:, :, k], iterations) for k in range(positions)], dim=2)
    return (x * ((out / cin) ** 0.5 / positions)).reshape(w.shape)


@register
class FIRE(Method):
    name = "fire"
    summary = "FIRE: orthogonalize every conv/linear weight per kernel position (Newton-Schulz), blend by alpha"
    Options = FIREOptions
    redraws = False
    fidelity = (
        Fidelity("`alpha=1`: W is replaced by the scaled orthogonalization",
                 "the same (the released function has no blend)",
                 "the default"),
        Fidelity("a zero slice stays zero; any conv (1-3d, grouped) is handled per kernel position",
                 "Conv2d and Linear only (a zero slice divides by 0)",
                 "same on the registry models"),
    )

    def event(self, ctx: ResetContext) -> ResetEvent:
        a = self.options.alpha
        actions = {}
        for mname, m in weighted_layers(ctx.model):
            x = fire_target(m.weight, self.options.iterations)
            actions[f"{mname}.weight"] = Action(scale=1.0 - a, offset=a * x)
        return ResetEvent(actions, description=f"fire alpha {a}")
