"""The JAX network namespace: encodings, connections and the execution plan, as pure functions.

The same plan as the PyTorch backend (`emit/torch/network.py`): layers outside recurrent cycles run
layer-major (the currents of all T steps from one op on a [T, batch, ...] array, then the
neuron's `run`, a `lax.scan`); groups of layers closed by a recurrent path run step-major, in one
`lax.scan` over time. Ops are printed by `OP_PRINTERS`, one function per op, the same ops as
torch's table. Param names are torch's `named_parameters()` names, so weights move between the
backends in one line; the buffers that change as the network runs (plastic weights, batchnorm
running statistics) live in a second dict keyed by torch's `named_buffers()` names.

A plastic path (`learn RULE`) feeds a step-major layer: its weight and the rule's state are carried
through the group's scan, the rule (`jax_rule.py`) runs after the layer's step when `train`, and
the final weight is returned in the buffers, as torch writes its buffer back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ... import ir
from ...names import Namer, class_name, py_name
from ..base import ProgramVisitor, check_supported, emit_output_tuple, emit_sum, input_terms, plan_lines, state_fields
from ..writer import CodeWriter, literal
from .ops import OP_PRINTERS, OpContext
from .params import ParamsPrinter

_PER_STEP_MIN_MACS = 2 ** 14  # per sample: below, no batch up to 1024 reaches the generated `PER_STEP_MACS`

_READOUTS = {"count": "jnp.sum({}, 0)", "rate": "jnp.mean({}, 0)", "last": "{}[-1]", "max": "jnp.max({}, 0)",
             "trace": "{}"}

# names the generated network functions use themselves
_NETWORK_LOCALS = {"params", "state", "key", "keys", "train", "buffers", "new_buffers", "dt", "dtype",
                   "steps", "batch", "i", "t", "carry", "xs", "layer_params", "new_state", "jax", "jnp", "lax", "math",
                   "self", "values"}


@dataclass
class Plastic:
    """A plastic path inside a step-major scan: its dense op, the rule's class, and the locals holding
    the rule's params and carrying the weight and the rule's state."""

    dense: int
    cls: str
    rule: str
    weight: str
    state: str


class NetworkEmitter(ParamsPrinter, ProgramVisitor):
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
        self.neurons = {la.name: lowered.neurons[la.neuron] for la in net.layers}
        module_names = {class_name(n) for n in (*lowered.neurons, *lowered.rules, *lowered.networks)}
        module_names |= {f"{c}{s}" for c in module_names for s in ("State", "Params", "Output")}
        inputs = Namer(_NETWORK_LOCALS | module_names)
        self.input_arg = {i.name: inputs(i.name) for i in net.inputs}
        # modulators of the rules: keyword arguments of `apply`, as of torch's `forward`
        self.modulators = program.modulators
        self.mod_arg = {m: inputs.fresh(m) for m in self.modulators}  # never an input's name
        self.reserved = _NETWORK_LOCALS | module_names | set(self.input_arg.values()) | set(self.mod_arg.values())
        self.out_fields = Namer()
        self.frozen = {attr for (index, _k), attr in self.op_attr.items() if net.paths[index].frozen}
        # a plastic path's dense: its index, and its weight and bias are buffers (torch: `_plastic`)
        self.plastic_dense = program.plastic_dense
        self.buffer_keys = {b.key for b in program.buffers if b.role == "plastic"}
        self.random: dict[object, int] = {d.input if d.input is not None else (d.path, d.op): r
                                          for r, d in enumerate(program.random)}
        self.has_bn = any(b.role == "statistic" for b in program.buffers)
        self.any_t = program.reads_t
        self.inputs = {i.name: i for i in net.inputs}
        self.fresh_scope()

    def fresh_scope(self) -> None:
        """A new function body: fresh local names."""
        self.local = Namer(self.reserved)
        self.var_name: dict[tuple[str, str], str] = {}

    def v(self, layer: str, var: str, suffix: str = "") -> str:
        key = (layer, var + suffix)
        if key not in self.var_name:
            self.var_name[key] = self.local(f"{layer}_{var}{suffix}")
        return self.var_name[key]

    def body(self) -> CodeWriter:
        """A writer for a function body, spliced in after its preamble (which prints only the names
        the body uses)."""
        body = self.out.child()
        self.outer, self.out = self.out, body
        return body

    def splice(self, body: CodeWriter) -> None:
        self.out = self.outer
        o = self.out
        o.lines.extend(body.lines)

    @staticmethod
    def uses(body: CodeWriter, name: str) -> bool:
        code = "\n".join(line.split("#")[0] for line in body.lines)  # comments aside
        return re.search(rf"\b{re.escape(name)}\b", code) is not None

    def param(self, key: str) -> str:
        """The code reading a params key: frozen weights without gradient, plastic ones from `buffers`."""
        if key in self.buffer_keys:
            return f'buffers["{key}"]'
        attr = key.split(".")[0]
        text = f'params["{key}"]'
        return f"lax.stop_gradient({text})" if attr in self.frozen else text

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
        lines += ["", f"`apply(params, {args}, key=None)` takes " + "; ".join(
            f"{self.input_arg[i.name]} as {'[T, batch, ...]' if i.encoding in ('none', 'delta') else '[batch, ...]'}"
            for i in net.inputs) + ".",
            "Pure functions: `init(key) -> params` (keys: the torch module's `named_parameters()` names),",
            "`init_buffers(key) -> buffers` (torch's buffers that change as it runs: plastic weights, batchnorm",
            "running statistics), `apply`, `apply_with_buffers` (also returns the new buffers), `encode`,",
            "`init_state(params, batch)` and `step(params, state, *inputs_t) -> (state, outputs_t)`."]
        self.out.docstring("\n".join(lines))

    # -- encodings
    def emit_keys(self, rate_only: bool = False) -> None:
        if self.random and (not rate_only or any(i.encoding == "rate" for i in self.net.inputs)):
            self.out.line(f"keys = None if key is None else jax.random.split(key, {len(self.random)})")

    def emit_steps_batch(self, body: CodeWriter) -> None:
        """`steps, batch = ...`, each only if `body` uses it."""
        sequences = [i for i in self.net.inputs if i.encoding in ("none", "delta")]
        first = self.input_arg[(sequences or list(self.net.inputs))[0].name]
        values = {"steps": f"{first}.shape[0]" if sequences else f"{self.cls}.steps",
                  "batch": f"{first}.shape[1]" if sequences else f"{first}.shape[0]"}
        used = [name for name in values if self.uses(body, name)]
        if used:
            self.out.line(f"{', '.join(used)} = {', '.join(values[n] for n in used)}")

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
        args = self.args()
        o.line("@staticmethod")
        o.line(f"def encode({args}, key=None, *, dtype=None) -> tuple:")
        with o.indent():
            o.docstring("The encoded inputs, one [T, batch, ...] sequence per input: what `step` takes at each\n"
                        "step (`key` is split as `apply` splits it, so the same key gives the same spikes).")
            o.line("dtype = jnp.result_type(float) if dtype is None else dtype")
            self.emit_cast_inputs()
            body = self.body()
            self.emit_keys(rate_only=True)
            for inp in self.net.inputs:
                self.emit_encoding(inp)
            seqs = [self.v(i.name, "seq") for i in self.net.inputs]
            self.out.line(f"return ({', '.join(seqs)},)")
            self.out = self.outer
            self.emit_steps_batch(body)
            self.splice(body)
        o.blank()

    # -- paths
    def path_value(self, p: ir.LPath, time_axis: bool, at_step: bool, ctx_out: OpContext,
                   streaming: bool = False, source: str | None = None, ops: tuple[int, int] | None = None,
                   weight: str | None = None) -> str:
        """The current a path delivers: over all steps (`time_axis`) or at one step of a loop
        (reading `source`, if given, as the value at its start). `ops` prints only ops[start:end];
        `weight` is the local holding a plastic dense's weight at this step.

        Statements it needs first go to `ctx_out.pre`; values carried over steps to `ctx_out.carry`.
        """
        inputs = {i.name for i in self.net.inputs}
        static = p.index in self.program.static_paths and not streaming
        if source is not None:
            value = source
        elif p.src in inputs:
            value = self.input_arg[p.src] if streaming or static else self.v(p.src, "seq")
        elif time_axis:
            value = self.v(p.src, p.src_var)
        else:
            value = self.v(p.src, p.src_var, "_now")
        start, end = ops or (0, len(p.ops))
        for k in range(start, end):
            op = p.ops[k]
            ctx = OpContext(self.op_attr.get((p.index, k)), time_axis and not static, at_step and not static,
                            streaming, self.param, self.local, ctx_out.pre, ctx_out.carry,
                            self.masks.get((p.index, k)), p.line, weight if op.name == "dense" else None)
            value = OP_PRINTERS[op.name](op, value, ctx)
        return f"_repeat({value}, steps)" if static and time_axis else value

    def zeros(self, layer: str, time_axis: bool) -> str:
        lead = ["steps", "batch"] if time_axis else ["batch"]
        return f"jnp.zeros(({', '.join(lead + [literal(n) for n in self.layers[layer].shape])}), dtype)"

    def currents(self, layer: str, paths: list[ir.LPath], ctx: OpContext) -> list[list[tuple[str, int | None]]]:
        """Per neuron input of `layer`, the [T, batch, ...] terms summed into it (layer-major):
        (expression, spec line) for each path, then the input's default."""
        out = []
        for inp in self.neurons[layer].inputs:
            terms = input_terms(inp, paths, lambda p: self.path_value(p, True, False, ctx))
            if not any(p.dst_input == inp.var for p in paths):  # the sum takes the layer's shape from zeros
                terms.insert(0, (self.zeros(layer, True), None))
            out.append(terms)
        return out

    # -- apply
    def emit_apply(self) -> None:
        o = self.out
        args = self.args()
        mods = "".join(f", {code}=0.0" for code in self.mod_arg.values())
        passed = "".join(f", {code}={code}" for code in self.mod_arg.values())
        o.line("@staticmethod")
        o.line(f"def apply(params, {args}, key=None, *, train=True, buffers=None{mods}) -> {self.cls}Output:")
        with o.indent():
            doc = ("Run the network over all steps. `key` draws rate-coded inputs and, when `train`, dropout\n"
                   "masks (no key: no dropout). Batchnorm normalises with batch statistics when `train`, else\n"
                   "with the running statistics in `buffers` (default: `init_buffers()`).")
            if self.plastic_dense:
                doc += ("\nPlastic weights come from `buffers` (required) and change by their rules, step by step,\n"
                        "when `train`; `apply_with_buffers` returns them.")
            if self.modulators:
                doc += f"\nModulators ({', '.join(self.modulators)}) are scalars or [batch] arrays for the rules."
            o.docstring(doc)
            o.line(f"return {self.cls}.apply_with_buffers(params, buffers, {args}, key, train=train{passed})[0]")
        o.blank()
        self.fresh_scope()
        o.line("@staticmethod")
        o.line(f"def apply_with_buffers(params, buffers, {args}, key=None, *, train=True{mods})"
               f" -> tuple[{self.cls}Output, dict]:")
        with o.indent():
            o.docstring("`apply`, also returning the buffers: when `train`, the batchnorm running statistics updated\n"
                        "as torch updates them and the plastic weights as their rules left them; else unchanged\n"
                        "(`buffers=None` starts from `init_buffers()`).")
            body = self.body()
            self.emit_buffers(body)
            if self.has_bn or self.plastic_dense:
                body.line("new_buffers = dict(buffers)")
            body.line(f"layer_params = {self.cls}.neuron_params(params)")
            self.emit_keys()
            self.emit_masks()
            self.readouts: list[str] = []
            for statement in self.program.statements:
                self.visit(statement)
            fields = self.readouts
            buffers = "new_buffers" if self.has_bn or self.plastic_dense else "{} if buffers is None else buffers"
            body.line(f"return {self.cls}Output({', '.join(fields)}), {buffers}")
            self.out = self.outer
            if self.uses(body, "dt"):
                o.line(f"dt = {self.cls}.dt")
            o.line("dtype = _float_dtype(params)")
            self.emit_cast_inputs()
            self.emit_steps_batch(body)
            self.splice(body)
        o.blank()

    def visit_Readout(self, out: ir.Readout) -> None:
        seq = self.v(out.layer, out.var)
        self.readouts.append(f"{self.out_fields(out.output)}={_READOUTS[out.readout].format(seq)}")

    def emit_buffers(self, o: CodeWriter) -> None:
        """`buffers` where a function reads them: plastic weights must be given; batchnorm statistics
        default to `init_buffers()`."""
        if self.plastic_dense:
            o.line("if buffers is None:")
            with o.indent():
                o.line(f'raise ValueError("{self.cls} has plastic weights: pass buffers, from '
                       f'{self.cls}.init_buffers(key) "')
                o.line('                 "or torch\'s named_buffers()")')
        elif self.has_bn:
            o.line(f"buffers = {self.cls}.init_buffers(dtype=dtype) if buffers is None else buffers")

    def emit_masks(self) -> None:
        """One dropout mask per sequence and op, [batch, *in_shape], drawn when training with a key."""
        self.masks: dict[tuple[int, int], str] = {}
        for p in self.net.paths:
            for k, op in enumerate(p.ops):
                if (p.index, k) not in self.random:
                    continue
                mask = self.local(f"{self.op_attr[(p.index, k)]}_mask")
                shape = ", ".join(["batch", *map(str, op.in_shape)])
                self.out.line(f"{mask} = None if keys is None or not train else _dropout_mask("
                              f"keys[{self.random[(p.index, k)]}], {literal(float(op.args['p']))}, ({shape}), dtype)")
                self.masks[(p.index, k)] = mask

    def emit_pre(self, ctx: OpContext, o: CodeWriter | None = None) -> None:
        for text, line in ctx.pre:
            (o or self.out).line(text, self.src(line))
        ctx.pre.clear()

    def visit_LayerRun(self, run: ir.LayerRun) -> None:
        o = self.out
        layer = run.layer
        la = self.layers[layer]
        neuron = self.neurons[layer]
        attr = self.layer_attr[layer]
        paths = [self.net.paths[i] for i in run.paths]
        o.line(f"# layer {layer} = {la.neuron}{list(la.shape)}: all steps at once")
        states = run.records
        spike = self.v(layer, "spike")
        rec = self.local(f"{layer}_record") if states else "_"
        macs = run.per_step_macs
        if macs >= _PER_STEP_MIN_MACS:
            o.line(f"if _per_step(batch * {literal(macs)}):  # a large product per step: inside the scan")
            with o.indent():
                self.emit_per_step(layer, paths, f"{spike}, _, {rec}", bool(states))
            o.line("else:")
            o.level += 1
        ctx = OpContext(None, True, False, False, self.param, self.local)
        currents = self.currents(layer, paths, ctx)
        self.emit_pre(ctx)
        names = []
        for inp, terms in zip(neuron.inputs, currents, strict=True):
            name = self.local(f"{layer}_{inp.var}")
            emit_sum(o, name, terms, self.net.file)
            names.append(name)
        o.line(f'{spike}, _, {rec} = {class_name(neuron.name)}.run(layer_params["{attr}"], {", ".join(names)}, '
               f"dt=dt{', record=True' if states else ''})")
        if macs >= _PER_STEP_MIN_MACS:
            o.level -= 1
        fields = state_fields(neuron)
        for var in states:
            o.line(f"{self.v(layer, var)} = {rec}.{fields[var]}")

    def emit_per_step(self, layer: str, paths: list[ir.LPath], target: str, record: bool) -> None:
        """`target = _run_per_step(...)`: the layer's currents computed at each step inside its scan."""
        o = self.out
        neuron = self.neurons[layer]
        attr = self.layer_attr[layer]
        inputs = {i.name for i in self.net.inputs}
        seq = {p.index: self.v(p.src, "seq") if p.src in inputs else self.v(p.src, p.src_var) for p in paths}
        sources: dict[str, str] = {}  # sequence -> its argument name in the step function
        for p in paths:
            if seq[p.index] not in sources:
                sources[seq[p.index]] = self.local.fresh(f"{seq[p.index]}_t")
        fn = self.local.fresh(f"{layer}_currents")
        o.line(f"def {fn}({', '.join(sources.values())}):")
        with o.indent():
            ctx = OpContext(None, False, False, False, self.param, self.local)
            values = []
            for inp in neuron.inputs:
                terms = input_terms(inp, paths,
                                    lambda p: self.path_value(p, False, False, ctx, source=sources[seq[p.index]]))
                if not any(p.dst_input == inp.var for p in paths):
                    terms.insert(0, (self.zeros(layer, False), None))
                self.emit_pre(ctx)
                name = self.local.fresh(f"{layer}_{inp.var}_t")
                emit_sum(o, name, terms, self.net.file)
                values.append(name)
            o.line(f"return ({', '.join(values)}{',' if len(values) == 1 else ''})")
        o.line(f'{target} = _run_per_step({class_name(neuron.name)}, layer_params["{attr}"], {fn}, '
               f"({', '.join(sources)},), dt{', record=True' if record else ''})")

    def visit_StepLoop(self, loop: ir.StepLoop) -> None:
        o = self.out
        group = tuple(la.layer for la in loop.layers)
        self.loop_reads = {la.layer: la.now for la in loop.layers}
        plastic = [self.net.paths[i] for i in loop.plastic]
        why = ["a recurrent path closes a cycle through them"] if loop.recurrent else []
        why += ["plastic weights change every step"] if plastic else []
        o.line(f"# layers {', '.join(group)}: step by step ({'; '.join(why)})")
        outside: dict[int, str] = {}  # a path from outside the group: its current, or a plastic path's input
        ctx = OpContext(None, True, False, False, self.param, self.local)
        for p in (self.net.paths[i] for i in loop.outside):
            dense = self.plastic_dense.get(p.index)
            if dense == 0 and p.index not in self.program.static_paths:  # the dense reads the sequence itself
                outside[p.index] = self.path_value(p, True, False, ctx, ops=(0, 0))
                continue
            name = self.local(f"{p.src}_{p.dst}_{'current' if dense is None else 'pre'}")
            value = self.path_value(p, True, False, ctx, ops=None if dense is None else (0, dense))
            self.emit_pre(ctx)
            o.line(f"{name} = {value}", self.src(p.line))
            outside[p.index] = name
        # plastic paths: the rule's params, and the weight and rule state that the scan carries
        learning: dict[int, Plastic] = {}
        for p in plastic:
            assert p.learn is not None
            dense = self.plastic_dense[p.index]
            attr = self.op_attr[(p.index, dense)]
            rule = class_name(p.learn)
            learning[p.index] = Plastic(dense, rule, self.local(f"{attr}_{p.learn}"), self.local(f"{attr}_weight"),
                                        self.local(f"{attr}_rule_state"))
            given = ", ".join(f'"{py_name(k)}": {literal(v)}' for k, v in p.learn_args.items())
            o.line(f"{learning[p.index].rule} = {rule}.params({{{given}}}, dt=dt)", self.src(p.line))
        group_t = loop.reads_t
        # the body first, into its own writer: it decides what the loop carries
        body = o.child()
        body.level += 1
        step_ctx = OpContext(None, False, True, False, self.param, self.local)
        xs = {index: self.local(f"{name}_t") for index, name in outside.items()}
        self.emit_layer_steps(body, group, {i: xs[i] for i in outside}, step_ctx, "t" if group_t else None,
                              learning=learning)
        carried = [(self.local(la + "_state"), self.init_state_expr(la)) for la in group]
        carried += [(self.v(la, var, "_now"), self.zeros(la, False)) for la, var in loop.carried]
        carried += step_ctx.carry
        for p in plastic:
            pl = learning[p.index]
            op = p.ops[pl.dense]
            carried.append((pl.weight, f'buffers["{self.op_attr[(p.index, pl.dense)]}.weight"]'))
            carried.append((pl.state, f"{pl.cls}.init_state({pl.rule}, batch, {op.out_shape[0]}, {op.in_shape[0]}, "
                                      "dtype=dtype)"))
        outputs = []  # (stacked name, per-step value)
        for member in loop.layers:
            la = member.layer
            fields = state_fields(self.neurons[la])
            outputs.append((self.v(la, "spike"), self.v(la, "spike", "_now")))
            for var in sorted((set(member.now) | set(member.after)) - {"spike"}):
                outputs.append((self.v(la, var), f"{self.local(la + '_state')}.{fields[var]}"))
        fn = self.local.fresh(f"{'_'.join(group)}_step")
        init = self.local.fresh(f"{'_'.join(group)}_init")
        carry_names = ", ".join(name for name, _init in carried)
        trailing = "," if len(carried) == 1 else ""
        line = f"{init} = ({', '.join(value for _n, value in carried)}{trailing})"
        if len(line) + len(o.indent_unit) * o.level <= 120:
            o.line(line)
        else:
            o.line(f"{init} = (")
            with o.indent():
                for _name, value in carried:
                    o.line(f"{value},")
            o.line(")")
        o.blank()
        o.line(f"def {fn}(carry, xs):")
        with o.indent():
            o.line(f"{carry_names}{trailing} = carry")
            xs_names = [xs[i] for i in outside] + (["t"] if group_t else [])
            if xs_names:
                o.line(f"{', '.join(xs_names)}{',' if len(xs_names) == 1 else ''} = xs")
        o.lines.extend(body.lines)
        with o.indent():
            ys = ", ".join(value for _n, value in outputs)
            o.line(f"return ({carry_names}{trailing}), ({ys}{',' if len(outputs) == 1 else ''})")
        o.blank()
        seqs = [outside[i] for i in outside] + (["jnp.arange(steps, dtype=dtype) * dt"] if group_t else [])
        stacked = ", ".join(name for name, _v in outputs)
        one = "," if len(outputs) == 1 else ""
        # the final carry: only the plastic weights are kept
        weights = {pl.weight for pl in learning.values()}
        final = f"({', '.join(n if n in weights else '_' for n, _i in carried)}{trailing})" if weights else "_"
        if seqs:
            o.line(f"{final}, ({stacked}{one}) = lax.scan({fn}, {init}, ({', '.join(seqs)},))")
        else:
            o.line(f"{final}, ({stacked}{one}) = lax.scan({fn}, {init}, None, length=steps)")
        if learning:
            o.line("if train:")
            with o.indent():
                for index, pl in learning.items():
                    o.line(f'new_buffers["{self.op_attr[(index, pl.dense)]}.weight"] = {pl.weight}')

    def init_state_expr(self, layer: str) -> str:
        neuron = self.neurons[layer]
        attr = self.layer_attr[layer]
        return (f'{class_name(neuron.name)}.init_state(layer_params["{attr}"], batch, '
                f"{tuple(self.layers[layer].shape)!r}, dt=dt, dtype=dtype)")

    def emit_layer_steps(self, o: CodeWriter, group: tuple[str, ...], outside: dict[int, str], ctx: OpContext,
                         t: str | None, streaming: bool = False, learning: dict[int, Plastic] | None = None) -> None:
        """One step of the layers of `group`, in order: each reads the values current at its turn
        (this step's for layers before it, the previous step's for itself and later ones). A plastic
        path (`learning`) uses the weight its rule left at the step before, and after the layer's step
        its rule runs when `train` (`outside` holds its input at this step if it comes from outside)."""
        learning = learning or {}
        for layer in group:
            neuron = self.neurons[layer]
            state = self.local(layer + "_state")
            paths = [p for p in self.net.paths if p.dst == layer]
            pre: dict[int, str] = {}  # plastic paths: the values entering the dense at this step
            terms_by_input = []
            for inp in neuron.inputs:
                mine = [p for p in paths if p.dst_input == inp.var]
                terms = []
                for p in mine:
                    if p.index in learning:
                        pl = learning[p.index]
                        if p.index in outside:
                            pre[p.index] = outside[p.index]
                        else:  # a local of its own: the source's value may be rebound before the rule reads it
                            value = self.path_value(p, False, True, ctx, streaming, ops=(0, pl.dense))
                            self.emit_pre(ctx, o)
                            pre[p.index] = self.local(f"{p.src}_{layer}_pre")
                            o.line(f"{pre[p.index]} = {value}", self.src(p.line))
                        terms.append((self.path_value(p, False, True, ctx, streaming, source=pre[p.index],
                                                      ops=(pl.dense, len(p.ops)), weight=pl.weight), p.line))
                    elif p.index in outside:
                        terms.append((outside[p.index], p.line))
                    else:
                        terms.append((self.path_value(p, False, True, ctx, streaming), p.line))
                default = inp.value.value if isinstance(inp.value, ir.Num) else 0.0
                if default:
                    terms.append((literal(default), inp.line))
                self.emit_pre(ctx, o)
                if not terms or (len(terms) == 1 and mine and mine[0].index in outside):
                    # nothing, or one current computed before the loop (and traced there)
                    terms_by_input.append(terms[0][0] if terms else f"jnp.zeros_like({state}[0])")
                    continue
                # a path computed in the step: its current gets a line of its own, traced to the spec
                name = self.local(f"{layer}_{inp.var}_now")
                emit_sum(o, name, terms, self.net.file)
                terms_by_input.append(name)
            spike = self.v(layer, "spike", "_now")
            t_arg = f", t={t}" if t and neuron.reads_t else ""
            o.line(f'{spike}, {state} = {class_name(neuron.name)}.step(layer_params["{self.layer_attr[layer]}"], '
                   f"{', '.join(terms_by_input)}, {state}, dt=dt{t_arg})")
            rules = [p for p in paths if p.index in learning]
            if rules:
                o.line("if train:")
                with o.indent():
                    for p in rules:
                        pl = learning[p.index]
                        assert p.learn is not None
                        mods = "".join(f", {self.mod_arg[m]}" for m in self.lowered.rules[p.learn].modulators)
                        o.line(f"{pl.state}, {pl.weight} = {pl.cls}.step({pl.rule}, {pl.state}, {pl.weight}, "
                               f"{pre[p.index]}, {spike}{mods}, dt=dt)", self.src(p.line))
            fields = state_fields(neuron)
            for var in self.loop_reads[layer]:
                if var != "spike":
                    o.line(f"{self.v(layer, var, '_now')} = {state}.{fields[var]}")

    # -- streaming
    def emit_init_state_and_step(self) -> None:
        o = self.out
        net = self.net
        self.fresh_scope()
        self.masks = {}
        streaming = self.program.streaming
        assert streaming is not None
        everything = tuple(la.layer for la in streaming.layers)
        self.loop_reads = {la.layer: la.now for la in streaming.layers}
        body = o.child()
        body.level += 1
        ctx = OpContext(None, False, True, True, self.param, self.local)
        self.emit_layer_steps(body, everything, {}, ctx, "t" if self.any_t else None, streaming=True)
        previous = list(streaming.carried)
        delays = list(ctx.carry)
        step_scope = (self.local, self.var_name)

        o.line("@staticmethod")
        o.line("def init_state(params, batch: int) -> dict:")
        with o.indent():
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
                    for la in net.layers:
                        o.line(f'"{self.layer_attr[la.name]}": {self.init_state_expr(la.name)},')
                o.line("},")
                if previous:
                    o.line('"previous": {' + ", ".join(f'"{self.layer_attr[la]}.{var}": {self.zeros(la, False)}'
                                                       for la, var in previous) + "},")
                if delays:
                    o.line('"delays": {' + ", ".join(f'"{name}": {init}' for name, init in delays) + "},")
                if self.any_t:
                    o.line('"step": jnp.zeros((), int),')
            o.line("}")
        o.blank()

        self.local, self.var_name = step_scope
        args = self.args()
        o.line("@staticmethod")
        o.line(f"def step(params, state, {args}, *, buffers=None) -> tuple[dict, {self.cls}Output]:")
        with o.indent():
            o.docstring("One step of the whole network, layers in declaration order, from inputs already encoded\n"
                        "for this step ([batch, ...], as `encode` gives them at one step). Returns the new state and\n"
                        "the outputs' variables at this step (before any readout over time). Evaluation mode: no\n"
                        "dropout, batchnorm statistics and plastic weights from `buffers`, held (default:\n"
                        "`init_buffers()`).")
            o.line(f"dt = {self.cls}.dt")
            o.line("dtype = _float_dtype(params)")
            self.emit_cast_inputs()
            first = self.input_arg[net.inputs[0].name]
            if self.uses(body, "batch"):
                o.line(f"batch = {first}.shape[0]")
            self.emit_buffers(o)
            o.line(f"layer_params = {self.cls}.neuron_params(params)")
            for la in net.layers:
                o.line(f'{self.local(la.name + "_state")} = state["layers"]["{self.layer_attr[la.name]}"]')
            for src, var in previous:
                o.line(f'{self.v(src, var, "_now")} = state["previous"]["{self.layer_attr[src]}.{var}"]')
            for name, _init in delays:
                o.line(f'{name} = state["delays"]["{name}"]')
            if self.any_t:
                o.line('t = state["step"] * dt')
            o.lines.extend(body.lines)
            o.line("new_state = {")
            with o.indent():
                o.line('"layers": {' + ", ".join(f'"{self.layer_attr[la.name]}": {self.local(la.name + "_state")}'
                                                 for la in net.layers) + "},")
                if previous:
                    o.line('"previous": {' + ", ".join(f'"{self.layer_attr[la]}.{var}": {self.v(la, var, "_now")}'
                                                       for la, var in previous) + "},")
                if delays:
                    o.line('"delays": {' + ", ".join(f'"{name}": {name}' for name, _init in delays) + "},")
                if self.any_t:
                    o.line('"step": state["step"] + 1,')
            o.line("}")
            fields = []
            for out in net.outputs:
                if out.var == "spike":
                    value = self.v(out.layer, "spike", "_now")
                else:
                    value = f"{self.local(out.layer + '_state')}.{state_fields(self.neurons[out.layer])[out.var]}"
                fields.append(f"{self.out_fields(out.name)}={value}")
            o.line(f"return new_state, {self.cls}Output({', '.join(fields)})")
        o.blank()
