"""The network's execution plan: values in SI, every shape, which paths are recurrent, and the
groups of layers that must run step by step because a recurrent path closes a cycle through them.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import ir


def step_major_groups(layers: list[str], paths: list[ir.LPath]) -> tuple[tuple[str, ...], ...]:
    """Consecutive runs of layers, in declaration order. A recurrent path from layer j back to
    layer i (i <= j) puts layers i..j into one group that runs step-major; every other layer is
    a group of its own and runs layer-major (all T steps at once)."""
    index = {name: i for i, name in enumerate(layers)}
    group_of = list(range(len(layers)))
    for p in paths:
        if p.recurrent:
            lo, hi = index[p.dst], index[p.src]
            for k in range(lo, hi + 1):
                group_of[k] = group_of[lo]
    groups: list[list[str]] = []
    for i, name in enumerate(layers):
        if groups and group_of[i] == group_of[i - 1]:
            groups[-1].append(name)
        else:
            groups.append([name])
    return tuple(tuple(g) for g in groups)


def lower_network(net: ir.Network, spec: ir.Spec) -> ir.LNetwork:
    """Lower a checked network from the values its checks evaluated (`net.facts`)."""
    facts = net.facts
    assert facts is not None, f"network '{net.name}' has not passed the checks"
    neurons: Mapping[str, ir.Neuron] = {la.name: spec.neurons[la.neuron] for la in net.layers}
    order = {la.name: i for i, la in enumerate(net.layers)}
    paths = []
    for i, (path, evaluated) in enumerate(zip(net.paths, facts.paths)):
        paths.append(ir.LPath(
            index=i, src=path.src.name, src_var=path.src.var or ("spike" if path.src.name in order else "value"),
            dst=path.dst.name, dst_input=path.dst.var or neurons[path.dst.name].inputs[0].name, ops=evaluated.ops,
            recurrent=path.src.name in order and order[path.src.name] >= order[path.dst.name],
            frozen=path.frozen, learn=path.learn.name if path.learn else None, learn_args=evaluated.learn_args,
            line=path.span.line if path.span else None))

    layers = []
    for la in net.layers:
        assert la.shape is not None  # the checks inferred every shape
        layers.append(ir.LLayer(name=la.name, neuron=la.neuron, shape=la.shape, overrides=facts.overrides[la.name],
                                line=la.span.line if la.span else None))
    groups = step_major_groups([la.name for la in layers], paths)
    in_cycle = {name for g in groups for name in g if len(g) > 1}
    in_cycle |= {p.dst for p in paths if p.recurrent or p.learn}  # plastic weights change every step
    layers = [la.model_copy(update={"step_major": la.name in in_cycle}) for la in layers]
    return ir.LNetwork(
        name=net.name, file=net.span.file if net.span else spec.file, span=net.span, dt=facts.dt,
        dt_has_unit=facts.dt_has_unit,
        steps=net.steps, inputs=tuple(ir.LInput(name=i.name, shape=i.shape, encoding=i.encoding.name,
                                                args=facts.encodings[i.name],
                                                line=i.span.line if i.span else None) for i in net.inputs),
        layers=tuple(layers), paths=tuple(paths), groups=groups,
        outputs=tuple(ir.LOutput(name=o.name, layer=o.layer, var=o.var, readout=o.readout) for o in net.outputs),
        train=facts.train,
    )


def plastic_dense(net: ir.LNetwork) -> dict[int, int]:
    """Each plastic path's index -> the index of its `dense` op, whose weight the rule changes."""
    return {p.index: next(k for k, op in enumerate(p.ops) if op.name == "dense") for p in net.paths if p.learn}


def network_modulators(net: ir.LNetwork, rules: Mapping[str, ir.LRule]) -> list[str]:
    """The modulators of the rules a network's paths learn by, sorted: the network's run-time signals."""
    return sorted({m for p in net.paths if p.learn for m in rules[p.learn].modulators})
