"""Network checks (LANGUAGE.md §5): layers, overrides, paths, ops, shapes, outputs, training.

The values a network fixes (dt, overrides, op and encoding arguments, every shape) are evaluated
here, once: a network whose checks pass carries them to lowering as `ir.NetworkFacts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import ir
from .check import BUILTINS, check_local_names, constant
from .dependency import order_by_dependency
from .diagnostics import Diagnostics, did_you_mean
from .dims import Scope, dim_of
from .expr import EvalError, evaluate, names
from .ops import OPS, OpArgs, ShapeError, op_args, out_shape
from .units import DIMENSIONLESS, TIME, Dim, dim_name, parse_dim_name

if TYPE_CHECKING:
    from .check import _Checker

MAX_STEPS = 1_000_000  # a run allocates its inputs and records for every step

ENCODINGS: dict[str, dict[str, tuple[float, str]]] = {  # encoding -> arg -> (default, "time"|"value")
    "direct": {}, "rate": {}, "none": {},
    "latency": {"tau": (5.0, "time"), "threshold": (0.01, "value")},
    "delta": {"threshold": (0.1, "value")},
}
LOSSES: dict[str, dict[str, float]] = {
    "ce_rate": {}, "ce_count": {}, "ce_max_mem": {}, "first_spike": {},
    "mse_count": {"correct": 0.8, "incorrect": 0.2},
}
OPTIMIZERS: dict[str, dict[str, float]] = {
    "adam": {"lr": 5e-4, "weight_decay": 0.0}, "adamw": {"lr": 5e-4, "weight_decay": 0.01},
    "sgd": {"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0},
}


def network_dt(net: ir.Network, uses_units: bool, diags: Diagnostics) -> tuple[float, bool]:
    """The network's dt in SI (or steps) and whether it is a time."""
    if net.dt is None:
        return (1e-3, True) if uses_units else (1.0, False)
    dim = dim_of(net.dt, Scope({}, "dt"), diags)
    value = constant(net.dt, {}, diags, "dt") if dim is not None else None
    if dim is None or value is None:
        return (1e-3, True) if uses_units else (1.0, False)
    if dim != TIME and not dim.dimensionless:
        diags.error(f"dt must be a time, got {dim_name(dim)}", net.dt.span, "write e.g. `dt = 1 ms`")
    elif dim.dimensionless and uses_units:
        diags.error("dt must be a time because this network uses physical units", net.dt.span,
                    "write e.g. `dt = 1 ms`")
    if value <= 0:
        diags.error(f"dt must be positive, got {value:g}", net.dt.span)
    return value, dim == TIME or uses_units


def uses_dt(neuron: ir.Neuron | ir.Rule) -> bool:
    """Whether the block's meaning depends on the length of a step (ODEs, dt, t, refractory)."""
    if any(e.form == "ode" for e in neuron.equations):
        return True
    exprs: list[ir.Expr | None] = [p.default for p in neuron.params]
    exprs += [e.rhs for e in neuron.equations]
    if isinstance(neuron, ir.Neuron):
        exprs.append(neuron.refractory)
        exprs += [x.expr for x in neuron.lets]
    return any(e is not None and any(n.id in ("dt", "t") for n in names(e)) for e in exprs)


def param_values(block: ir.Neuron | ir.Rule, overrides: Mapping[str, float], dt: float,
                 diags: Diagnostics | None = None) -> dict[str, float]:
    """Every param's SI value for one layer (defaults, then overrides), in dependency order.

    A default that reads `dt` or another param and has no finite value here is reported to `diags` (one
    written in numbers alone is reported once, by the neuron's checks); a param without a value is NaN."""
    by_name = {p.name: p for p in block.params}
    order = order_by_dependency({p.name: p.default for p in block.params}, "param", {}, Diagnostics())
    env: dict[str, float] = {"dt": dt}
    for name in order:
        if name in overrides:
            env[name] = overrides[name]
            continue
        used = {n.id for n in names(by_name[name].default)} & env.keys()
        found = Diagnostics()
        value = constant(by_name[name].default, env, found, f"the default of param '{name}' (with dt = {dt:g})")
        env[name] = value if value is not None else math.nan
        if diags is not None and used and all(not math.isnan(env[u]) for u in used):
            diags.items.extend(d for d in found.items if d not in diags.items)  # once for all the layers
    return env


