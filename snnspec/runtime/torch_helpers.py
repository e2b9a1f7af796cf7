"""Helpers of the generated torch modules, as real Python: `snnspec.runtime.helpers` copies each definition
into a module whose code calls it, so the module stays self-contained (it imports only torch, math, typing)."""

from __future__ import annotations

import torch
from torch import nn

try:
    import numba
except ImportError:  # neurons then run their plain step loop, which gives the same numbers
    numba = None

FUSED = True  # False: every neuron runs step by step under autograd (for debugging)
_KERNELS: dict = {}


def _fusable(x: torch.Tensor) -> bool:
    """Whether a fused kernel can run on `x`: numba is importable, the data is on the CPU and of a
    dtype numba computes in (half and bfloat16 run the plain step loop)."""
    if not FUSED or numba is None or torch.compiler.is_compiling():
        return False
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _compiled(kernel):
    """The numba-compiled kernel, compiled on first use (and cached on disk when this file is). IEEE
    arithmetic, as torch's: `x / 0` is inf or nan, never a ZeroDivisionError."""
    if kernel not in _KERNELS:
        try:
            _KERNELS[kernel] = numba.njit(cache=True, parallel=True, error_model="numpy")(kernel)
        except RuntimeError:  # no file to cache next to (source executed from a string)
            _KERNELS[kernel] = numba.njit(parallel=True, error_model="numpy")(kernel)
    return _KERNELS[kernel]


def _sum_to(grad: torch.Tensor, shape) -> torch.Tensor:
    """A per-element gradient summed to a param's shape (a scalar param gets the total)."""
    return grad.sum() if len(shape) == 0 else grad.sum_to_size(shape)


def _tensor(value) -> torch.Tensor:
    """A param value as a tensor of the default float dtype (or its own, if already a tensor)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return torch.tensor(float(value), dtype=torch.get_default_dtype())


def _plastic(layer: nn.Module) -> None:
    """Make a layer's parameters buffers: a plasticity rule changes them, not the optimiser."""
    for name, param in list(layer.named_parameters(recurse=False)):
        delattr(layer, name)
        layer.register_buffer(name, param.detach().clone())


def _batch_mean(w: torch.Tensor) -> torch.Tensor:
    """A plastic weight [post, pre] from per-sample values [batch, post, pre]: their mean."""
    return w.mean(0) if w.dim() == 3 else w


def _heaviside(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def _repeat(x: torch.Tensor, steps: int) -> torch.Tensor:
    """The same value at every step: [batch, ...] -> [steps, batch, ...], without a copy."""
    return x.unsqueeze(0).expand(steps, *x.shape)


def _fold_time(fn, x: torch.Tensor, *args) -> torch.Tensor:
    """Apply a per-sample op to all steps at once: [T, batch, ...] as [T * batch, ...]."""
    return fn(x.flatten(0, 1), *args).unflatten(0, x.shape[:2])


def _shift(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Delay a [T, batch, ...] sequence by `steps`, with zeros at the start."""
    if steps >= x.shape[0]:
        return torch.zeros_like(x)
    return torch.cat([torch.zeros_like(x[:steps]), x[: x.shape[0] - steps]])


def _delayed(buffer: list, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Inside a step loop: the value pushed `steps` calls ago (zeros until then)."""
    buffer.append(x)
    return buffer.pop(0) if len(buffer) > steps else torch.zeros_like(x)


def _lateral(s: torch.Tensor, w: float, first: int) -> torch.Tensor:
    """Fixed all-to-all inhibition: each neuron gets -w times the spikes of all the others."""
    total = s.sum(dim=tuple(range(first, s.dim())), keepdim=True)
    return -w * (total - s)


class SequenceDropout(nn.Module):
    """Dropout with one mask per sequence, kept over every time step; the identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def draw(self, shape, like: torch.Tensor):
        if not self.training or self.p == 0:
            return None
        keep = 1.0 - self.p
        return torch.bernoulli(torch.full(shape, keep, dtype=like.dtype, device=like.device)) / keep

    def forward(self, x: torch.Tensor, time_axis: bool = False, mask=None) -> torch.Tensor:
        if mask is None:
            mask = self.draw(x.shape[1:] if time_axis else x.shape, x)
        return x if mask is None else x * mask
