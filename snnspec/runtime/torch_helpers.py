"""Helpers of the generated torch modules, as real Python: `snnspec.runtime.helpers` copies each definition
into a module whose code calls it, so the module stays self-contained (it imports only torch, math, typing)."""

from __future__ import annotations

import torch
from torch import nn

try:
    import numba
except ImportError:  # neurons then run their plain step loop, which gives the same numbers
    numba = None

try:  # Triton kernels run on CUDA tensors, and on CPU tensors under TRITON_INTERPRET=1 (as the tests run them)
    import os

    import triton
    import triton.language as tl
except ImportError:
    triton = tl = None

# Which kernels run a fused neuron: "auto" (numba on CPU tensors, Triton on CUDA tensors, else the plain
# step loop), "numba", "triton" or "plain" (every neuron step by step under autograd, for debugging).
# A layer's `kernels` attribute, where set, overrides it; FUSED = False is the same as "plain".
KERNELS = "auto"
FUSED = True
_KERNELS: dict = {}


def _kernels(x: torch.Tensor, choice: str | None, triton_kernels: bool = True) -> str:
    """The kernels that run a layer on `x`: "numba", "triton" or "plain". Automatic choices fall back to
    the plain loop (which gives the same numbers) where a library or device is missing; a choice made by
    name fails with the reason instead. `triton_kernels`: the neuron has Triton kernels at all."""
    choice = KERNELS if choice is None else choice
    if choice == "plain" or not FUSED or torch.compiler.is_compiling():
        return "plain"
    if choice == "auto":
        if x.device.type == "cuda":
            return "triton" if triton is not None and triton_kernels else "plain"
        return "numba" if numba is not None and x.device.type == "cpu" else "plain"
    if choice == "numba":
        problem = "numba is not installed" if numba is None else (
            f"numba runs on CPU tensors, not {x.device.type}" if x.device.type != "cpu" else "")
    elif choice == "triton":
        interpreted = triton is not None and os.environ.get("TRITON_INTERPRET") == "1"
        problem = "Triton is not installed" if triton is None else (
            "this neuron has no Triton kernels (see the generated file)" if not triton_kernels else
            "Triton runs on CUDA tensors (on CPU tensors only with TRITON_INTERPRET=1)"
            if x.device.type != "cuda" and not (interpreted and x.device.type == "cpu") else "")
    else:
        raise ValueError(f"kernels must be 'auto', 'numba', 'triton' or 'plain', not {choice!r}")
    if problem:
        raise RuntimeError(f"kernels {choice!r} cannot run here: {problem}; use 'auto' or 'plain'")
    return choice


def _work_dtype(kernels: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype a fused kernel computes in: Triton kernels read and write any float dtype (computing in
    float32 or float64); numba's compute in float64 for float64 data, else in float32 (half, bfloat16)."""
    return dtype if kernels == "triton" or dtype == torch.float64 else torch.float32


def _compiled(kernel):
    """The numba-compiled kernel, compiled on first use (and cached on disk when this file is). IEEE
    arithmetic, as torch's: `x / 0` is inf or nan, never a ZeroDivisionError."""
    if kernel not in _KERNELS:
        try:
            _KERNELS[kernel] = numba.njit(cache=True, parallel=True, error_model="numpy")(kernel)
        except RuntimeError:  # no file to cache next to (source executed from a string)
            _KERNELS[kernel] = numba.njit(parallel=True, error_model="numpy")(kernel)
    return _KERNELS[kernel]


def _launch(kernel, *args, recording: bool) -> None:
    """Run a Triton kernel, compiled on first use, on its arguments (..., T, M): one program per block of
    the M elements, computing in float64 for float64 data and in float32 otherwise."""
    if kernel not in _KERNELS:
        _KERNELS[kernel] = triton.jit(kernel)
    M = args[-1]
    data = next(a for a in args if isinstance(a, torch.Tensor))
    block = 128 if data.is_cuda else min(1024, triton.next_power_of_2(M))  # the interpreter: few, wide programs
    compute = tl.float64 if data.dtype == torch.float64 else tl.float32
    _KERNELS[kernel][(triton.cdiv(M, block),)](*args, BLOCK=block, COMPUTE=compute, RECORDING=recording)


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