@dataclass
class PathInfo:
    """What the checker learned about one path: its evaluated op and `learn` arguments."""

    ops: list[tuple[str, OpArgs]]
    learn_args: dict[str, float]


def check_network(net: ir.Network, checker: _Checker, diags: Diagnostics) -> ir.Network:
    """The network with every layer's shape, and its `facts` if its checks pass."""
    errors = len(diags.errors)
    kinds = check_local_names([*((i.name, "input", i.span) for i in net.inputs),
                               *((la.name, "layer", la.span) for la in net.layers)], diags, reserved=BUILTINS)
    neurons: dict[str, ir.Neuron] = {}
    for layer in net.layers:
        found = checker.lookup(net, layer.neuron, ir.Neuron, layer.span, "neuron")
        if found is not None:
            neurons[layer.name] = checker.check(found)
    rules: dict[int, ir.Rule] = {}
    for i, path in enumerate(net.paths):
        if path.learn is not None:
            found = checker.lookup(net, path.learn.name, ir.Rule, path.learn.span, "rule")
            if found is not None:
                rules[i] = checker.check(found)

    units = any(n.uses_units for n in neurons.values()) or any(r.uses_units for r in rules.values())
    dt, dt_is_time = network_dt(net, units, diags)
    dt_dim = TIME if dt_is_time else DIMENSIONLESS
    for layer in net.layers:
        n = neurons.get(layer.name)
        if n is not None and not n.uses_units and dt_is_time and uses_dt(n):
            diags.error(f"neuron '{n.name}' has no units, so it counts time in steps, but this network's dt is a time",
                        layer.span, "give the neuron's time constants units (e.g. `10 ms`), or remove the unit from dt")

    if net.steps is not None and not 1 <= net.steps <= MAX_STEPS:
        diags.error(f"steps must be from 1 to {MAX_STEPS:,}, got {net.steps:,}", net.span,
                    "a run holds its inputs and records for every step: simulate a longer time in several runs")
    if net.steps is None and any(i.encoding.name not in ("none", "delta") for i in net.inputs):
        diags.error(f"network '{net.name}' needs `steps = N`: how many steps to present its inputs", net.span,
                    "add e.g. `steps = 25`")
    encodings = {inp.name: _check_input(inp, dt, dt_dim, diags) for inp in net.inputs}
    if not net.inputs:
        diags.error(f"network '{net.name}' has no input", net.span, "add e.g. `input x[784] encode rate`")

    overrides: dict[str, dict[str, float]] = {}
    for layer in net.layers:
        if layer.name in neurons:
            overrides[layer.name] = layer_overrides(layer, neurons[layer.name], dt, diags)
        if layer.shape is not None and any(d < 1 for d in layer.shape):
            diags.error(f"layer '{layer.name}' has an empty shape", layer.span)

    infos = [_check_path(i, p, net, kinds, neurons, rules.get(i), dt, diags) for i, p in enumerate(net.paths)]
    shapes, ops = infer_shapes(net, infos, diags)
    _check_outputs(net, neurons, diags)
    train = train_settings(net.train, diags) if net.train is not None else ir.LTrain()
    layers = tuple(la.model_copy(update={"shape": shapes.get(la.name, la.shape)}) for la in net.layers)
    if len(diags.errors) > errors:
        return net.model_copy(update={"layers": layers})
    paths = []
    for i, info in enumerate(infos):
        assert info is not None  # a path that fails a check reports an error
        paths.append(ir.PathFacts(ops=ops[i], learn_args=info.learn_args))
    facts = ir.NetworkFacts(dt=dt, dt_has_unit=dt_is_time, overrides=overrides, encodings=encodings,
                            paths=tuple(paths), train=train)
    return net.model_copy(update={"layers": layers, "facts": facts})


def _check_input(inp: ir.NetInput, dt: float, dt_dim: Dim, diags: Diagnostics) -> dict[str, float]:
    """The input's encoding arguments, after checking its shape and them."""
    if any(d < 1 for d in inp.shape):
        diags.error(f"input '{inp.name}' has an empty shape", inp.span)
    return encoding_args(inp.encoding, dt, dt_dim, diags)


