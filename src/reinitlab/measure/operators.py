"""The linear operators A_1..A_L of a network, in execution order: what norms, the margin bound and
the normalized margins are computed from.

How a network becomes a list of operators (traced by running one example in eval mode):
- Every Conv1d/2d/3d (not transposed) and Linear module is one operator. A conv's operator is the
  map on the whole feature map at the resolution the conv saw, with its stride, padding, dilation
  and groups; its spectral norm is found by power iteration on that map (conv forward, then
  conv_transpose as the exact adjoint; Golub-Kahan-Lanczos, see `top_singular_value`), not on
  the reshaped kernel. A linear layer's spectral norm is exact (the SVD of its matrix).
- BatchNorm in eval mode is x -> s*x + t per channel, s = gamma / sqrt(running_var + eps). When it
  reads a conv or linear output directly, s is folded into that operator's output channels, so
  the operator is the layer the network really computes. A BatchNorm that reads anything else is
  its own diagonal operator diag(s).
- LW's frozen standardization (x - mean) / std is diag(1/std). It is folded into the input
  channels of every conv or linear that reads its output, followed through layers that commute
  with a positive per-channel scale (ReLU, LeakyReLU, max and average pooling, dropout, identity,
  flatten). Where no such reader is found it is its own diagonal operator.
- Shifts (biases, BatchNorm's t, the standardization's mean) are dropped: they change no Lipschitz
  constant and the margin bound has no biases.
- Residual networks: the operators form a chain in execution order; an identity shortcut is no
  operator and a projection shortcut is one more link. The product of spectral norms is then the
  usual approximation, not an upper bound on the network's Lipschitz constant (a residual block's
  constant is at most that of its shortcut plus the product along its branch).
- Other parameterized layers (LayerNorm, GroupNorm, attention, transposed convs) are skipped and
  named in the trace's notes.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.groups import Groups
from ..core.reset import standardization_of
from ..util.seeding import generator
from .common import eval_mode, one_thread

_CONV = {1: (F.conv1d, F.conv_transpose1d), 2: (F.conv2d, F.conv_transpose2d), 3: (F.conv3d, F.conv_transpose3d)}
# Layers through which a positive per-channel scale passes unchanged (it commutes with them).
_COMMUTING = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
              nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
              nn.modules.dropout._DropoutNd, nn.Flatten)


def top_singular_value(apply: Callable[[torch.Tensor], torch.Tensor], adjoint: Callable[[torch.Tensor], torch.Tensor],
                       shape: tuple[int, ...], iters: int = 100, tol: float = 1e-6, seed: int = 0,
                       device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> tuple[float, int]:
    """Largest singular value of the linear map `apply`, given its adjoint `adjoint`; both take a
    batch of one, (1, *shape), in `dtype` (float32 keeps convs on their fast kernels).

    Golub-Kahan-Lanczos bidiagonalization: the power iteration's products v -> A^T A v, but the
    estimate is taken over the whole Krylov subspace they span instead of the last vector alone,
    so after the same number of products it is never below the plain power iteration's estimate,
    and it does not stall where the top singular values cluster, as they do for convs (neighbouring
    frequencies). Vectors are kept in float64 and re-orthogonalized (one-sided). The estimate is the top
    singular value of U^T A V for orthonormal U, V, hence never above the true value; iteration
    stops once it has changed by less than `tol` relative twice in a row. Returns (sigma, steps
    used; each step is one product with A and one with its adjoint)."""
    v = torch.randn(math.prod(shape), generator=generator(seed, "power-iteration"), dtype=torch.float64).to(device)
    v = v / v.norm()
    out_shape: list[tuple[int, ...]] = []

    def A(x):
        y = apply(x.to(dtype).view(1, *shape))
        if not out_shape:
            out_shape.append(tuple(y.shape))
        return y.reshape(-1).double()

    def At(y):
        return adjoint(y.to(dtype).view(out_shape[0])).reshape(-1).double()

    def orthogonalize(x, basis):
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            x = x - basis.T @ (basis @ x)
        return x

    u = A(v)
    alpha = float(u.norm())
    if alpha == 0.0:
        return 0.0, 1
    u = u / alpha
    # One-sided re-orthogonalization (Simon and Zha 2000): against the basis of the smaller side
    # only, which keeps the singular values accurate; the larger side (a conv's output, often 10-30x
    # its input) would cost more memory traffic than the conv itself. The basis grows by doubling.
    left = u.numel() < v.numel()
    keep = torch.zeros(min(iters + 1, 32), (u if left else v).numel(), dtype=torch.float64, device=v.device)
    keep[0] = u if left else v
    alphas, betas = [alpha], []
    sigma, calm = alpha, 0
    for i in range(1, iters + 1):
        if i == len(keep):
            keep = torch.cat([keep, torch.zeros_like(keep)])
        w = At(u) - alphas[-1] * v
        if not left:
            w = orthogonalize(w, keep[:i])
        beta = float(w.norm())
        if beta <= 1e-12 * sigma:  # invariant subspace: the estimate is exact
            return sigma, i
        v = w / beta
        betas.append(beta)
        p = A(v) - beta * u
        if left:
            p = orthogonalize(p, keep[:i])
        alpha = float(p.norm())
        u = p / alpha if alpha > 0 else p
        keep[i] = u if left else v
        alphas.append(alpha)
        b = torch.diag(torch.tensor(alphas, dtype=torch.float64)) + torch.diag(torch.tensor(betas, dtype=torch.float64), 1)
        new = float(torch.linalg.svdvals(b)[0])
        # two small steps in a row: a single one can be a pause before the next singular value joins
        calm = calm + 1 if abs(new - sigma) <= tol * new else 0
        sigma = new
        if calm >= 2 or alpha == 0.0:
            return sigma, i
    return sigma, iters


@dataclass
class Operator:
    name: str  # the module's qualified name; for a lone BatchNorm or standardization, its own name
    kind: str  # "conv" | "linear" | "diag"
    module: nn.Module | None
    in_shape: tuple[int, ...]  # of one example, without the batch dimension
    out_shape: tuple[int, ...]
    group: str | None = None
    diag: torch.Tensor | None = None  # the scale of a "diag" operator
    in_scale: torch.Tensor | None = None  # folded standardization (per input channel or feature)
    out_scale: torch.Tensor | None = None  # folded BatchNorm (per output channel)
    folded: list[str] = field(default_factory=list)

    # ---- the operator -----------------------------------------------------------------------
    def weight(self, effective: bool = True) -> torch.Tensor:
        """float64 weight; `effective` folds the BatchNorm and standardization scales in."""
        if self.kind == "diag":
            return self.diag.detach().double()
        # contiguous: a channels-last weight sends a batch-of-one conv to a slow kernel (10-100x)
        w = self.module.weight.detach().double().contiguous()
        if not effective:
            return w
        if self.out_scale is not None:
            w = w * self.out_scale.double().view(-1, *([1] * (w.dim() - 1)))
        if self.in_scale is not None:
            s = self.in_scale.double()
            if self.kind == "linear":
                w = w * s.view(1, -1)
            else:  # grouped conv: output channel o reads input channels of its group only
                out, per = w.shape[:2]
                g = self.module.groups
                idx = (torch.arange(out, device=w.device) // (out // g))[:, None] * per + torch.arange(per, device=w.device)
                w = w * s[idx].view(out, per, *([1] * (w.dim() - 2)))
        return w

    def matrix(self, effective: bool = True) -> torch.Tensor:
        """The reshaped kernel matrix (out, in * kernel size): one row per output unit/channel. For a
        diagonal operator, one entry per row."""
        w = self.weight(effective)
        return w.reshape(-1, 1) if self.kind == "diag" else w.reshape(w.shape[0], -1)

    def frobenius(self, effective: bool = True) -> float:
        return float(self.matrix(effective).norm())

    def norm21_t(self, effective: bool = True) -> float:
        """||A^T||_{2,1}: the sum over output units of the l2 norm of their incoming weights, taken on
        the reshaped kernel matrix for convs (the common approximation; the exact operator repeats
        each row once per output position, and padding trims rows at the border)."""
        return float(self.matrix(effective).norm(dim=1).sum())

    def _conv_maps(self, w: torch.Tensor):
        m = self.module
        d = w.dim() - 2
        conv, conv_t = _CONV[d]
        fwd = (lambda v: m._conv_forward(v, w, None)) if m.padding_mode != "zeros" else (
            lambda v: conv(v, w, None, m.stride, m.padding, m.dilation, m.groups))
        if m.padding_mode == "zeros" and not isinstance(m.padding, str):
            size_out = self.out_shape[1:]
            # output_padding restores the input size that the strided forward rounded away
            extra = tuple(self.in_shape[1 + i] - ((size_out[i] - 1) * m.stride[i] - 2 * m.padding[i]
                                                  + m.dilation[i] * (w.shape[2 + i] - 1) + 1) for i in range(d))
            adj = lambda u: conv_t(u, w, None, m.stride, m.padding, extra, m.groups, m.dilation)  # noqa: E731
        else:  # padding modes without a transposed counterpart: the adjoint by autograd (exact, the map is linear)
            def adj(u):
                v = torch.zeros((len(u),) + self.in_shape, dtype=u.dtype, device=u.device, requires_grad=True)
                with torch.enable_grad():
                    (g,) = torch.autograd.grad(fwd(v), v, u)
                return g
        return fwd, adj

    @torch.no_grad()
    def spectral_norm(self, effective: bool = True, iters: int = 200, tol: float = 1e-7, seed: int = 0) -> float:
        w = self.weight(effective)
        if self.kind == "diag":
            return float(w.abs().max())
        if self.kind == "linear":
            return float(torch.linalg.matrix_norm(w, ord=2))
        # float32 unless the module is float64: float64 convs leave the fast kernels, and half
        # precision would blur the estimate
        w = w.to(torch.float64 if self.module.weight.dtype == torch.float64 else torch.float32)
        fwd, adj = self._conv_maps(w)
        with one_thread() if w.device.type == "cpu" else nullcontext():
            sigma, _ = top_singular_value(fwd, adj, self.in_shape, iters, tol, seed, w.device, dtype=w.dtype)
        return sigma

    @property
    def width(self) -> int:
        """Units on either side, for the bound's W."""
        return max(math.prod(self.in_shape), math.prod(self.out_shape))


