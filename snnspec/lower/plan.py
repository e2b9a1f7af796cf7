"""The network's execution plan: values in SI, every shape, which paths are recurrent, and the
groups of layers that must run step by step because a recurrent path closes a cycle through them.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import ir
from ..check_network import PathInfo, encoding_args, infer_shapes, layer_overrides, network_dt, train_settings
from ..diagnostics import Diagnostics
from ..ops import op_args
from ..units import DIMENSIONLESS, TIME


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
    """Lower a checked network. Its checks passed, so nothing here can fail."""
    quiet = Diagnostics()
    neurons: Mapping[str, ir.Neuron] = {la.name: spec.neurons[la.neuron] for la in net.layers}
    rules = [spec.rules[p.learn.name] if p.learn else None for p in net.paths]
    units = any(n.uses_units for n in neurons.values()) or any(r.uses_units for r in rules if r)
    dt, dt_is_time = network_dt(net, units, quiet)
    dt_dim = TIME if dt_is_time else DIMENSIONLESS

    infos: list[PathInfo | None] = []
    for path in net.paths:
        bound = [op_args(op, quiet) for op in path.ops]
        infos.append(PathInfo([(op.name, b[0]) for op, b in zip(path.ops, bound) if b], DIMENSIONLESS))
    op_shapes: dict[int, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {}
    shapes = infer_shapes(net, infos, None, op_shapes)

    order = {la.name: i for i, la in enumerate(net.layers)}
    paths = []
    for i, (path, info) in enumerate(zip(net.paths, infos)):
        assert info is not None
        dst_neuron = neurons[path.dst.name]
        rule = rules[i]
        ops = tuple(ir.LOp(name=name, args={k: v for k, v in args.items() if v is not None} | (
                        {"features": shape_out[0]} if name == "dense" else {}),
                        in_shape=shape_in, out_shape=shape_out)
                    for (name, args), (shape_in, shape_out) in zip(info.ops, op_shapes[i]))
        paths.append(ir.LPath(
            index=i, src=path.src.name, src_var=path.src.var or ("spike" if path.src.name in order else "value"),
            dst=path.dst.name, dst_input=path.dst.var or dst_neuron.inputs[0].name, ops=ops,
            recurrent=path.src.name in order and order[path.src.name] >= order[path.dst.name],
            frozen=path.frozen, learn=rule.name if rule else None,
            learn_args=layer_overrides(ir.Layer(name=path.dst.name, neuron=rule.name), rule, dt, quiet,
                                       path.learn.args) if rule and path.learn else {},
            line=path.span.line if path.span else None))

    layers = [ir.LLayer(name=la.name, neuron=la.neuron, shape=shapes[la.name],
                        overrides=layer_overrides(la, neurons[la.name], dt, quiet),
                        line=la.span.line if la.span else None) for la in net.layers]
    groups = step_major_groups([la.name for la in layers], paths)
    in_cycle = {name for g in groups for name in g if len(g) > 1}
    in_cycle |= {p.dst for p in paths if p.recurrent or p.learn}  # plastic weights change every step
    layers = [la.model_copy(update={"step_major": la.name in in_cycle}) for la in layers]
    return ir.LNetwork(
        name=net.name, file=net.span.file if net.span else spec.file, dt=dt, dt_has_unit=dt_is_time,
        steps=net.steps, inputs=tuple(ir.LInput(name=i.name, shape=i.shape, encoding=i.encoding.name,
                                                args=encoding_args(i.encoding, dt, dt_dim, quiet),
                                                line=i.span.line if i.span else None) for i in net.inputs),
        layers=tuple(layers), paths=tuple(paths), groups=groups,
        outputs=tuple(ir.LOutput(name=o.name, layer=o.layer, var=o.var, readout=o.readout) for o in net.outputs),
        train=train_settings(net.train, quiet) if net.train else ir.LTrain(),
    )


def plastic_dense(net: ir.LNetwork) -> dict[int, int]:
    """Each plastic path's index -> the index of its `dense` op, whose weight the rule changes."""
    return {p.index: next(k for k, op in enumerate(p.ops) if op.name == "dense") for p in net.paths if p.learn}


def network_modulators(net: ir.LNetwork, rules: Mapping[str, ir.LRule]) -> list[str]:
    """The modulators of the rules a network's paths learn by, sorted: the network's run-time signals."""
    return sorted({m for p in net.paths if p.learn for m in rules[p.learn].modulators})
