"""The top eigenvalue of a loss's Hessian from Hessian-vector products (double backward), without
ever forming the Hessian.

Lanczos iteration: the power iteration's products v -> H v, with the estimate taken over the whole
Krylov subspace they span (the eigenvalues of the small tridiagonal matrix the three-term
recurrence builds) instead of the last vector alone. After the same number of products it is at
least as close as the power iteration, and much closer where the top eigenvalues cluster. No
re-orthogonalization, so memory stays at three parameter-sized vectors even for large models:
rounding then makes converged eigenvalues reappear as duplicates ("ghosts"), which never moves
the extreme ones that are reported.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..util.seeding import generator


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b, strict=True)))


def top_hessian_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor], iters: int = 20,
                           tol: float = 1e-3, seed: int = 0) -> tuple[float, int]:
    """The Hessian eigenvalue of largest magnitude (the one power iteration finds; at a minimum the
    largest positive one), sign kept. Returns (eigenvalue, Hessian-vector products used); stops
    once the estimate has changed by less than `tol` relative twice in a row. The gradient graph is
    built once and reused by every product."""
    g = generator(seed, "hessian")
    with torch.enable_grad():
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params, create_graph=True)

        def hvp(v):
            hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True, allow_unused=True)
            return [torch.zeros_like(p) if h is None else h.detach() for p, h in zip(params, hv, strict=True)]  # loss linear in p

        v = [torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device) for p in params]
        norm = _dot(v, v) ** 0.5
        v = [x / norm for x in v]
        v_prev = [torch.zeros_like(x) for x in v]
        alphas: list[float] = []
        betas: list[float] = []
        beta, est, calm = 0.0, 0.0, 0
        for i in range(1, iters + 1):
            w = hvp(v)
            alpha = _dot(w, v)
            w = [a - alpha * b - beta * c for a, b, c in zip(w, v, v_prev, strict=True)]
            alphas.append(alpha)
            t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            if betas:
                off = torch.tensor(betas, dtype=torch.float64)
                t = t + torch.diag(off, 1) + torch.diag(off, -1)
            eigs = torch.linalg.eigvalsh(t)
            new = float(eigs[eigs.abs().argmax()])
            calm = calm + 1 if i > 1 and abs(new - est) <= tol * abs(new) else 0
            est = new
            beta = _dot(w, w) ** 0.5
            if calm >= 2 or beta <= 1e-10 * max(abs(est), 1e-30):  # converged, or an invariant subspace: exact
                return est, i
            betas.append(beta)
            v_prev, v = v, [x / beta for x in w]
    return est, iters