@dataclass
class Trace:
    ops: list[Operator]
    notes: list[str]


def _bn_scale(bn: nn.modules.batchnorm._BatchNorm, device: torch.device) -> tuple[torch.Tensor, str | None]:
    if bn.running_var is None:
        s = bn.weight.detach() if bn.weight is not None else torch.ones(bn.num_features, device=device)
        return s, f"{bn}: no running statistics; only its affine scale is used"
    s = 1.0 / torch.sqrt(bn.running_var.detach() + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight.detach()
    return s, None


def _group_of(groups: Groups | None, name: str) -> str | None:
    if groups is None:
        return None
    for g in groups.names:
        if any(name == m or name.startswith(m + ".") for m in groups.modules[g]):
            return g
    return None


@torch.no_grad()
def trace(model: nn.Module, example: torch.Tensor, groups: Groups | None = None) -> Trace:
    """Run `example` (a batch of one) through `model` in eval mode and collect its operators."""
    ops: list[Operator] = []
    notes: list[str] = []
    producer: dict[int, Operator] = {}  # id(output tensor) -> the conv/linear that produced it
    pending: dict[int, tuple[torch.Tensor, str]] = {}  # id(tensor) -> (scale still to fold, its source)
    alive: list[torch.Tensor] = []  # ids are only unique while the tensors live
    seen: set[int] = set()
    std_at: dict[str, tuple[int, torch.Tensor, tuple, str | None]] = {}
    std_used: set[str] = set()
    handles = []

    def keep(*ts):
        alive.extend(t for t in ts if isinstance(t, torch.Tensor))

    def weighted(name, kind):
        def hook(m, inp, out):
            x = inp[0]
            if id(m) in seen:
                notes.append(f"{name}: called more than once; its first call is its operator")
                return
            seen.add(id(m))
            op = Operator(name, kind, m, tuple(x.shape[1:]), tuple(out.shape[1:]), _group_of(groups, name))
            if id(x) in pending:
                s, src = pending[id(x)]
                expected = m.in_features if kind == "linear" else m.in_channels
                if s.numel() == expected:
                    op.in_scale, op.folded = s, [src]
                    std_used.add(src)
            std = standardization_of(m)
            if std is not None:  # the output seen here is already standardized: fold it like a BatchNorm
                op.out_scale = 1.0 / std[1].detach()
                op.folded.append(f"{name}:standardization")
            ops.append(op)
            producer[id(out)] = op
            keep(x, out)
        return hook

    def batchnorm(name):
        def hook(m, inp, out):
            x = inp[0]
            s, note = _bn_scale(m, x.device)
            if note:
                notes.append(f"{name}: {note}")
            std = standardization_of(m)
            if std is not None:  # both scales act on the output seen here
                s = s / std[1].detach()
            op = producer.get(id(x))
            if op is not None and op.out_shape[0] == s.numel():
                op.out_scale = s if op.out_scale is None else op.out_scale * s
                op.folded.append(name)
            else:
                ops.append(Operator(name, "diag", m, tuple(x.shape[1:]), tuple(out.shape[1:]),
                                    _group_of(groups, name), diag=s))
            if id(x) in pending:  # a per-channel scale commutes with a per-channel affine map
                pending[id(out)] = pending[id(x)]
            keep(x, out)
        return hook

    def standardize(name):
        # registered after the standardization's own hook, so `out` is the standardized output
        def hook(m, inp, out):
            s = 1.0 / standardization_of(m)[1].detach()
            prev = pending.get(id(out))  # a scale that passed through m (pooling) composes with this one
            if prev is not None and prev[0].numel() == s.numel():
                s = s * prev[0]
            src = f"{name}:standardization"
            pending[id(out)] = (s, src)
            std_at[src] = (len(ops), s, tuple(out.shape[1:]), _group_of(groups, name))
            keep(out)
        return hook

    def commuting(name):
        def hook(m, inp, out):
            x = inp[0]
            if id(x) not in pending:
                return
            s, src = pending[id(x)]
            if isinstance(m, nn.Flatten):
                if m.start_dim not in (1, -x.dim() + 1) or x.dim() < 3:
                    return
                s = s.repeat_interleave(math.prod(x.shape[2:]))
            pending[id(out)] = (s, src)
            keep(x, out)
        return hook

    for name, m in model.named_modules():
        own = True  # does the hook below account for a standardization on m's output?
        if isinstance(m, nn.modules.conv._ConvNd) and not m.transposed and m.weight.dim() in (3, 4, 5):
            handles.append(m.register_forward_hook(weighted(name, "conv")))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(weighted(name, "linear")))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            handles.append(m.register_forward_hook(batchnorm(name)))
        else:
            own = False
            if isinstance(m, _COMMUTING):
                handles.append(m.register_forward_hook(commuting(name)))
            elif any(True for _ in m.parameters(recurse=False)):
                notes.append(f"{name}: {type(m).__name__} is not a linear operator and is left out")
        if not own and standardization_of(m) is not None:
            handles.append(m.register_forward_hook(standardize(name)))
    try:
        with eval_mode(model):
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    # Standardizations that no conv or linear read directly become diagonal operators where they ran.
    for name, (pos, s, shape, group) in sorted(std_at.items(), key=lambda kv: -kv[1][0]):
        if name not in std_used:
            ops.insert(pos, Operator(name, "diag", None, shape, shape, group, diag=s))
            notes.append(f"{name}: not folded into a reader; counted as its own diagonal operator")
    return Trace(ops, notes)


def layer_table(ops: list[Operator], iters: int = 200, tol: float = 1e-7, seed: int = 0,
                raw: bool = True) -> list[dict]:
    """Per operator: spectral norm, Frobenius norm and ||A^T||_{2,1} of the effective operator, and
    (raw=True) the spectral and Frobenius norms of the module's own weight alone."""
    rows = []
    for op in ops:
        row = {"name": op.name, "kind": op.kind, "group": op.group, "folded": list(op.folded),
               "in_shape": list(op.in_shape), "spectral": op.spectral_norm(True, iters, tol, seed),
               "frobenius": op.frobenius(True), "norm21_t": op.norm21_t(True)}
        if raw:
            own = op.kind != "diag"
            row["spectral_raw"] = op.spectral_norm(False, iters, tol, seed) if own else None
            row["frobenius_raw"] = op.frobenius(False) if own else None
        rows.append(row)
    return rows
