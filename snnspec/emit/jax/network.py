"""The JAX network namespace: encodings, connections and the execution plan, as pure functions.

The same plan as the PyTorch backend (`emit/torch/network.py`): layers outside recurrent cycles run
layer-major (the currents of all T steps from one op on a [T, batch, ...] array, then the
neuron's `run`, a `lax.scan`); groups of layers closed by a recurrent path run step-major, in one
`lax.scan` over time. Ops are printed by `OP_PRINTERS`, one function per op, the same ops as
torch's table. Param names are torch's `named_parameters()` names, so weights move between the
backends in one line; the buffers that change as the network runs (plastic weights, batchnorm
running statistics) live in a second dict keyed by torch's `named_buffers()` names.

A plastic path (`learn RULE`) feeds a step-major layer: its weight and the rule's state are carried
through the group's scan, the rule (`emit/jax/rule.py`) runs after the layer's step when `train`, and
the final weight is returned in the buffers, as torch writes its buffer back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ... import ir
from ...names import Namer, class_name, field_name, py_name
from ..base import (
    ProgramVisitor,
    check_supported,
    emit_output_tuple,
    emit_sum,
    input_shapes,
    input_terms,
    plan_lines,
    reads,
    sizes_line,
    state_fields,
)
from ..layout import LIMIT
from ..writer import STATIC, CodeWriter, literal, unpacked
from .functions import DTYPE
from .ops import OP_PRINTERS, OpContext
from .params import ParamsPrinter

_READOUTS = {"count": "jnp.sum({}, 0)", "rate": "jnp.mean({}, 0)", "last": "{}[-1]", "max": "jnp.max({}, 0)",
             "trace": "{}"}

# names the generated network functions use themselves
_NETWORK_LOCALS = {"params", "state", "key", "keys", "train", "buffers", "new_buffers", "dt", "dtype",
                   "steps", "batch", "i", "t", "carry", "xs", "layer_params", "new_state", "jax", "jnp", "lax", "math",
                   "self", "values"}


@dataclass
class Plastic:
    """A plastic path in a scan: its dense op, rule class, the locals of its rule's params, weight and rule
    state, and the buffers key of its weight."""

    dense: int
    cls: str
    rule: str
    weight: str
    state: str
    key: str


def _entries(values: dict[str, str]) -> str:
    """The entries of a dict display, keys quoted."""
    return ", ".join(f'"{key}": {value}' for key, value in values.items())


class NetworkEmitter(ParamsPrinter, ProgramVisitor):
    """Prints a network's namespace class: its params functions, `encode`, `init_state`/`step`, `apply`."""

    def __init__(self, net: ir.LNetwork, lowered: ir.LoweredSpec, out: CodeWriter):
        self.net = net
        self.lowered = lowered
        self.out = out
        self.cls = class_name(net.name)
        assert net.program is not None
        self.program = program = net.program
        # the params keys: torch's module attribute names
        self.layer_attr = program.layer_attrs
        self.op_attr = {(slot.path, slot.op): slot.attr for slot in program.op_slots}
        self.layers = {la.name: la for la in net.layers}
        self.inputs = {i.name: i for i in net.inputs}
        self.neurons = {la.name: lowered.neurons[la.neuron] for la in net.layers}
        module_names = {class_name(n) for n in (*lowered.neurons, *lowered.rules, *lowered.networks)}
        module_names |= {f"{c}{s}" for c in module_names for s in ("State", "Params", "Output")}
        inputs = Namer(_NETWORK_LOCALS | module_names)
        self.input_arg = {i.name: inputs(i.name) for i in net.inputs}
        # modulators of the rules: keyword arguments of `apply`, as of torch's `forward`
        self.mod_arg = {m: inputs.fresh(m) for m in program.modulators}  # never an input's name
        self.reserved = _NETWORK_LOCALS | module_names | set(self.input_arg.values()) | set(self.mod_arg.values())
        self.out_fields = Namer(rename=field_name)
        self.frozen = {attr for (index, _k), attr in self.op_attr.items() if net.paths[index].frozen}
        # a plastic path's dense: its weight and bias are buffers (torch: `_plastic`)
        self.buffer_keys = {b.key for b in program.buffers if b.role == "plastic"}
        self.random: dict[object, int] = {d.input if d.input is not None else (d.path, d.op): r
                                          for r, d in enumerate(program.random)}
        self.has_bn = any(b.role == "statistic" for b in program.buffers)
        self.new_buffers = self.has_bn or bool(program.plastic_dense)  # `apply` returns changed buffers
        self.fresh_scope()

    def fresh_scope(self) -> None:
        """A new function body: fresh local names, no dropout masks."""
        self.local = Namer(self.reserved)
        self.masks: dict[tuple[int, int], str] = {}

    def v(self, layer: str, var: str, suffix: str = "") -> str:
        """The local holding `layer.var` (a sequence [T, ...], or with `_now` its value at one step)."""
        return self.local.keyed(f"{layer}_{var}{suffix}", "var", layer, var + suffix)

    def state(self, layer: str) -> str:
        """The local holding `layer`'s neuron state."""
        return self.local.keyed(f"{layer}_state", "state", layer)

    def now(self, layer: str, var: str) -> str:
        """The value of `layer.var` at this step: its spike local, or a field of its state."""
        if var == "spike":
            return self.v(layer, "spike", "_now")
        return f"{self.state(layer)}.{state_fields(self.neurons[layer])[var]}"

    def take(self, start: int) -> list[str]:
        """The lines printed since `start`, taken out: a body, to print first what depends on it (a preamble)."""
        body = self.out.lines[start:]
        del self.out.lines[start:]
        return body

    # -- structure
    def emit(self) -> None:
        check_supported(self.net, OP_PRINTERS, "jax")
        emit_output_tuple(self.out, self.net, self.cls, self.out_fields, "jax.Array", f"{self.cls}.apply")
        o = self.out
        o.line(f"class {self.cls}:")
        with o.indent():
            self.emit_docstring()
            o.blank()
            o.line(f"steps = {literal(self.net.steps or 0)}")
            o.line(f"dt = {literal(self.net.dt)}")
            o.blank()
            self.emit_init()
            self.emit_init_buffers()
            self.emit_neuron_params()
            self.emit_encode()
            self.emit_init_state_and_step()
            self.emit_apply()
        o.blank(2)

    def args(self) -> str:
        return ", ".join(self.input_arg[i.name] for i in self.net.inputs)

    def emit_docstring(self) -> None:
        net = self.net
        lines = plan_lines(net, self.out)
        args = self.args()
        lines += ["", f"`apply(params, {args}, key=None)` takes {input_shapes(net, self.input_arg)}.",
            "Pure functions: `init(key) -> params` (keys: the torch module's `named_parameters()` names),",
            "`init_buffers(key) -> buffers` (torch's buffers that change as it runs: plastic weights, batchnorm",
            "running statistics), `apply`, `apply_with_buffers` (also returns the new buffers), `encode`,",
            "`init_state(params, batch)` and `step(params, state, *inputs_t) -> (state, outputs_t)`."]
        self.out.docstring("\n".join(lines))

    # -- encodings
    def emit_keys(self, rate_only: bool = False) -> None:
        if self.random and (not rate_only or any(i.encoding == "rate" for i in self.net.inputs)):
            self.out.line(f"keys = None if key is None else jax.random.split(key, {len(self.random)})")

    def emit_steps_batch(self, body: list[str]) -> None:
        """`steps, batch = ...`, each only if `body` uses it."""
        line = sizes_line(self.net, self.input_arg, f"{self.cls}.steps", body)
        if line:
            self.out.line(line)

    def visit_Encode(self, statement: ir.Encode) -> None:
        self.emit_encoding(self.inputs[statement.input], statement.sequence)

    def emit_encoding(self, inp: ir.LInput, sequence: bool = True) -> None:
        """The local `INPUT_seq` [T, batch, ...]; a `direct` input gets none without `sequence`."""
        o = self.out
        x = self.input_arg[inp.name]
        seq = self.v(inp.name, "seq")
        if inp.encoding == "none":
            o.line(f"{seq} = {x}")
        elif inp.encoding == "direct":
            if sequence:
                o.line(f"{seq} = jnp.broadcast_to({x}[None], (steps, *{x}.shape))")
        elif inp.encoding == "rate":
            o.line("if key is None:")
            with o.indent():
                o.line(f'raise ValueError("input \'{inp.name}\' is rate-coded: pass key=jax.random.PRNGKey(...)")')
            o.line(f"{seq} = _rate(keys[{self.random[inp.name]}], {x}, steps)")
        elif inp.encoding == "latency":
            tau = inp.args["tau"] / self.net.dt
            th = inp.args["threshold"]
            o.line(f"# latency: one spike at step round(tau * log(x / (x - threshold))), tau = {tau:g} steps")
            fire = self.local.fresh("fire")
            o.line(f"{fire} = jnp.round({literal(tau)} * jnp.log({x} / _clamp({x} - {literal(th)}, lo=1e-12)))")
            o.line(f"{fire} = jnp.where({x} > {literal(th)}, {fire}, steps)")
            ticks = self.local.fresh("ticks")
            o.line(f"{ticks} = jnp.arange(steps, dtype={x}.dtype).reshape((-1,) + (1,) * {x}.ndim)")
            o.line(f"{seq} = ({ticks} == {fire}[None]).astype({x}.dtype)")
        elif inp.encoding == "delta":
            th = inp.args["threshold"]
            previous = self.local.fresh("previous")
            o.line(f"{previous} = jnp.concatenate([jnp.zeros_like({x}[:1]), {x}[:-1]])")
            o.line(f"{seq} = ({x} - {previous} > {literal(th)}).astype({x}.dtype)")

    def emit_cast_inputs(self) -> None:
        for inp in self.net.inputs:
            x = self.input_arg[inp.name]
            self.out.line(f"{x} = jnp.asarray({x}, dtype)")

    def emit_encode(self) -> None:
        o = self.out
        self.fresh_scope()
        with o.block(f"def encode({self.args()}, key=None, *, dtype=None) -> tuple", decorators=STATIC, after=1):
            o.docstring("The encoded inputs, one [T, batch, ...] sequence per input: what `step` takes at each\n"
                        "step (`key` is split as `apply` splits it, so the same key gives the same spikes).")
            o.line(f"dtype = {DTYPE}")
            self.emit_cast_inputs()
            start = len(o.lines)
            self.emit_keys(rate_only=True)
            for inp in self.net.inputs:
                self.emit_encoding(inp)
            o.line(f"return ({', '.join(self.v(i.name, 'seq') for i in self.net.inputs)},)")
            body = self.take(start)
            self.emit_steps_batch(body)
            o.lines.extend(body)

    # -- paths
    def context(self, time_axis: bool, at_step: bool, streaming: bool = False) -> OpContext:
        """Where paths are printed: over all steps (`time_axis`), in a loop's step, or in the streaming `step`."""
        return OpContext(None, time_axis, at_step, streaming, self.param, self.local)

    def path_value(self, p: ir.LPath, where: OpContext, source: str | None = None,
                   ops: tuple[int, int] | None = None, weight: str | None = None) -> str:
        """The current a path delivers where `where` says, from `source` if given; only ops[start:end] with
        `ops`; `weight`: a plastic dense's weight local. Statements first: `where.pre`; carried: `where.carry`."""
        static = p.index in self.program.static_paths and not where.streaming
        if source is not None:
            value = source
        elif p.src in self.inputs:
            value = self.input_arg[p.src] if where.streaming or static else self.v(p.src, "seq")
        else:
            value = self.v(p.src, p.src_var, "" if where.time_axis else "_now")
        start, end = ops or (0, len(p.ops))
        for k in range(start, end):
            op = p.ops[k]
            ctx = replace(where, attr=self.op_attr.get((p.index, k)), time_axis=where.time_axis and not static,
                          at_step=where.at_step and not static, mask=self.masks.get((p.index, k)), line=p.line,
                          weight=weight if op.name == "dense" else None)
            value = OP_PRINTERS[op.name](op, value, ctx)
        return f"_repeat({value}, steps)" if static and where.time_axis else value

    def zeros(self, layer: str, time_axis: bool) -> str:
        """Zeros of a layer's shape, over all steps or at one: a sum's shape where no path feeds it."""
        lead = ["steps", "batch"] if time_axis else ["batch"]
        return f"jnp.zeros(({', '.join(lead + [literal(n) for n in self.layers[layer].shape])}), dtype)"

    def layer_terms(self, layer: str, inp: ir.Update, paths: list[ir.LPath], time_axis: bool,
                    current: Callable[[ir.LPath], str]) -> list[tuple[str, int | None]]:
        """A layer-major input's terms, zeros first where no path feeds it (the sum takes its shape from them)."""
        terms = input_terms(inp, paths, current)
        if not any(p.dst_input == inp.var for p in paths):
            terms.insert(0, (self.zeros(layer, time_axis), None))
        return terms

    def emit_pre(self, ctx: OpContext) -> None:
        """The statements the ops printed so far need first (`ctx.pre`), each traced to its spec line."""
        for text, line in ctx.pre:
            self.out.line(text, self.src(line))
        ctx.pre.clear()

    # -- apply
    def emit_apply(self) -> None:
        o = self.out
        args = self.args()
        mods = "".join(f", {code}=0.0" for code in self.mod_arg.values())
        passed = "".join(f", {code}={code}" for code in self.mod_arg.values())
        with o.block(f"def apply(params, {args}, key=None, *, train=True, buffers=None{mods}) -> {self.cls}Output",
                        decorators=STATIC, after=1):
            doc = ("Run the network over all steps. `key` draws rate-coded inputs and, when `train`, dropout\n"
                   "masks (no key: no dropout). Batchnorm normalises with batch statistics when `train`, else\n"
                   "with the running statistics in `buffers` (default: `init_buffers()`).")
            if self.program.plastic_dense:
                doc += ("\nPlastic weights come from `buffers` (required) and change by their rules, step by step,\n"
                        "when `train`; `apply_with_buffers` returns them.")
            if self.mod_arg:
                doc += f"\nModulators ({', '.join(self.mod_arg)}) are scalars or [batch] arrays for the rules."
            o.docstring(doc)
            o.line(f"return {self.cls}.apply_with_buffers(params, buffers, {args}, key, train=train{passed})[0]")
        self.emit_apply_with_buffers(args, mods)

    def emit_apply_with_buffers(self, args: str, mods: str) -> None:
        """`apply_with_buffers`: the program's statements, then the outputs and the buffers."""
        o = self.out
        self.fresh_scope()
        with o.block(f"def apply_with_buffers(params, buffers, {args}, key=None, *, train=True{mods})"
                        f" -> tuple[{self.cls}Output, dict]", decorators=STATIC, after=1):
            o.docstring("`apply`, also returning the buffers: when `train`, the batchnorm running statistics updated\n"
                        "as torch updates them and the plastic weights as their rules left them; else unchanged\n"
                        "(`buffers=None` starts from `init_buffers()`).")
            start = len(o.lines)
            self.emit_buffers()
            if self.new_buffers:
                o.line("new_buffers = dict(buffers)")
            o.line(f"layer_params = {self.cls}.neuron_params(params)")
            self.emit_keys()
            self.emit_masks()
            self.readouts: list[str] = []
            for statement in self.program.statements:
                self.visit(statement)
            buffers = "new_buffers" if self.new_buffers else "{} if buffers is None else buffers"
            o.line(f"return {self.cls}Output({', '.join(self.readouts)}), {buffers}")
            body = self.take(start)
            if reads(body, "dt"):
                o.line(f"dt = {self.cls}.dt")
            o.line("dtype = _float_dtype(params)")
            self.emit_cast_inputs()
            self.emit_steps_batch(body)
            o.lines.extend(body)

    def visit_Readout(self, out: ir.Readout) -> None:
        seq = self.v(out.layer, out.var)
        self.readouts.append(f"{self.out_fields(out.output)}={_READOUTS[out.readout].format(seq)}")

    def emit_masks(self) -> None:
        """One dropout mask per sequence and op, [batch, *in_shape], drawn when training with a key."""
        for p in self.net.paths:
            for k, op in enumerate(p.ops):
                if (p.index, k) not in self.random:
                    continue
                mask = self.local.keyed(f"{self.op_attr[(p.index, k)]}_mask", "mask", str(p.index), str(k))
                shape = ", ".join(["batch", *map(str, op.in_shape)])
                self.out.line(f"{mask} = None if keys is None or not train else _dropout_mask("
                              f"keys[{self.random[(p.index, k)]}], {literal(float(op.args['p']))}, ({shape}), dtype)")
                self.masks[(p.index, k)] = mask

    # -- layer-major
    def visit_LayerRun(self, run: ir.LayerRun) -> None:
        o = self.out
        layer = run.layer
        la = self.layers[layer]
        paths = [self.net.paths[i] for i in run.paths]
        o.line(f"# layer {layer} = {la.neuron}{list(la.shape)}: all steps at once")
        spike = self.v(layer, "spike")
        rec = self.local.keyed(f"{layer}_record", "record", layer) if run.records else "_"
        target = f"{spike}, _, {rec}"
        if run.per_step_macs:
            o.line(f"if _per_step(batch * {literal(run.per_step_macs)}):  # a large product per step: inside the scan")
            with o.indent():
                self.emit_per_step(layer, paths, target, bool(run.records))
            o.line("else:")
            with o.indent():
                self.emit_all_steps(layer, paths, target, bool(run.records))
        else:
            self.emit_all_steps(layer, paths, target, bool(run.records))
        fields = state_fields(self.neurons[layer])
        for var in run.records:
            o.line(f"{self.v(layer, var)} = {rec}.{fields[var]}")

    def emit_all_steps(self, layer: str, paths: list[ir.LPath], target: str, record: bool) -> None:
        """`target = NEURON.run(...)`: the layer's currents of all steps, each from one op, then its run."""
        neuron = self.neurons[layer]
        ctx = self.context(True, False)
        currents = [self.layer_terms(layer, inp, paths, True, lambda p: self.path_value(p, ctx))
                    for inp in neuron.inputs]
        self.emit_pre(ctx)
        names = []
        for inp, terms in zip(neuron.inputs, currents, strict=True):
            names.append(self.local.keyed(f"{layer}_{inp.var}", "current", layer, inp.var))
            emit_sum(self.out, names[-1], terms, self.net.file)
        self.out.line(f'{target} = {class_name(neuron.name)}.run(layer_params["{self.layer_attr[layer]}"], '
                      f"{', '.join(names)}, dt=dt{', record=True' if record else ''})")

    def emit_per_step(self, layer: str, paths: list[ir.LPath], target: str, record: bool) -> None:
        """`target = _run_per_step(...)`: the layer's currents computed at each step inside its scan."""
        o = self.out
        neuron = self.neurons[layer]
        seq = {p.index: self.v(p.src, "seq") if p.src in self.inputs else self.v(p.src, p.src_var) for p in paths}
        # sequence -> its argument name in the step function
        sources = {name: self.local.fresh(f"{name}_t") for name in dict.fromkeys(seq.values())}
        fn = self.local.fresh(f"{layer}_currents")
        o.line(f"def {fn}({', '.join(sources.values())}):")
        with o.indent():
            ctx = self.context(False, False)
            values = []
            for inp in neuron.inputs:
                terms = self.layer_terms(layer, inp, paths, False,
                                         lambda p: self.path_value(p, ctx, source=sources[seq[p.index]]))
                self.emit_pre(ctx)
                values.append(self.local.fresh(f"{layer}_{inp.var}_t"))
                emit_sum(o, values[-1], terms, self.net.file)
            o.line(f"return ({unpacked(values)})")
        o.line(f'{target} = _run_per_step({class_name(neuron.name)}, layer_params["{self.layer_attr[layer]}"], {fn}, '
               f"({', '.join(sources)},), dt{', record=True' if record else ''})")

    # -- step-major
    def visit_StepLoop(self, loop: ir.StepLoop) -> None:
        group = tuple(la.layer for la in loop.layers)
        self.loop_reads = {la.layer: la.now for la in loop.layers}
        plastic = [self.net.paths[i] for i in loop.plastic]
        why = ["a recurrent path closes a cycle through them"] if loop.recurrent else []
        why += ["plastic weights change every step"] if plastic else []
        self.out.line(f"# layers {', '.join(group)}: step by step ({'; '.join(why)})")
        outside = self.emit_outside_currents(loop)
        learning = self.emit_rule_params(plastic)
        # the body first: it decides what the loop carries
        ctx = self.context(False, True)
        xs = {index: self.local.keyed(f"{name}_t", "xs", str(index)) for index, name in outside.items()}
        t = "t" if loop.reads_t else None
        start = len(self.out.lines)
        with self.out.indent():
            for layer in group:
                self.emit_layer_step(layer, xs, ctx, t, learning)
        body = self.take(start)
        carried = self.loop_carry(loop, ctx, learning)
        # (stacked local, its value at the step): each layer's spikes, then what is read of it later
        outputs = [(self.v(member.layer, var), self.now(member.layer, var)) for member in loop.layers
                   for var in ["spike", *sorted((set(member.now) | set(member.after)) - {"spike"})]]
        sequences = list(outside.values()) + (["jnp.arange(steps, dtype=dtype) * dt"] if t else [])
        self.emit_scan("_".join(group), carried, outputs, body, list(xs.values()) + ([t] if t else []), sequences,
                       {pl.weight for pl in learning.values()})
        if learning:
            self.out.line("if train:")
            with self.out.indent():
                for pl in learning.values():
                    self.out.line(f'new_buffers["{pl.key}"] = {pl.weight}')

    def emit_outside_currents(self, loop: ir.StepLoop) -> dict[int, str]:
        """Before the loop, the currents of paths from outside it (a plastic path's: what enters its dense)."""
        outside: dict[int, str] = {}
        ctx = self.context(True, False)
        for p in (self.net.paths[i] for i in loop.outside):
            dense = self.program.plastic_dense.get(p.index)
            if dense == 0 and p.index not in self.program.static_paths:  # the dense reads the sequence itself
                outside[p.index] = self.path_value(p, ctx, ops=(0, 0))
                continue
            name = self.local.keyed(f"{p.src}_{p.dst}_{'current' if dense is None else 'pre'}", "outside", str(p.index))
            value = self.path_value(p, ctx, ops=None if dense is None else (0, dense))
            self.emit_pre(ctx)
            self.out.line(f"{name} = {value}", self.src(p.line))
            outside[p.index] = name
        return outside

    def emit_rule_params(self, plastic: list[ir.LPath]) -> dict[int, Plastic]:
        """The params of each plastic path's rule, and the locals that carry its weight and state."""
        learning: dict[int, Plastic] = {}
        for p in plastic:
            assert p.learn is not None
            dense = self.program.plastic_dense[p.index]
            attr = self.op_attr[(p.index, dense)]
            pl = Plastic(dense, class_name(p.learn), self.local.keyed(f"{attr}_{p.learn}", "rule", str(p.index)),
                         self.local.keyed(f"{attr}_weight", "weight", str(p.index)),
                         self.local.keyed(f"{attr}_rule_state", "rule_state", str(p.index)), f"{attr}.weight")
            given = ", ".join(f'"{py_name(k)}": {literal(v)}' for k, v in p.learn_args.items())
            self.out.line(f"{pl.rule} = {pl.cls}.params({{{given}}}, dt=dt)", self.src(p.line))
            learning[p.index] = pl
        return learning

    def loop_carry(self, loop: ir.StepLoop, ctx: OpContext, learning: dict[int, Plastic]) -> list[tuple[str, str]]:
        """What a scan carries, with initial values: states, recurrent values, delays, plastic weights and rules."""
        carried = [(self.state(m.layer), self.init_state_expr(m.layer)) for m in loop.layers]
        carried += [(self.v(la, var, "_now"), self.zeros(la, False)) for la, var in loop.carried]
        carried += ctx.carry
        for index, pl in learning.items():
            op = self.net.paths[index].ops[pl.dense]
            carried.append((pl.weight, f'buffers["{pl.key}"]'))
            carried.append((pl.state, f"{pl.cls}.init_state({pl.rule}, batch, {op.out_shape[0]}, {op.in_shape[0]}, "
                                      "dtype=dtype)"))
        return carried

    def emit_scan(self, prefix: str, carried: list[tuple[str, str]], outputs: list[tuple[str, str]], body: list[str],
                  xs: list[str], sequences: list[str], kept: set[str]) -> None:
        """`lax.scan` of a step function around `body` over `sequences` (its `xs`), stacking `outputs`
        ((stacked, value at the step)); only the names in `kept` are bound from the final carry."""
        o = self.out
        fn = self.local.fresh(f"{prefix}_step")
        init = self.local.fresh(f"{prefix}_init")
        carry_names = unpacked([name for name, _init in carried])
        self.emit_tuple(init, [value for _n, value in carried])
        o.blank()
        o.line(f"def {fn}(carry, xs):")
        with o.indent():
            o.line(f"{carry_names} = carry")
            if xs:
                o.line(f"{unpacked(xs)} = xs")
        o.lines.extend(body)
        with o.indent():
            o.line(f"return ({carry_names}), ({unpacked([value for _n, value in outputs])})")
        o.blank()
        stacked = unpacked([name for name, _v in outputs])
        final = f"({unpacked([n if n in kept else '_' for n, _i in carried])})" if kept else "_"
        if sequences:
            o.line(f"{final}, ({stacked}) = lax.scan({fn}, {init}, ({', '.join(sequences)},))")
        else:
            o.line(f"{final}, ({stacked}) = lax.scan({fn}, {init}, None, length=steps)")

    def emit_tuple(self, target: str, values: list[str]) -> None:
        """`target = (a, b, ...)`, one value a line where the tuple does not fit on one."""
        o = self.out
        line = f"{target} = ({unpacked(values)})"
        if len(line) + len(o.indent_unit) * o.level <= LIMIT:
            o.line(line)
            return
        o.line(f"{target} = (")
        with o.indent():
            for value in values:
                o.line(f"{value},")
        o.line(")")

    def init_state_expr(self, layer: str) -> str:
        """A layer's neuron state at the start, as a scan's carry and `init_state` begin from it."""
        neuron = self.neurons[layer]
        attr = self.layer_attr[layer]
        return (f'{class_name(neuron.name)}.init_state(layer_params["{attr}"], batch, '
                f"{tuple(self.layers[layer].shape)!r}, dt=dt, dtype=dtype)")

    def emit_layer_step(self, layer: str, outside: dict[int, str], ctx: OpContext, t: str | None,
                        learning: dict[int, Plastic]) -> None:
        """One layer's step, then its `_now` values (this step's for later layers, the next step's for earlier
        ones). `outside`: currents (plastic paths: inputs) from outside the loop; `learning`: plastic paths."""
        o = self.out
        neuron = self.neurons[layer]
        state = self.state(layer)
        paths = [p for p in self.net.paths if p.dst == layer]
        pre: dict[int, str] = {}  # plastic paths: the values entering the dense at this step

        def current(p: ir.LPath) -> str:
            """A path's current at this step; a plastic path's input gets its line as its turn comes."""
            if p.index in learning:
                pl = learning[p.index]
                pre[p.index] = self.plastic_input(p, layer, outside, ctx, pl.dense)
                return self.path_value(p, ctx, source=pre[p.index], ops=(pl.dense, len(p.ops)), weight=pl.weight)
            if p.index in outside:
                return outside[p.index]
            return self.path_value(p, ctx)

        values = []
        for inp in neuron.inputs:
            mine = [p for p in paths if p.dst_input == inp.var]
            terms = input_terms(inp, mine, current)
            self.emit_pre(ctx)
            if not terms or (len(terms) == 1 and mine and mine[0].index in outside):
                # nothing, or one current computed before the loop (and traced there)
                values.append(terms[0][0] if terms else f"jnp.zeros_like({state}[0])")
                continue
            # a path computed in the step: its current gets a line of its own, traced to the spec
            values.append(self.local.keyed(f"{layer}_{inp.var}_now", "current_now", layer, inp.var))
            emit_sum(o, values[-1], terms, self.net.file)
        spike = self.v(layer, "spike", "_now")
        t_arg = f", t={t}" if t and neuron.reads_t else ""
        o.line(f'{spike}, {state} = {class_name(neuron.name)}.step(layer_params["{self.layer_attr[layer]}"], '
               f"{', '.join(values)}, {state}, dt=dt{t_arg})")
        self.emit_rules([p for p in paths if p.index in learning], learning, pre, spike)
        for var in self.loop_reads[layer]:
            if var != "spike":
                o.line(f"{self.v(layer, var, '_now')} = {self.now(layer, var)}")

    def plastic_input(self, p: ir.LPath, layer: str, outside: dict[int, str], ctx: OpContext, dense: int) -> str:
        """What enters a plastic dense at this step: a local (its source may be rebound before the rule reads it)."""
        if p.index in outside:
            return outside[p.index]
        value = self.path_value(p, ctx, ops=(0, dense))
        self.emit_pre(ctx)
        name = self.local.keyed(f"{p.src}_{layer}_pre", "pre", str(p.index))
        self.out.line(f"{name} = {value}", self.src(p.line))
        return name

    def emit_rules(self, paths: list[ir.LPath], learning: dict[int, Plastic], pre: dict[int, str], spike: str) -> None:
        """The rules of plastic `paths` after their layer's step, when `train`: the new weight and rule state."""
        if not paths:
            return
        o = self.out
        o.line("if train:")
        with o.indent():
            for p in paths:
                pl = learning[p.index]
                assert p.learn is not None
                mods = "".join(f", {self.mod_arg[m]}" for m in self.lowered.rules[p.learn].modulators)
                o.line(f"{pl.state}, {pl.weight} = {pl.cls}.step({pl.rule}, {pl.state}, {pl.weight}, "
                       f"{pre[p.index]}, {spike}{mods}, dt=dt)", self.src(p.line))

    # -- streaming
    def emit_init_state_and_step(self) -> None:
        """`init_state` and `step`: the whole network one step at a time, its state in a dict."""
        streaming = self.program.streaming
        assert streaming is not None
        self.fresh_scope()
        self.loop_reads = {la.layer: la.now for la in streaming.layers}
        ctx = self.context(False, True, streaming=True)
        t = "t" if self.program.reads_t else None
        start = len(self.out.lines)
        with self.out.indent():
            for la in streaming.layers:
                self.emit_layer_step(la.layer, {}, ctx, t, {})
        body = self.take(start)
        previous = {f"{self.layer_attr[la]}.{var}": (la, var) for la, var in streaming.carried}
        self.emit_init_state({"previous": {key: self.zeros(la, False) for key, (la, _var) in previous.items()},
                              "delays": dict(ctx.carry)})
        self.emit_step(body, {"previous": {key: self.v(la, var, "_now") for key, (la, var) in previous.items()},
                              "delays": {name: name for name, _init in ctx.carry}})

    def emit_state_parts(self, parts: dict[str, dict[str, str]], step: str) -> None:
        """A streaming state's entries after its layers: the previous step's values that recurrent paths
        read ("previous"), the values that delays hold ("delays"), the step count if a neuron reads `t`."""
        for part, entries in parts.items():
            if entries:
                self.out.line(f'"{part}": {{{_entries(entries)}}},')
        if self.program.reads_t:
            self.out.line(f'"step": {step},')

    def emit_init_state(self, parts: dict[str, dict[str, str]]) -> None:
        """`init_state`: every layer's neuron state at the start, and `parts` at their initial values."""
        o = self.out
        with o.block("def init_state(params, batch: int) -> dict", decorators=STATIC, after=1):
            o.docstring("The state before the first `step`: each layer's neuron state; the previous step's values\n"
                        "that recurrent paths read (zero at first); the values that delays hold; the step count if a\n"
                        "neuron reads `t`.")
            o.line(f"dt = {self.cls}.dt")
            o.line("dtype = _float_dtype(params)")
            o.line(f"layer_params = {self.cls}.neuron_params(params)")
            o.line("return {")
            with o.indent():
                o.line('"layers": {')
                with o.indent():
                    for la in self.net.layers:
                        o.line(f'"{self.layer_attr[la.name]}": {self.init_state_expr(la.name)},')
                o.line("},")
                self.emit_state_parts(parts, "jnp.zeros((), int)")
            o.line("}")

    def emit_step(self, body: list[str], parts: dict[str, dict[str, str]]) -> None:
        """`step`: the state unpacked into the locals `body` reads, `body`, the new state and the outputs."""
        o = self.out
        with o.block(f"def step(params, state, {self.args()}, *, buffers=None) -> tuple[dict, {self.cls}Output]",
                        decorators=STATIC, after=1):
            o.docstring("One step of the whole network, layers in declaration order, from inputs already encoded\n"
                        "for this step ([batch, ...], as `encode` gives them at one step). Returns the new state and\n"
                        "the outputs' variables at this step (before any readout over time). Evaluation mode: no\n"
                        "dropout, batchnorm statistics and plastic weights from `buffers`, held (default:\n"
                        "`init_buffers()`).")
            o.line(f"dt = {self.cls}.dt")
            o.line("dtype = _float_dtype(params)")
            self.emit_cast_inputs()
            if reads(body, "batch"):
                o.line(f"batch = {self.input_arg[self.net.inputs[0].name]}.shape[0]")
            self.emit_buffers()
            o.line(f"layer_params = {self.cls}.neuron_params(params)")
            states = {self.layer_attr[la.name]: self.state(la.name) for la in self.net.layers}
            for part, entries in {"layers": states, **parts}.items():
                for key, name in entries.items():
                    o.line(f'{name} = state["{part}"]["{key}"]')
            if self.program.reads_t:
                o.line('t = state["step"] * dt')
            o.lines.extend(body)
            o.line("new_state = {")
            with o.indent():
                o.line('"layers": {' + _entries(states) + "},")
                self.emit_state_parts(parts, 'state["step"] + 1')
            o.line("}")
            fields = [f"{self.out_fields(out.name)}={self.now(out.layer, out.var)}" for out in self.net.outputs]
            o.line(f"return new_state, {self.cls}Output({', '.join(fields)})")