def encoding_args(enc: ir.Encoding, dt: float, dt_dim: Dim, diags: Diagnostics) -> dict[str, float]:
    """An encoding's arguments in SI (time arguments in seconds, or steps without units)."""
    known = ENCODINGS[enc.name]
    values = {name: default * (dt if kind == "time" else 1.0) for name, (default, kind) in known.items()}
    for a in enc.args:
        if a.name not in known:
            hint = did_you_mean(a.name, known) or (f"its arguments: {', '.join(known)}" if known else "it takes none")
            diags.error(f"encoding '{enc.name}' has no argument '{a.name}'", a.span, hint)
            continue
        want = dt_dim if known[a.name][1] == "time" else DIMENSIONLESS
        dim = dim_of(a.value, Scope({}, "an encoding argument"), diags)
        if dim is not None and dim != want:
            diags.error(f"'{a.name}' of {enc.name} must be {dim_name(want)}, got {dim_name(dim)}", a.value.span)
            continue
        value = constant(a.value, {}, diags, f"'{a.name}'")
        if value is not None:
            if value <= 0:
                diags.error(f"'{a.name}' of {enc.name} must be positive, got {value:g}", a.value.span)
            values[a.name] = value
    return values


def layer_overrides(layer: ir.Layer, neuron: ir.Neuron | ir.Rule, dt: float, diags: Diagnostics,
                    args: tuple[ir.Arg, ...] | None = None) -> dict[str, float]:
    """Evaluate a layer's (or a `learn` clause's) overrides and check names, dimensions and ranges."""
    params = {p.name: p for p in neuron.params}
    given: dict[str, float] = {}
    kind = "neuron" if isinstance(neuron, ir.Neuron) else "rule"
    for a in (layer.overrides if args is None else args):
        p = params.get(a.name)
        if p is None:
            diags.error(f"{kind} '{neuron.name}' has no param '{a.name}'", a.span,
                        did_you_mean(a.name, params) or f"its params: {', '.join(params) or 'none'}")
            continue
        if a.name in given:
            diags.error(f"param '{a.name}' is overridden twice", a.span)
            continue
        dim = dim_of(a.value, Scope({}, "an override"), diags)
        if dim is None:
            continue
        if dim != parse_dim_name(p.dim):
            diags.error(f"'{a.name}' has {p.dim} but the override has {dim_name(dim)}", a.value.span,
                        f"write it with a unit of {p.dim}" if p.dim != "dimensionless" else "remove the unit")
            continue
        value = constant(a.value, {"dt": dt}, diags, f"the override of '{a.name}'")
        if value is not None:
            given[a.name] = value
    env = param_values(neuron, given, dt, diags)
    if isinstance(neuron, ir.Neuron) and args is None:
        _check_constant_lets(layer, neuron, env, diags)
    for a in (layer.overrides if args is None else args):
        p = params.get(a.name)
        if p is None or a.name not in given or p.low is None or p.high is None:
            continue
        low, high = (constant(b, env, Diagnostics(), "a bound") for b in (p.low, p.high))
        if low is not None and high is not None and not low <= given[a.name] <= high:
            diags.error(f"'{a.name}' = {given[a.name]:g} is outside its range [{low:g}, {high:g}]", a.value.span,
                        f"'{a.name}' is declared `in [...]` on line {p.span.line if p.span else '?'}")
    return given


def _check_constant_lets(layer: ir.Layer, neuron: ir.Neuron, env: Mapping[str, float], diags: Diagnostics) -> None:
    """A let of params and `dt` alone has one value per layer: one that has none there (std `Alpha`'s
    `tau_alpha` at `alpha = beta` divides by zero) would make every step NaN, so it is reported, at the
    layer, with the params' values."""
    lets = {x.name: x for x in neuron.lets}
    known = dict(env)
    for name in order_by_dependency({k: x.expr for k, x in lets.items()}, "let", {}, Diagnostics()):
        let = lets[name]
        read = {n.id for n in names(let.expr)}
        if not read <= known.keys() or any(math.isnan(known[r]) for r in read):
            continue
        try:
            known[name] = evaluate(let.expr, known)
        except EvalError as err:
            params = ", ".join(f"{r} = {known[r]:g}" for r in sorted(read) if r in env and r != "dt")
            diags.error(f"let '{name}' of {neuron.name} has no finite value in layer '{layer.name}' ({err}"
                        f"{', with ' + params if params else ''})", layer.span,
                        f"change the params of layer '{layer.name}' (the let is on line "
                        f"{let.span.line if let.span else '?'} of {let.span.file if let.span else 'its file'})")
            return


