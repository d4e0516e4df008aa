"""Training BatchNorm over few channels in channels-last CPU models.

PyTorch's channels-last BatchNorm kernel is slow when a layer has few channels: on the AMD Zen 3
development CPU (2 threads, batch 128, forward+backward with the ReLU after it) 8 channels at 32 px
took 10.5-12.2 ms, against 9.5-11.2 for the earlier way round it (an NCHW copy in and out of
PyTorch's NCHW kernel) and 5.4-5.5 ms for this file's. At 16 channels and more PyTorch's kernel is
the faster one (16 at 16 px: 1.2-1.9 vs 2.3-2.9 ms), hence the threshold. Kernels differ between
CPUs: the gain has to be measured on each.

What this file does instead is plain tensor arithmetic on a wide view of the same memory: a
channels-last (N, C, H, W) tensor is an (N*H*W, C) matrix, and k consecutive rows of it an (N*H*W/k,
k*C) one with k*C up to 256 columns, on which PyTorch's column sums and broadcast multiply-adds run
at memory speed (the per-channel vectors are repeated k times). The batch statistics are two-pass
(mean first, then the mean square of the centred values, so no large sum of squares cancels against
a squared mean); the numbers agree with PyTorch's kernel to rounding (tests/test_train_loop.py), not
bit for bit, so switching the path on or off changes a run's last bits the way `channels_last` does.

Resume stays bit-identical: every reduction here is a column sum that PyTorch splits over threads
the same way for the same thread count, nothing depends on where a tensor was allocated, the module
holds no state beyond BatchNorm's own buffers, and the same layers get it in every process (chosen
from the model alone). A kill-and-resume test once ended a resumed epoch a few ulps off with the
earlier NCHW path; the cause was the thread count (a restarted study with one run left gave it every
core), which changes the last bits with or without this path (tests/test_reliability_kill.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn

FEW_CHANNELS = 16
_WIDE = 256  # columns of the wide view: enough for PyTorch's vectorized column loops
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # normalized in fp32; float64 stays PyTorch's


def _rows_per_line(m: int, c: int) -> int:
    """The largest power of two k with k*c <= _WIDE that divides the m rows."""
    k = 1
    while 2 * k * c <= _WIDE and m % (2 * k) == 0:
        k *= 2
    return k


def _col_sum(v: torch.Tensor, k: int, c: int) -> torch.Tensor:
    return v.sum(0).view(k, c).sum(0)


class _BatchNormChannelsLast(torch.autograd.Function):
    """BatchNorm's training forward and backward on a channels-last tensor, in fp32 whatever the
    input's dtype (under bf16 autocast the convolution before it hands over bf16; the output and the
    input's gradient go back in that dtype, as PyTorch's kernel does)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, factor: float, eps: float):
        ctx.dtype = x.dtype
        x = x.float()
        n, c, h, w = x.shape
        m = n * h * w
        k = _rows_per_line(m, c)
        xv = x.permute(0, 2, 3, 1).reshape(m // k, k * c)  # a view: x is channels-last
        mean = _col_sum(xv, k, c) / m
        centred = xv - mean.repeat(k)
        var = _col_sum(centred * centred, k, c) / m
        invstd = (var + eps).rsqrt()
        y = torch.empty_like(x, memory_format=torch.channels_last)  # not a view: ReLU(inplace) may follow
        torch.addcmul(bias.repeat(k), centred, (weight * invstd).repeat(k),
                      out=y.permute(0, 2, 3, 1).view(m // k, k * c))
        if running_mean is not None:
            running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            running_var.mul_(1 - factor).add_(var * (m / max(m - 1, 1)), alpha=factor)
        ctx.save_for_backward(centred, invstd, weight)
        ctx.k = k
        return y.to(ctx.dtype)

    @staticmethod
    def backward(ctx, dy):
        centred, invstd, weight = ctx.saved_tensors
        n, c, h, w = dy.shape
        m, k = n * h * w, ctx.k
        g = dy.float().contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(m // k, k * c)
        sum_g = _col_sum(g, k, c)
        sum_gc = _col_sum(g * centred, k, c)  # sum of dy * (x - mean)
        a = weight * invstd
        # dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)), with xhat = centred * invstd
        dx = torch.addcmul((-a * sum_g / m).repeat(k), g, a.repeat(k))
        dx.addcmul_(centred, (-a * invstd * invstd * sum_gc / m).repeat(k))
        return dx.view(n, h, w, c).permute(0, 3, 1, 2).to(ctx.dtype), sum_gc * invstd, sum_g, None, None, None, None


class FewChannelBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d whose training step on a channels-last CPU tensor runs in this file's
    arithmetic; everything else (evaluation, other layouts, float64, the state dict) is
    nn.BatchNorm2d's own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.affine and x.device.type == "cpu" and x.dtype in _DTYPES and x.dim() == 4
                and x.is_contiguous(memory_format=torch.channels_last) and x.shape[0] * x.shape[2] * x.shape[3] > 1):
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)  # as nn.BatchNorm2d: counted in every training step
            if self.momentum is None:  # a cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
            rm, rv = self.running_mean, self.running_var
        else:
            rm = rv = None
        return _BatchNormChannelsLast.apply(x, self.weight, self.bias, rm, rv, factor, self.eps)


def few_channel_batchnorm(model: nn.Module) -> int:
    """Give every nn.BatchNorm2d with fewer than FEW_CHANNELS channels in `model` this file's
    training arithmetic (its class becomes FewChannelBatchNorm2d, a subclass: parameters, buffers,
    state-dict keys and evaluation are unchanged). For channels-last CPU models. Returns the number
    of layers."""
    layers = [m for m in model.modules() if type(m) is nn.BatchNorm2d and m.num_features < FEW_CHANNELS]
    for m in layers:
        m.__class__ = FewChannelBatchNorm2d
    return len(layers)
