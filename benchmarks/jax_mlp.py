"""Training-step speed of the generated JAX spiking MLP against hand-written `lax.scan` LIF MLPs.

Workloads (DESIGN.md): W1 = 784-1000-10, T=25, B=128; W2 = 700-128-20, T=500, B=32. Each
training step is forward + backward + Adam (optax), jitted, on the same random input spikes
[T, B, in], with cross-entropy on output spike counts. The network is snnTorch's Leaky MLP
(beta 0.95, threshold 1, subtract reset by the previous step's detached spike, atan surrogate).

Peers, all in this one process, interleaved, median reported:
  - snnspec (jax): the module `snnspec.compile(..., backend="jax")` generates for the spec below
    (on CPU it computes W1's input layer currents inside the scan, W2's for all steps at once:
    `PER_STEP_MACS`, docs/language-notes.md "JAX target");
  - hand, step-major: one `lax.scan` over time doing both layers per step (how the JAX tutorials
    write an SNN);
  - hand, layer-major: the input projection for all T steps as one matmul, a scan per layer
    (the fastest plain JAX we know how to write; the bar is within 1.1x of the faster hand peer);
  - GEMM floor: the same matmuls with no neuron dynamics.

    python benchmarks/jax_mlp.py [--workloads W1 W2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax

import snnspec

WORKLOADS = {"W1": (784, 1000, 10, 25, 128), "W2": (700, 128, 20, 500, 32)}
BETA, THRESHOLD = 0.95, 1.0

SPEC = """
from "std/neurons.snn" import Leaky
network MLP {{
    input x[{n_in}] encode none
    layer hidden = Leaky(beta = 0.95)[{n_hidden}]
    layer out    = Leaky(beta = 0.95)[{n_out}]
    x      -> dense -> hidden
    hidden -> dense -> out
    output out.spike count
}}
"""


@jax.custom_jvp
def spike_fn(x):
    return (x > 0).astype(x.dtype)


@spike_fn.defjvp
def _spike_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return spike_fn(x), x_dot / (1 + (jnp.pi * x) ** 2)  # atan(alpha = 2)


def leaky_scan(current):
    """One Leaky layer over time: current [T, B, N] -> spikes [T, B, N]."""

    def step(carry, i_t):
        mem, spk = carry
        mem = BETA * mem + i_t - lax.stop_gradient(spk) * THRESHOLD
        spk = spike_fn(mem - THRESHOLD)
        return (mem, spk), spk

    zeros = jnp.zeros(current.shape[1:], current.dtype)
    return lax.scan(step, (zeros, zeros), current)[1]


def hand_layer_major(params, x):
    h = leaky_scan(x @ params["x_hidden.weight"].T + params["x_hidden.bias"])
    out = leaky_scan(h @ params["hidden_out.weight"].T + params["hidden_out.bias"])
    return out.sum(0)


def hand_step_major(params, x):
    w1, b1 = params["x_hidden.weight"], params["x_hidden.bias"]
    w2, b2 = params["hidden_out.weight"], params["hidden_out.bias"]

    def step(carry, x_t):
        m1, s1, m2, s2 = carry
        m1 = BETA * m1 + x_t @ w1.T + b1 - lax.stop_gradient(s1) * THRESHOLD
        s1 = spike_fn(m1 - THRESHOLD)
        m2 = BETA * m2 + s1 @ w2.T + b2 - lax.stop_gradient(s2) * THRESHOLD
        s2 = spike_fn(m2 - THRESHOLD)
        return (m1, s1, m2, s2), s2

    batch = x.shape[1]
    h0 = jnp.zeros((batch, w1.shape[0]), x.dtype)
    o0 = jnp.zeros((batch, w2.shape[0]), x.dtype)
    return lax.scan(step, (h0, h0, o0, o0), x)[1].sum(0)


def gemm_floor(params, x):
    h = x @ params["x_hidden.weight"].T + params["x_hidden.bias"]
    return (h @ params["hidden_out.weight"].T + params["hidden_out.bias"]).sum(0)


def trainer(forward: Callable, params: dict, x: jax.Array, y: jax.Array) -> Callable[[], None]:
    opt = optax.adam(1e-3)

    @jax.jit
    def train_step(params, opt_state, x, y):
        def loss_fn(p):
            return optax.softmax_cross_entropy_with_integer_labels(forward(p, x), y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt": opt.init(params)}

    def run() -> None:
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], x, y)
        loss.block_until_ready()

    return run


def measure(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 3) -> dict[str, tuple[float, float]]:
    """(median, min) ms per call of each peer."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():  # interleaved, so drift hits every peer alike
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(ts) * 1e3, min(ts) * 1e3) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}); "
          "median ms per training step (fwd + bwd + Adam, jitted)")
    key = jax.random.PRNGKey(0)
    for name in args.workloads:
        n_in, n_hidden, n_out, T, B = WORKLOADS[name]
        kx, ky, kp = jax.random.split(jax.random.fold_in(key, len(name)), 3)
        x = (jax.random.uniform(kx, (T, B, n_in)) < 0.1).astype(jnp.float32)
        y = jax.random.randint(ky, (B,), 0, n_out)
        module = snnspec.compile(text=SPEC.format(n_in=n_in, n_hidden=n_hidden, n_out=n_out), name="bench_mlp.snn",
                                 backend="jax")
        net = module.MLP
        params = net.init(kp)

        def generated_forward(p, x, net=net):
            return net.apply(p, x).out_spike

        generated = jax.jit(generated_forward)
        # the peers compute the same function: check once before timing
        for fn in (hand_layer_major, hand_step_major):
            assert jnp.allclose(generated(params, x), jax.jit(fn)(params, x)), fn.__name__
        peers = {
            "GEMM floor": trainer(gemm_floor, params, x, y),
            "snnspec (jax)": trainer(generated_forward, params, x, y),
            "hand, layer-major": trainer(hand_layer_major, params, x, y),
            "hand, step-major": trainer(hand_step_major, params, x, y),
        }
        result = measure(peers, args.repeats)
        floor = result["GEMM floor"][0]
        print(f"\n{name}: {n_in}-{n_hidden}-{n_out}, T={T}, B={B}   (median ms, min ms)")
        for peer, (ms, best_ms) in result.items():
            print(f"  {peer:<18} {ms:8.2f} ms  {best_ms:8.2f} ms   x{ms / floor:5.2f} floor")
        for k, stat in ((0, "median"), (1, "min")):
            best = min(result["hand, layer-major"][k], result["hand, step-major"][k])
            ratio = result["snnspec (jax)"][k] / best
            print(f"  snnspec / fastest hand-written ({stat}) = {ratio:.3f} "
                  f"({'within' if ratio <= 1.1 else 'OVER'} the 1.1x bar)")


if __name__ == "__main__":
    main()
