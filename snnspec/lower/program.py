"""A network's program (`ir.LProgram`): everything its backends print, decided once.

The arrays the generated code holds (the parameter table, keyed as torch names them so the JAX
params dicts match), the random streams and their order, which paths are static (computed once
for a `direct` input) or computed inside a step loop, and the ordered statements: encode each
input, run each layer layer-major or a group of layers step by step, read out each output.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod

from .. import ir
from ..diagnostics import Diagnostics
from ..names import Namer, py_name
from .plan import network_modulators, plastic_dense

# ops that give the same result for an input repeated over time (a `direct` input's path made
# of these is computed once, on [batch, ...], and repeated)
TIME_INVARIANT = {"dense", "scale", "one_to_one", "flatten", "conv1d", "conv2d", "maxpool", "avgpool", "sumpool",
                  "dropout"}
WEIGHTED = {"dense", "conv1d", "conv2d", "batchnorm", "one_to_one", "dropout"}  # ops that hold arrays
# ops that act on each step alone: a layer whose paths hold only these may compute its currents per step
PER_STEP_OPS = {"dense", "conv1d", "conv2d", "maxpool", "avgpool", "sumpool", "flatten", "scale", "one_to_one",
                "dropout", "lateral"}
# fewer multiply-adds per sample and step than this: computing a layer's currents per step gains nothing (no
# batch up to 1024 reaches the JAX backend's `PER_STEP_MACS`), so the choice is not printed
PER_STEP_MIN_MACS = 2 ** 14


def path_macs(p: ir.LPath) -> int:
    """Multiply-adds per sample of one application of a path's ops (dense and conv; the rest are elementwise)."""
    macs = 0
    for op in p.ops:
        if op.name == "dense":
            macs += op.in_shape[0] * op.out_shape[0]
        elif op.name in ("conv1d", "conv2d"):
            macs += prod(op.out_shape) * op.in_shape[0] * int(op.args["kernel"]) ** (len(op.in_shape) - 1)
    return macs