def _source_var(src: ir.Endpoint, kinds: Mapping[str, str], neurons: Mapping[str, ir.Neuron],
                diags: Diagnostics) -> bool:
    if src.name not in kinds:
        diags.error(f"unknown layer or input '{src.name}'", src.span,
                    did_you_mean(src.name, kinds) or _known("the inputs and layers", kinds))
        return False
    if kinds[src.name] == "input":
        if src.var is not None:
            diags.error(f"input '{src.name}' has no variable '{src.var}'", src.span, f"write just '{src.name}'")
            return False
        return True
    neuron = neurons.get(src.name)
    if neuron is None:
        return False
    states = [s.name for s in neuron.states]
    if src.var is None:
        if neuron.spike is None:
            diags.error(f"layer '{src.name}' does not spike; name the state it passes on", src.span,
                        f"e.g. '{src.name}.{states[0]}'" if states else None)
            return False
    elif src.var != "spike" and src.var not in states:
        diags.error(f"layer '{src.name}' ({neuron.name}) has no variable '{src.var}'", src.span,
                    did_you_mean(src.var, [*states, "spike"]) or _known("its variables", ["spike", *states]))
        return False
    return True


def _check_path(index: int, path: ir.Path, net: ir.Network, kinds: Mapping[str, str],
                neurons: Mapping[str, ir.Neuron], rule: ir.Rule | None, dt: float,
                diags: Diagnostics) -> PathInfo | None:
    ok = _source_var(path.src, kinds, neurons, diags)
    dim_known = ok  # the path's dimension is checked only when its source, ops and target are known
    target: str | None = None
    dst = path.dst
    if dst.name not in kinds:
        layers = [k for k, v in kinds.items() if v == "layer"]
        diags.error(f"unknown layer '{dst.name}'", dst.span,
                    did_you_mean(dst.name, layers) or _known("the layers", layers))
        ok = False
    elif kinds[dst.name] == "input":
        diags.error(f"a path cannot end in input '{dst.name}'", dst.span, "paths end in a layer")
        ok = False
    elif dst.name in neurons:
        inputs = [i.name for i in neurons[dst.name].inputs]
        if dst.var is not None and dst.var not in inputs:
            diags.error(f"layer '{dst.name}' ({neurons[dst.name].name}) has no input '{dst.var}'", dst.span,
                        did_you_mean(dst.var, inputs) or f"its inputs: {', '.join(inputs)}")
            ok = False
        else:
            target = dst.var or inputs[0]
    ops: list[tuple[str, OpArgs]] = []
    learn_args: dict[str, float] = {}
    dim = DIMENSIONLESS
    for op in path.ops:
        bound = op_args(op, diags)
        if bound is None:
            ok = dim_known = False
            continue
        ops.append((op.name, bound[0]))
        dim = dim * bound[1]
        if op.name == "lateral" and (path.src.name != dst.name or len(path.ops) != 1):
            diags.error("`lateral` connects a layer to itself and stands alone in its path", op.span,
                        f"write `{dst.name} -> lateral(w = ...) -> {dst.name}`")
            ok = False
    if not path.ops:
        diags.error("a path needs at least one op between its ends", path.span,
                    f"e.g. `{path.src.name} -> dense -> {dst.name}` or `-> one_to_one ->`")
        ok = False
    if path.learn is not None:
        weighted = [name for name, _ in ops if OPS[name].weighted]
        if weighted != ["dense"]:
            diags.error("`learn` needs a path whose only weighted op is one `dense`", path.learn.span)
            ok = False
        if path.frozen:
            diags.error("a path is either `frozen` or plastic (`learn`), not both", path.learn.span,
                        "remove `frozen`: plastic weights never get gradients")
            ok = False
        if rule is not None:
            learn_args = layer_overrides(ir.Layer(name=dst.name, neuron=rule.name), rule, dt, diags,
                                         path.learn.args)
    if dim_known and target is not None:
        want = next(i.dim for i in neurons[dst.name].inputs if i.name == target)
        src_neuron = neurons.get(path.src.name)
        if path.src.var not in (None, "spike") and src_neuron is not None:
            dim = dim * _state_dim(src_neuron, path.src.var)
        if dim != parse_dim_name(want):
            hint = f"add `-> scale(1 {_unit_for(want)})` to the path" if _unit_for(want) else None
            diags.error(f"the path into '{dst.name}.{target}' carries {dim_name(dim)} but the input has {want}",
                        path.span, hint)
            ok = False
    return PathInfo(ops, learn_args) if ok else None


