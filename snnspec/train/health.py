"""The gradient-health report: per layer, the gradient norms of its weights and input current, its
spike rate, its silent and saturated neurons and the surrogate's mean value, for one batch.

For users' own loops, around one forward and backward of a generated torch network:

    rec = GradRecorder(net, "specs/examples/deep_resnet.snn")
    with rec:
        loss = loss_fn(net(x))
        opt.zero_grad(); loss.backward()
    print(rec.report().warning)

or `grad_report(net, spec, x, loss_fn)`, which does the same (and leaves the gradients in `p.grad`).

How it records, without changing the generated code: inside `with`, every layer module runs its
plain step loop (`kernels = "plain"`: the same numbers as the fused kernels) with its `step` wrapped
on the instance, so each step's input current passes through an identity (`clone`) whose
gradient a tensor hook reads, and its spikes are counted. The surrogate's value is that of the
generated `<Neuron>Spike` function itself: while recording, the module's global of that name is
replaced by a tap that evaluates the original's backward at the same `x` (the spike condition's
LHS - RHS) and passes the call on. Everything is restored on leaving the `with`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import ir
from .health_warn import Hints, gradient_warning
from .model import select_network


@dataclass
class LayerHealth:
    """One layer's record. Norms are Euclidean over every element (steps, batch, neurons); rates
    and fractions are over the batch's (sample, neuron) pairs; None where it does not apply."""

    layer: str
    depth: int                    # 1-based, in the order layers are declared (and computed)
    weight_grad: float | None     # the learnable arrays of the paths into the layer (None: it has none)
    current_grad: float | None    # d loss / d input current, over all steps (and all its named inputs)
    spike_rate: float | None      # spikes per neuron and step
    silent: float | None          # fraction that never spiked over the run
    saturated: float | None       # fraction that spiked on every step
    surrogate: float | None       # mean of d spike / d x over steps, batch and neurons


@dataclass
class HealthReport:
    layers: list[LayerHealth]
    warning: str | None
    hints: Hints = field(default_factory=Hints)  # what the warning's advice may name (not saved)

    def to_json(self) -> dict[str, Any]:
        return {"layers": [asdict(la) for la in self.layers], "warning": self.warning}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HealthReport:
        return cls([LayerHealth(**la) for la in data["layers"]], data["warning"])


SpecLike = ir.LNetwork | ir.LoweredSpec | str | Path  # a lowered network, a lowered spec, or a spec's path


def _lowered_network(spec: SpecLike, network: str | None) -> tuple[ir.LNetwork, dict[str, ir.LNeuron]]:
    """The network, and the neurons where known (an LNetwork alone does not hold them)."""
    if isinstance(spec, ir.LNetwork):
        return spec, {}
    if not isinstance(spec, ir.LoweredSpec):
        from .. import load_lowered

        spec = load_lowered(spec)
    return select_network(spec, network), dict(spec.neurons)


PROJECTIONS = ("dense", "conv1d", "conv2d")  # ops that sum over inputs: a batchnorm after them normalises


def hints(network: ir.LNetwork, neurons: dict[str, ir.LNeuron]) -> Hints:
    """Each layer's surrogate (where its neuron is known), and the layers whose every path with a
    dense or conv op normalises its current with a batchnorm after the last of them."""
    def normalised(path: ir.LPath) -> bool:
        names = [op.name for op in path.ops]
        weighted = [k for k, n in enumerate(names) if n in PROJECTIONS]
        return not weighted or "batchnorm" in names[weighted[-1]:]

    surrogates = {}
    for la in network.layers:
        spike = neurons[la.neuron].spike if la.neuron in neurons else None
        if spike is not None:
            surrogates[la.name] = spike.surrogate
    return Hints(surrogates, frozenset(la.name for la in network.layers
                                       if all(normalised(p) for p in network.paths if p.dst == la.name)),
                 frozenset(out.layer for out in network.outputs))


class _Tally:
    """What one layer's steps left: squared current-gradient sum, spike counts, surrogate sums."""

    def __init__(self) -> None:
        self.grad2 = 0.0
        self.has_grad = False
        self.counts: torch.Tensor | None = None
        self.steps = 0
        self.sg_sum = 0.0
        self.sg_n = 0

    def add_grad(self, g: torch.Tensor) -> None:
        self.grad2 += float(g.detach().double().pow(2).sum())
        self.has_grad = True