class _Planner:
    def __init__(self, net: ir.LNetwork, neurons: Mapping[str, ir.LNeuron]):
        self.net = net
        self.neurons = {la.name: neurons[la.neuron] for la in net.layers}
        self.layers = {la.name: la for la in net.layers}
        self.inputs = {i.name: i for i in net.inputs}
        attrs = Namer({"steps", "dt"})
        self.layer_attrs = {la.name: attrs(la.name) for la in net.layers}
        self.op_attr: dict[tuple[int, int], str] = {}
        for p in net.paths:
            held = [k for k, op in enumerate(p.ops) if op.name in WEIGHTED]
            for k in held:
                suffix = "" if len(held) == 1 else f"_{p.ops[k].name}"
                self.op_attr[(p.index, k)] = attrs.fresh(f"{p.src}_{p.dst}{suffix}")
        self.rule_attrs = {p.index: attrs.fresh(f"{p.src}_{p.dst}_{p.learn}") for p in net.paths if p.learn}
        self.plastic_dense = plastic_dense(net)
        self.static = {p.index for p in net.paths if self.is_static(p)}

    def is_static(self, p: ir.LPath) -> bool:
        """A path from a `direct` input whose ops give the same result every step: computed once."""
        inp = self.inputs.get(p.src)
        return inp is not None and inp.encoding == "direct" and all(op.name in TIME_INVARIANT for op in p.ops)

    def in_loop(self, p: ir.LPath) -> bool:
        """Whether a path is computed inside a step loop (its source is in its target's group)."""
        return any(p.src in g and p.dst in g for g in self.net.groups
                   if len(g) > 1 or self.layers[g[0]].step_major)

    # -- arrays
    def params(self) -> tuple[ir.PTensor, ...]:
        """In torch's `named_parameters()` order: the root module's own (one_to_one weights) first, then
        each submodule's in registration order (layers, then the ops of each path)."""
        out = []
        slots = [(p, k, op) for p in self.net.paths for k, op in enumerate(p.ops) if (p.index, k) in self.op_attr]
        for p, k, op in slots:
            if op.name == "one_to_one":
                out.append(self.tensor(p, k, self.op_attr[(p.index, k)], tuple(op.in_shape), "ones"))
        for la in self.net.layers:
            for prm in self.neurons[la.name].params:
                if prm.learnable:
                    out.append(ir.PTensor(key=f"{self.layer_attrs[la.name]}.{py_name(prm.name)}",
                                          shape=la.shape if prm.per_neuron else (), init="neuron", layer=la.name))
        for p, k, op in slots:
            attr = self.op_attr[(p.index, k)]
            if self.plastic_dense.get(p.index) == k:
                continue  # buffers
            if op.name in ("dense", "conv1d", "conv2d"):
                out += self.weight_and_bias(p, k, op, attr)
            elif op.name == "batchnorm":
                out.append(self.tensor(p, k, f"{attr}.weight", (op.in_shape[0],), "ones"))
                out.append(self.tensor(p, k, f"{attr}.bias", (op.in_shape[0],), "zeros"))
        return tuple(out)

    def buffers(self) -> tuple[ir.PTensor, ...]:
        """In torch's `named_buffers()` order, less the neurons' and rules' fixed params (constants of
        the generated code): plastic weights and biases, batchnorm running statistics."""
        out = []
        for p in self.net.paths:
            for k, op in enumerate(p.ops):
                attr = self.op_attr.get((p.index, k))
                if self.plastic_dense.get(p.index) == k:
                    out += self.weight_and_bias(p, k, op, str(attr))
                elif op.name == "batchnorm":
                    channels = (op.in_shape[0],)
                    out += [self.tensor(p, k, f"{attr}.running_mean", channels, "zeros", "statistic"),
                            self.tensor(p, k, f"{attr}.running_var", channels, "ones", "statistic"),
                            self.tensor(p, k, f"{attr}.num_batches_tracked", (), "count", "statistic")]
        return tuple(out)

    def tensor(self, p: ir.LPath, k: int, key: str, shape: tuple[int, ...], init: str, role: str | None = None,
               fan_in: int | None = None) -> ir.PTensor:
        role = role or ("plastic" if self.plastic_dense.get(p.index) == k else "frozen" if p.frozen else "learnable")
        return ir.PTensor(key=key, shape=shape, init=init, fan_in=fan_in, role=role,  # type: ignore[arg-type]
                          path=p.index, op=k)

    def weight_and_bias(self, p: ir.LPath, k: int, op: ir.LOp, attr: str) -> list[ir.PTensor]:
        """torch's initial draw of a dense or conv op: uniform on +-1/sqrt(fan_in)."""
        spatial = len(op.in_shape) - 1
        kernel = int(op.args["kernel"]) ** spatial if op.name != "dense" else 1
        fan_in = op.in_shape[0] * kernel
        weight: tuple[int, ...]
        if op.name == "dense":
            weight, bias = (op.out_shape[0], op.in_shape[0]), (op.out_shape[0],)
        else:
            channels = int(op.args["channels"])
            weight, bias = (channels, op.in_shape[0], *[int(op.args["kernel"])] * spatial), (channels,)
        out = [self.tensor(p, k, f"{attr}.weight", weight, "uniform", fan_in=fan_in)]
        if op.args.get("bias", True):
            out.append(self.tensor(p, k, f"{attr}.bias", bias, "uniform", fan_in=fan_in))
        return out

    def random(self) -> tuple[ir.RandomDraw, ...]:
        draws = [ir.RandomDraw(input=i.name) for i in self.net.inputs if i.encoding == "rate"]
        draws += [ir.RandomDraw(path=p.index, op=k) for p in self.net.paths for k, op in enumerate(p.ops)
                  if op.name == "dropout" and float(op.args["p"]) > 0]
        return tuple(draws)

    # -- statements
    def needed(self, layer: str, outside_of: tuple[str, ...] = ()) -> set[str]:
        """The variables of `layer` that outputs read, or paths to layers not in `outside_of`."""
        wanted = {p.src_var for p in self.net.paths if p.src == layer and p.dst not in outside_of}
        return wanted | {o.var for o in self.net.outputs if o.layer == layer}

    def per_step_macs(self, layer: str, paths: list[ir.LPath]) -> int:
        """Multiply-adds per sample and step of a layer's paths, if its currents may be computed step
        by step (every path reads a sequence through per-sample ops; the neuron does not read `t`) and
        are many enough that a backend may gain from it."""
        if self.neurons[layer].reads_t or not paths:
            return 0
        if any(p.index in self.static or any(op.name not in PER_STEP_OPS for op in p.ops) for p in paths):
            return 0
        macs = sum(path_macs(p) for p in paths)
        return macs if macs >= PER_STEP_MIN_MACS else 0

    def statements(self) -> list[ir.Statement]:
        net = self.net
        out: list[ir.Statement] = [
            ir.Encode(input=i.name, sequence=i.encoding != "direct" or any(
                p.index not in self.static for p in net.paths if p.src == i.name)) for i in net.inputs]
        for group in net.groups:
            if len(group) == 1 and not self.layers[group[0]].step_major:
                layer = group[0]
                paths = [p for p in net.paths if p.dst == layer]
                out.append(ir.LayerRun(layer=layer, paths=tuple(p.index for p in paths),
                                       records=tuple(sorted(self.needed(layer) - {"spike"})),
                                       per_step_macs=self.per_step_macs(layer, paths)))
            else:
                out.append(self.step_loop(group))
        out += [ir.Readout(output=o.name, layer=o.layer, var=o.var, readout=o.readout) for o in net.outputs]
        return out

    def step_loop(self, group: tuple[str, ...]) -> ir.StepLoop:
        paths = self.net.paths
        members = set(group)
        layers = tuple(ir.LoopLayer(layer=la, now=tuple(sorted({p.src_var for p in paths
                                                                if p.src == la and p.dst in members})),
                                    after=tuple(sorted(self.needed(la, outside_of=group)))) for la in group)
        carried = sorted({(p.src, p.src_var) for p in paths if p.recurrent and p.src in members and p.dst in members},
                         key=lambda lv: (group.index(lv[0]), lv[1]))
        outside = tuple(p.index for la in group for p in paths if p.dst == la and p.src not in members)
        return ir.StepLoop(
            layers=layers, outside=outside,
            carried=tuple(carried), plastic=tuple(p.index for p in paths if p.learn and p.dst in members),
            recurrent=any(p.recurrent and p.dst in members for p in paths),
            reads_t=any(self.neurons[la].reads_t for la in group))