def _known(what: str, names: Iterable[str]) -> str | None:
    """A hint listing the names that exist, when there are any."""
    listed = list(names)
    return f"{what}: {', '.join(listed)}" if listed else None


def _state_dim(neuron: ir.Neuron, state: str | None) -> Dim:
    return parse_dim_name(next((s.dim for s in neuron.states if s.name == state), "dimensionless"))


def _unit_for(dim_text: str) -> str | None:
    prefixed = {"ampere": "nA", "volt": "mV", "siemens": "nS", "farad": "pF", "ohm": "Mohm", "second": "ms"}
    return prefixed.get(dim_text)


def infer_shapes(net: ir.Network, infos: list[PathInfo | None], diags: Diagnostics
                 ) -> tuple[dict[str, tuple[int, ...]], dict[int, tuple[ir.LOp, ...]]]:
    """Shapes of every input and layer, propagating along paths until nothing changes; and by path
    index, the ops of each path whose shapes are known, with their arguments and shapes."""
    ops: dict[int, tuple[ir.LOp, ...]] = {}
    known: dict[str, tuple[int, ...]] = {i.name: i.shape for i in net.inputs}
    known.update({la.name: la.shape for la in net.layers if la.shape is not None})
    pending = [i for i, info in enumerate(infos) if info is not None]
    failed = {net.paths[i].dst.name for i, info in enumerate(infos) if info is None}  # already reported
    progress = True
    while pending and progress:
        progress = False
        for index in list(pending):
            path, info = net.paths[index], infos[index]
            assert info is not None
            shape = known.get(path.src.name)
            if shape is None:
                continue
            result = _run_ops(path, info, shape, known.get(path.dst.name), diags)
            if result is None:
                pending.remove(index)
                failed.add(path.dst.name)
                continue
            if result == "wait":
                continue
            out, ops[index] = result
            pending.remove(index)
            progress = True
            have = known.get(path.dst.name)
            if have is None:
                known[path.dst.name] = out
            elif have != out:
                diags.error(f"this path gives [{', '.join(map(str, out))}] but layer '{path.dst.name}' has "
                            f"[{', '.join(map(str, have))}]", path.span, "match the layer's shape to what feeds it")
    blocked = _downstream(net, failed, known)
    for index in pending:
        path = net.paths[index]
        if path.src.name not in known or path.dst.name in blocked:
            continue
        diags.error(f"cannot infer the size of `dense` into '{path.dst.name}'", path.span,
                    f"give the size, `dense({'N'})`, or the layer's shape: `layer {path.dst.name} = ...[N]`")
        blocked.add(path.dst.name)
    blocked = _downstream(net, blocked, known)
    for layer in net.layers:
        if layer.name not in known and layer.name not in blocked:
            diags.error(f"cannot infer the shape of layer '{layer.name}'", layer.span,
                        f"give it a shape: `layer {layer.name} = {layer.neuron}[N]`")
    return known, ops


def _downstream(net: ir.Network, failed: set[str], known: Mapping[str, tuple[int, ...]]) -> set[str]:
    """Layers of unknown shape fed, directly or through others, by a path with a reported error."""
    blocked = {name for name in failed if name not in known}
    grew = True
    while grew:
        grew = False
        for path in net.paths:
            if path.src.name in blocked and path.dst.name not in known and path.dst.name not in blocked:
                blocked.add(path.dst.name)
                grew = True
    return blocked