class GradRecorder:
    """Records the health of a generated torch network over the forward and backward run inside
    `with`; read it with `report()` after `backward()` (see the module docstring)."""

    def __init__(self, net: nn.Module, spec: SpecLike, network: str | None = None) -> None:
        self.net = net
        self.ir, neurons = _lowered_network(spec, network)
        self.hints = hints(self.ir, neurons)
        if self.ir.program is None:
            raise ValueError(f"network '{self.ir.name}' has no lowered program")
        self.program = self.ir.program
        self.tallies: dict[str, _Tally] = {}
        self._restore: list[Callable[[], None]] = []
        self._current: list[str] = []

    def __enter__(self) -> GradRecorder:
        self.tallies = {la.name: _Tally() for la in self.ir.layers}
        for la in self.ir.layers:
            self._wrap(la.name, getattr(self.net, self.program.layer_attrs[la.name]))
        return self

    def __exit__(self, *exc: object) -> None:
        while self._restore:
            self._restore.pop()()

    def _wrap(self, name: str, mod: Any) -> None:  # a generated neuron module
        tally, step = self.tallies[name], mod.step
        spiking = f"{type(mod).__name__}Spike" in step.__globals__
        fused = hasattr(mod, "kernels")  # a neuron with fused kernels
        was_kernels = getattr(mod, "kernels", None)

        def tapped(current: Any) -> Any:
            if isinstance(current, torch.Tensor) and current.requires_grad:
                current = current.clone()
                current.register_hook(tally.add_grad)
            return current

        def recorded(p: Any, *args: Any, **kwargs: Any) -> Any:
            # step(p, *inputs, state, t): one current per named input, then the state (a NamedTuple)
            k = next((i for i, a in enumerate(args) if isinstance(a, tuple)), len(args))
            self._current.append(name)
            try:
                out, new = step(p, *map(tapped, args[:k]), *args[k:], **kwargs)
            finally:
                self._current.pop()
            if spiking:
                s = out.detach()
                tally.counts = s if tally.counts is None else tally.counts + s
                tally.steps += 1
            return out, new

        mod.step = recorded  # an instance attribute: run() and the network's step loops call it
        if fused:
            mod.kernels = "plain"

        def restore() -> None:
            del mod.step
            if fused:
                mod.kernels = was_kernels

        self._restore.append(restore)
        if spiking:
            self._tap(f"{type(mod).__name__}Spike", step.__globals__)

    def _tap(self, key: str, space: dict[str, Any]) -> None:
        original = space[key]
        if isinstance(original, _SpikeTap):
            return
        space[key] = _SpikeTap(original, self)
        self._restore.append(lambda: space.__setitem__(key, original))

    def report(self) -> HealthReport:
        """The record, layer by layer in depth order, with the warning (health_warn.py) if any."""
        weights = _weight_norms(self.net, self.ir)
        layers = []
        for depth, la in enumerate(self.ir.layers, 1):
            t = self.tallies.get(la.name) or _Tally()
            rate = silent = saturated = None
            if t.counts is not None and t.steps:
                c = t.counts.reshape(-1)
                rate = float(c.sum()) / (c.numel() * t.steps)
                silent = float((c == 0).double().mean())
                saturated = float((c == t.steps).double().mean())
            layers.append(LayerHealth(
                la.name, depth, weights.get(la.name), math.sqrt(t.grad2) if t.has_grad else None,
                rate, silent, saturated, t.sg_sum / t.sg_n if t.sg_n else None))
        return HealthReport(layers, gradient_warning(layers, self.hints), self.hints)


class _SpikeTap:
    """Stands in for a generated `<Neuron>Spike` while recording: the same `apply`, plus the mean of
    the original's backward (d spike / d x, grad_output = 1) at the x it is given."""

    def __init__(self, original: Any, rec: GradRecorder) -> None:
        self.original, self.rec = original, rec

    def apply(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        if self.rec._current:
            xd = x.detach().requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(self.original.apply(xd, *(a.detach() for a in args)).sum(), xd)
            t = self.rec.tallies[self.rec._current[-1]]
            t.sg_sum += float(g.double().sum())
            t.sg_n += g.numel()
        return self.original.apply(x, *args)


def _weight_norms(net: nn.Module, network: ir.LNetwork) -> dict[str, float]:
    """Per layer, the norm of the gradients of the learnable arrays (parameter table rows with a
    path) of the paths into it; an array without a gradient counts as zero."""
    assert network.program is not None
    named = dict(net.named_parameters())
    dst = {p.index: p.dst for p in network.paths}
    sums: dict[str, float] = {}
    for row in network.program.params:
        if row.path is None or row.role != "learnable" or row.key not in named:
            continue
        g = named[row.key].grad
        layer = dst[row.path]
        sums[layer] = sums.get(layer, 0.0) + (float(g.detach().double().pow(2).sum()) if g is not None else 0.0)
    return {k: math.sqrt(v) for k, v in sums.items()}


def grad_report(net: nn.Module, spec: SpecLike, x: torch.Tensor,
                loss_fn: Callable[[Any], torch.Tensor], network: str | None = None) -> HealthReport:
    """The health of `net` on the batch `x`: zeroes the gradients, runs `loss_fn(net(x))` forward
    and backward under a `GradRecorder`, and returns its report (the gradients stay in `p.grad`)."""
    rec = GradRecorder(net, spec, network)
    net.zero_grad(set_to_none=True)
    with rec:
        loss_fn(net(x)).backward()
    return rec.report()
