"""Outputs and gradients of every example network and every std neuron, on three paths (fused torch,
plain torch, JAX), saved to one `.npz`; `--compare OLD.npz` says whether a refactor kept them
bit-identical.

    python scripts/numbers_snapshot.py before.npz              # on the old tree
    python scripts/numbers_snapshot.py after.npz --compare before.npz

Inputs are fixed (seeded) and random draws (rate coding, dropout) use torch's and JAX's own
seeded generators, so two runs of the same code give the same numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import snnspec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.snn"))
STD = ROOT / "specs" / "std" / "neurons.snn"
BATCH = 2


def torch_inputs(net: torch.nn.Module, spec_net, gen: torch.Generator) -> list[torch.Tensor]:
    xs = []
    for inp in spec_net.inputs:
        lead = (spec_net.steps or 8, BATCH) if inp.encoding in ("none", "delta") else (BATCH,)
        xs.append(torch.rand((*lead, *inp.shape), generator=gen, dtype=torch.float64))
    return xs


def run_torch_network(path: Path, name: str, fused: bool, out: dict[str, np.ndarray]) -> None:
    lowered = snnspec.load_lowered(path)
    mod = snnspec.compile(path)
    mod.FUSED = fused
    tag = f"{path.stem}.{name}.{'fused' if fused else 'plain'}"
    torch.manual_seed(0)
    net = getattr(mod, name)().double()
    gen = torch.Generator().manual_seed(1)
    xs = torch_inputs(net, lowered.networks[name], gen)
    for x in xs:
        x.requires_grad_(True)
    torch.manual_seed(2)
    result = net(*xs)
    loss = sum((v.double() ** 2).sum() for v in result)
    loss.backward()
    for field, value in zip(result._fields, result):
        out[f"{tag}.out.{field}"] = value.detach().numpy()
    for k, x in enumerate(xs):
        out[f"{tag}.grad.x{k}"] = x.grad.numpy()
    for key, p in net.named_parameters():
        if p.grad is not None:
            out[f"{tag}.grad.{key}"] = p.grad.numpy()


def run_jax_network(path: Path, name: str, out: dict[str, np.ndarray]) -> None:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    lowered = snnspec.load_lowered(path)
    mod = snnspec.compile(path, backend="jax")
    net = getattr(mod, name)
    params = net.init(jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    gen = np.random.default_rng(1)
    xs = []
    for inp in lowered.networks[name].inputs:
        lead = (lowered.networks[name].steps or 8, BATCH) if inp.encoding in ("none", "delta") else (BATCH,)
        xs.append(jnp.asarray(gen.random((*lead, *inp.shape))))
    key = jax.random.PRNGKey(2)

    buffers = net.init_buffers(jax.random.PRNGKey(3)) if hasattr(net, "init_buffers") else None
    if buffers is not None:
        buffers = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating)
                                         else a, buffers)

    def loss(params, xs):
        result = net.apply(params, *xs, key=key, buffers=buffers) if buffers is not None else \
            net.apply(params, *xs, key=key)
        return sum(jnp.sum(jnp.asarray(v, jnp.float64) ** 2) for v in result), result

    (_, result), (g_params, g_xs) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs)
    tag = f"{path.stem}.{name}.jax"
    for field, value in zip(result._fields, result):
        out[f"{tag}.out.{field}"] = np.asarray(value)
    for k, g in enumerate(g_xs):
        out[f"{tag}.grad.x{k}"] = np.asarray(g)
    for key_, g in g_params.items():
        out[f"{tag}.grad.{key_}"] = np.asarray(g)


def run_std_neurons(out: dict[str, np.ndarray]) -> None:
    lowered = snnspec.load_lowered(STD)
    mod = snnspec.compile(STD)
    for name, neuron in lowered.neurons.items():
        for fused in (True, False):
            mod.FUSED = fused
            tag = f"std.{name}.{'fused' if fused else 'plain'}"
            layer = getattr(mod, name)((5,)).double()
            gen = torch.Generator().manual_seed(3)
            currents = [torch.rand((30, BATCH, 5), generator=gen, dtype=torch.float64) * 2
                        for _ in neuron.inputs]
            for c in currents:
                c.requires_grad_(True)
            spikes, final, _ = layer.run(*currents)
            loss = (spikes ** 2).sum() + sum((s ** 2).sum() for s in final)
            loss.backward()
            out[f"{tag}.out"] = spikes.detach().numpy()
            for k, c in enumerate(currents):
                out[f"{tag}.grad.I{k}"] = c.grad.numpy()
            for key, p in layer.named_parameters():
                if p.grad is not None:
                    out[f"{tag}.grad.{key}"] = p.grad.numpy()


def snapshot() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    run_std_neurons(out)
    for path in EXAMPLES:
        lowered = snnspec.load_lowered(path)
        for name in lowered.networks:
            for fused in (True, False):
                run_torch_network(path, name, fused, out)
            run_jax_network(path, name, out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--compare")
    args = parser.parse_args()
    out = snapshot()
    np.savez(args.output, **out)
    print(f"{len(out)} arrays -> {args.output}")
    if not args.compare:
        return 0
    old = dict(np.load(args.compare))
    missing = sorted(set(old) ^ set(out))
    differ = sorted(k for k in set(old) & set(out) if not np.array_equal(old[k], out[k], equal_nan=True))
    for k in missing:
        print("only in one:", k)
    for k in differ:
        print(f"differs: {k} (max abs {np.max(np.abs(old[k] - out[k])):.3g})")
    print("bit-identical" if not (missing or differ) else f"{len(differ)} differ, {len(missing)} unmatched")
    return 1 if missing or differ else 0


if __name__ == "__main__":
    sys.exit(main())