def _run_ops(path: ir.Path, info: PathInfo, shape: tuple[int, ...], dst: tuple[int, ...] | None,
             diags: Diagnostics) -> Any:
    """The path's output shape and its ops, or "wait" (a `dense` size comes from a layer of unknown
    shape), or None after reporting why its ops cannot take `shape`."""
    per_op = []
    for (name, given), op in zip(info.ops, path.ops):
        args = {k: v for k, v in given.items() if v is not None}  # a `dense` size to infer is None
        if name == "dense" and "features" not in args:
            if dst is None:
                return "wait"
            if len(dst) != 1:
                diags.error(f"dense feeds flat layers; '{path.dst.name}' has shape [{', '.join(map(str, dst))}]",
                            op.span, "flatten the layer or use a convolution")
                return None
            args["features"] = dst[0]
        out = out_shape(name, args, shape)
        if isinstance(out, ShapeError):
            diags.error(out.message, op.span, out.hint)
            return None
        per_op.append(ir.LOp(name=name, args=args, in_shape=shape, out_shape=out))
        shape = out
    return shape, tuple(per_op)


def _check_outputs(net: ir.Network, neurons: Mapping[str, ir.Neuron], diags: Diagnostics) -> None:
    seen: set[str] = set()
    layers = {la.name for la in net.layers}
    if not net.outputs:
        diags.error(f"network '{net.name}' has no output", net.span, "add e.g. `output out.spike count`")
    for out in net.outputs:
        if out.name in seen:
            diags.error(f"two outputs are named '{out.name}'", out.span, "name one: `output other = layer.var ...`")
        seen.add(out.name)
        if out.layer not in layers:
            diags.error(f"unknown layer '{out.layer}'", out.span,
                        did_you_mean(out.layer, layers) or _known("the layers", [la.name for la in net.layers]))
            continue
        neuron = neurons.get(out.layer)
        if neuron is None:
            continue
        states = [s.name for s in neuron.states]
        if out.var == "spike" and neuron.spike is None:
            diags.error(f"layer '{out.layer}' ({neuron.name}) does not spike", out.span,
                        f"read a state instead, e.g. '{out.layer}.{states[0]}'" if states else None)
        elif out.var != "spike" and out.var not in states:
            diags.error(f"layer '{out.layer}' ({neuron.name}) has no variable '{out.var}'", out.span,
                        did_you_mean(out.var, [*states, "spike"]) or f"its variables: {', '.join(['spike', *states])}")


def train_settings(train: ir.Train, diags: Diagnostics) -> ir.LTrain:
    """Evaluate a `train` block into `ir.LTrain`, reporting unknown losses, optimizers and args."""
    settings: dict[str, Any] = {}
    for key, table in (("loss", LOSSES), ("optimizer", OPTIMIZERS)):
        ref = getattr(train, key)
        if ref is None:
            continue
        if ref.name not in table:
            diags.error(f"unknown {key} '{ref.name}'", ref.span, did_you_mean(ref.name, table)
                        or f"use one of {', '.join(table)}")
            continue
        values = dict(table[ref.name])
        for a in ref.args:
            if a.name not in values:
                diags.error(f"{key} '{ref.name}' has no argument '{a.name}'", a.span,
                            did_you_mean(a.name, values) or f"its arguments: {', '.join(values) or 'none'}")
                continue
            dim = dim_of(a.value, Scope({}, f"an argument of {ref.name}"), diags)
            if dim is not None and not dim.dimensionless:
                diags.error(f"'{a.name}' of {ref.name} must be dimensionless, got {dim_name(dim)}", a.value.span)
                continue
            value = constant(a.value, {}, diags, f"'{a.name}'") if dim is not None else None
            if value is not None:
                values[a.name] = value
        settings[key] = ref.name
        settings[f"{key}_args"] = values
    for key in ("batch", "epochs"):
        value = getattr(train, key)
        if value is not None:
            if value < 1:
                diags.error(f"{key} must be at least 1, got {value}", train.span)
            else:
                settings[key] = value
    return ir.LTrain(**settings)
