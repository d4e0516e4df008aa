"""The eigenvalue of largest magnitude of a loss's Hessian, by power iteration on Hessian-vector
products (double backward), without ever forming the Hessian."""
from __future__ import annotations

from typing import Callable

import torch

from ..seeding import generator


def top_hessian_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor], iters: int = 20,
                           tol: float = 1e-3, seed: int = 0) -> tuple[float, int]:
    """Returns (eigenvalue, iterations used); the eigenvalue is the Rayleigh quotient v^T H v of the
    last unit iterate, so its sign is kept. The gradient graph is built once and reused by every
    product; iteration stops once the estimate changes by less than `tol` relative."""
    g = generator(seed, "hessian")
    with torch.enable_grad():
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        v = [torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device) for p in params]
        norm = torch.sqrt(sum((x * x).sum() for x in v))
        v = [x / norm for x in v]
        eig = 0.0
        for i in range(1, iters + 1):
            hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True, allow_unused=True)
            hv = [torch.zeros_like(p) if h is None else h for p, h in zip(params, hv)]  # loss linear in p
            new = float(sum((a * b).sum() for a, b in zip(v, hv)))
            norm = torch.sqrt(sum((x * x).sum() for x in hv))
            if float(norm) == 0.0:
                return 0.0, i
            v = [x.detach() / norm for x in hv]
            if i > 1 and abs(new - eig) <= tol * abs(new):
                return new, i
            eig = new
    return eig, iters
