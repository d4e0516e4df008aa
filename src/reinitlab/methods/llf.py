"""Later-layer forgetting (Zhou et al., ICLR 2022): re-draw every group from `start` upward.

Default: the top block and the head, re-drawn whole (BatchNorm included: weight 1, bias 0, running
statistics cleared). `peer=true` follows the LLF code: by default from the first block of the last
stage (ResNet-18: `layer4` = block7 and block8, and the head; ResNet-50: block14-16; other
architectures: the trailing blocks with the top block's width), only conv and linear weights and
conv biases are re-drawn, from PyTorch's default draw (redraw=peer); BatchNorm (affine and running
statistics) and the head's bias survive. `start=GROUP` names the first group re-drawn."""
from dataclasses import dataclass, field

import torch.nn as nn

from ..core.groups import Groups
from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import reset_groups_from, span, weighted_layers


@dataclass
class LLFOptions:
    start: str = field(default="", metadata={"unset": "top block"})  # first group re-drawn; "" = the top block (peer=true: the first block of the last stage)
    peer: bool = False  # the LLF code's layer set and BatchNorm handling; implies redraw=peer


def group_width(model: nn.Module, groups: Groups, g: str) -> int | None:
    """Output channels of a group: the out dimension of its last conv or linear weight."""
    params = dict(model.named_parameters())
    widths = [params[p].shape[0] for p in groups.params[g] if params[p].dim() >= 2]
    return widths[-1] if widths else None


def last_stage_start(model: nn.Module, groups: Groups) -> int:
    """Index of the first block of the last stage: the run of top blocks that share the top block's
    width (ResNet-18: block7 and block8 = torchvision's layer4; ResNet-50: block14-16). Any
    architecture gets an answer, but only for ResNets is it the LLF code's own choice."""
    top = groups.K - 1
    if top < 1:
        return groups.K
    width = group_width(model, groups, groups.names[top])
    k = top
    while k > 1 and group_width(model, groups, groups.names[k - 1]) == width:
        k -= 1
    return k


@register
class LLF(Method):
    name = "llf"
    summary = "later-layer forgetting: re-draw every group from `start` (default: the top block) upward"
    Options = LLFOptions
    fidelity = (
        Fidelity("re-draws the top block and the head",
                 "`layer4`: the last stage (two blocks on ResNet-18) and the head",
                 "`peer=true` (or `start=block7` on ResNet-18)"),
        Fidelity("the reset groups are re-drawn whole: BatchNorm weight 1, bias 0, statistics cleared; "
                 "the head's bias re-drawn",
                 "BatchNorm and the head's bias untouched",
                 "`peer=true`"),
        Fidelity("re-draws from the model's initializer",
                 "`kaiming_uniform_(a=sqrt(5))`",
                 "`peer=true` (or `redraw=peer`)"),
    )

    def start_index(self, ctx: ResetContext) -> int:
        g, o = ctx.groups, self.options
        if o.start:
            return g.index(o.start)
        return last_stage_start(ctx.model, g) if o.peer else max(g.K - 1, 1)

    def event(self, ctx: ResetContext) -> ResetEvent:
        g = ctx.groups
        k = self.start_index(ctx)
        what = f"reset {span(g.names, k, g.K)}"
        if not self.options.peer:
            return ResetEvent(reset_groups_from(g, k), description=what)
        reset = set(g.params_from(k))
        actions = {}
        for mname, m in weighted_layers(ctx.model):
            w, b = f"{mname}.weight", f"{mname}.bias"
            if w in reset:
                actions[w] = Action(keep=False)
            if m.bias is not None and b in reset and isinstance(m, nn.modules.conv._ConvNd):
                actions[b] = Action(keep=False)
        return ResetEvent(actions, description=what + " (LLF code's rules)")
