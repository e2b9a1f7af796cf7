"""Helpers of the generated JAX modules, as real Python: `snnspec.runtime.helpers` copies each definition
into a module whose code calls it, so the module stays self-contained (it imports only jax, math, typing)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax


def _heaviside(x):
    return (x > 0).astype(jnp.result_type(x, float))


def _abs(x):
    """`torch.abs`: |x| with gradient sign(x), 0 at 0 (where `jnp.abs` has 1)."""
    return x * jnp.sign(x)


def _clamp(x, lo=None, hi=None):
    """`torch.clamp`: the gradient passes where lo <= x <= hi, bounds included; hi wins if lo > hi."""
    if lo is not None:
        x = jnp.where(x < lo, lo, x)
    if hi is not None:
        x = jnp.where(x > hi, hi, x)
    return x


def _batch_mean(w):
    """A plastic weight [post, pre] from per-sample values [batch, post, pre]: their mean."""
    return jnp.mean(w, 0) if w.ndim == 3 else w


def _float_dtype(params):
    """The floating dtype of a params pytree (the default float dtype if it holds none)."""
    leaves = [a for a in jax.tree_util.tree_leaves(params) if jnp.issubdtype(jnp.result_type(a), jnp.floating)]
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


def _uniform(key, shape, bound, dtype):
    """torch's default init for weights and biases: uniform on [-bound, bound]."""
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def _dense(x, weight, bias=None):
    """`nn.Linear`: x @ weight.T + bias, weight [out, in], over any leading axes."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _fold_time(fn, x, *args):
    """Apply a per-sample op to all steps at once: [T, batch, ...] as [T * batch, ...]."""
    y = fn(x.reshape((-1, *x.shape[2:])), *args)
    return y.reshape((*x.shape[:2], *y.shape[1:]))


def _conv(x, weight, bias, stride, padding):
    """`nn.Conv1d` / `nn.Conv2d` on [batch, C, ...] with weight [out, in, *kernel] (NCH / NCHW)."""
    nd = weight.ndim - 2
    layout = ("NCH", "OIH", "NCH") if nd == 1 else ("NCHW", "OIHW", "NCHW")
    y = lax.conv_general_dilated(x, weight, (stride,) * nd, [(padding, padding)] * nd, dimension_numbers=layout)
    return y if bias is None else y + bias.reshape((-1,) + (1,) * nd)


def _maxpool(x, kernel, nd):
    """`max_pool1d/2d(x, kernel)` over the last `nd` axes (stride = kernel, remainder dropped)."""
    window = (1,) * (x.ndim - nd) + (kernel,) * nd
    return lax.reduce_window(x, -jnp.inf, lax.max, window, window, "VALID")


def _avgpool(x, kernel, nd):
    """`avg_pool1d/2d(x, kernel)` over the last `nd` axes (stride = kernel, remainder dropped)."""
    window = (1,) * (x.ndim - nd) + (kernel,) * nd
    return lax.reduce_window(x, 0.0, lax.add, window, window, "VALID") / kernel ** nd


def _channel_mean(x, axis):
    """The mean over every axis but `axis`, summed in blocks of about sqrt(n): XLA's CPU reductions
    add serially, which loses ~1e-6 relative over a few hundred values (torch sums pairwise)."""
    c = jnp.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    n = c.shape[1]
    block = max(1, math.isqrt(n))
    c = jnp.pad(c, ((0, 0), (0, -n % block)))
    return c.reshape(c.shape[0], -1, block).sum(-1).sum(-1) / n


def _batchnorm(x, weight, bias, stats, axis, train, momentum, eps):
    """`nn.BatchNorm1d/2d` with channels on `axis`, statistics over every other axis (batch and
    time). Returns the output and the running statistics, updated in training as torch does
    (momentum, unbiased variance) and unchanged in evaluation."""
    mean, var, count = stats
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    if train:
        n = x.size // x.shape[axis]
        use_mean = _channel_mean(x, axis)
        use_var = _channel_mean(jnp.square(x - use_mean.reshape(shape)), axis)
        seen_mean, seen_var = lax.stop_gradient(use_mean), lax.stop_gradient(use_var)
        stats = ((1 - momentum) * mean + momentum * seen_mean,
                 (1 - momentum) * var + momentum * seen_var * (n / max(n - 1, 1)), count + 1)
    else:
        use_mean, use_var = mean, var
    y = (x - use_mean.reshape(shape)) * lax.rsqrt(use_var.reshape(shape) + eps)
    return y * weight.reshape(shape) + bias.reshape(shape), stats


def _dropout_mask(key, p, shape, dtype):
    """One dropout mask per sequence: kept units scaled by 1 / (1 - p)."""
    keep = 1.0 - p
    return jax.random.bernoulli(key, keep, shape).astype(dtype) / keep


def _dropout(x, mask):
    return x if mask is None else x * mask


def _shift(x, steps):
    """Delay a [T, batch, ...] sequence by `steps`, with zeros at the start."""
    if steps >= x.shape[0]:
        return jnp.zeros_like(x)
    return jnp.concatenate([jnp.zeros_like(x[:steps]), x[: x.shape[0] - steps]])


def _delayed(buffer, x):
    """Inside a step loop: the value pushed `len(buffer)` steps ago (zeros until then), and the new buffer."""
    return buffer[0], jnp.concatenate([buffer[1:], x[None].astype(buffer.dtype)])


def _lateral(s, w, first):
    """Fixed all-to-all inhibition: each neuron gets -w times the spikes of all the others."""
    total = jnp.sum(s, axis=tuple(range(first, s.ndim)), keepdims=True)
    return -w * (total - s)


PER_STEP_MACS = 2 ** 24


def _per_step(macs):
    """Whether a layer-major layer computes its currents inside its scan, one step at a time, rather
    than for all steps at once before it. Both give the same numbers. On CPU a product of at least
    `PER_STEP_MACS` multiply-adds per step is as fast step by step, and its result stays in cache;
    elsewhere (GPU, TPU) the one large product is faster."""
    return macs >= PER_STEP_MACS and jax.default_backend() == "cpu"


def _run_per_step(neuron, p, currents, sequences, dt, record=False):
    """`neuron.run` on `currents(*values at step i)` for each step i of `sequences` [T, batch, ...]."""
    first = currents(*(s[0] for s in sequences))
    state = neuron.init_state(p, first[0].shape[0], first[0].shape[1:], dt=dt, dtype=first[0].dtype)

    def body(state, xs):
        out, state = neuron.step(p, *currents(*xs), state, dt=dt)
        return state, (out, state) if record else (out, None)

    state, (outputs, stacked) = lax.scan(body, state, sequences)
    return outputs, state, stacked


def _repeat(x, steps):
    """The same value at every step: [batch, ...] -> [steps, batch, ...]."""
    return jnp.broadcast_to(x[None], (steps, *x.shape))


def _rate(key, x, steps):
    """Rate coding: Bernoulli spikes with probability clip(x, 0, 1) on each of `steps` steps."""
    p = jnp.broadcast_to(jnp.clip(x, 0.0, 1.0), (steps, *x.shape))
    return jax.random.bernoulli(key, p).astype(x.dtype)