def build_program(net: ir.LNetwork, neurons: Mapping[str, ir.LNeuron], rules: Mapping[str, ir.LRule],
                  diags: Diagnostics) -> ir.LProgram:
    """The program of a lowered network; a path no step loop can compute is an error at the path."""
    plan = _Planner(net, neurons)
    loop_paths = tuple(p.index for p in net.paths if plan.in_loop(p))
    for index in loop_paths:
        p = net.paths[index]
        if any(op.name == "batchnorm" for op in p.ops):
            line = p.line or 1
            diags.error(f"'batchnorm' normalises over batch and time, so it cannot sit on a path computed step by "
                        f"step inside a recurrent group (network '{net.name}')",
                        ir.Span(file=net.file, line=line, column=1, end_line=line, end_column=2),
                        "move the batchnorm to a path into the group, or out of the cycle")
    return ir.LProgram(
        layer_attrs=plan.layer_attrs, rule_attrs=plan.rule_attrs,
        op_slots=tuple(ir.OpSlot(path=i, op=k, attr=a) for (i, k), a in plan.op_attr.items()),
        params=plan.params(), buffers=plan.buffers(), random=plan.random(), static_paths=tuple(sorted(plan.static)),
        loop_paths=loop_paths, plastic_dense=plan.plastic_dense, path_macs={p.index: path_macs(p) for p in net.paths},
        modulators=tuple(network_modulators(net, rules)),
        reads_t=any(n.reads_t for n in plan.neurons.values()), statements=tuple(plan.statements()),
        streaming=plan.step_loop(tuple(la.name for la in net.layers)))
