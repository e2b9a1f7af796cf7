"""JAX neurons: per neuron a `NamedTuple` of its state and of its params, a `jax.custom_jvp`
spike (exact 0/1 forward, the derived surrogate gradient as its derivative) and a namespace class
of static functions: `init` (param values, as the torch module holds them), `params` (ranges
applied, derived params recomputed), `init_state`, `step` (one step) and `run` (`lax.scan` over
time). Mirrors `emit/torch/neuron.py`.
"""

from __future__ import annotations

from ... import ir
from ...names import ModuleNames, Namer
from ..neuron import NeuronSkeleton, SpikeFunction
from ..writer import STATIC, CodeWriter, unpacked
from .functions import DTYPE, JAX_FUNCTIONS, clamp


class NeuronEmitter(NeuronSkeleton):
    """Prints one lowered neuron: its state and params tuples, spike function and namespace."""

    functions = JAX_FUNCTIONS
    array_type = "jax.Array"
    array_word = "array"
    # the locals of the generated functions, so that no input, state or let takes their names
    reserved_locals = {"p", "state", "t", "dt", "spike", "gate", "active", "zeros", "refractory_left", "values",
                       "params", "shape", "batch", "dtype", "record", "body", "carry", "xs", "out", "outputs",
                       "stacked", "steps", "refractory_steps", "jax", "jnp", "lax", "math"}
    where = "jnp.where"
    isfinite = "jnp.isfinite"
    dt_text = "dt"
    decorators = STATIC

    def __init__(self, n: ir.LNeuron, out: CodeWriter, module_names: ModuleNames):
        super().__init__(n, out)
        if n.spike is not None:
            self.spike_fn = module_names.internal(f"_{self.cls}_spike")
            self.spike_jvp = module_names.internal(f"_{self.cls}_spike_jvp")

    def refractory_count(self) -> str:
        if self.n.reset is None:
            self.out.line("gate = lax.stop_gradient(spike)")
        return f"jnp.where(gate > 0, {self.refractory_steps()}, refractory_left - 1)"

    def emit_spike_function(self, spike: SpikeFunction) -> None:
        o, fn = self.out, self.spike_fn
        doc = spike.doc(f"The spike of `{self.cls}`: `heaviside(x {spike.cmp} 0)`; its derivative is the surrogate "
                        f"`{spike.surrogate}`")
        with o.block(f"def {fn}({spike.args})", doc, decorators=["@jax.custom_jvp"], after=2):
            o.line(f"return (x {spike.cmp} 0).astype(x.dtype)")
        with o.block(f"def {self.spike_jvp}(primals, tangents)", decorators=[f"@{fn}.defjvp"], after=2):
            o.line(f"{spike.targets} = primals")
            o.line("x_dot = tangents[0]")
            o.line(f"return {fn}({spike.args}), x_dot * ({spike.grad})", spike.source)

    def emit_class(self) -> None:
        o = self.out
        usage = ("`init(shape, dt=None, **params)` gives the param values (a dict), `params(values)` the values a "
                 f"step uses;\n`init_state(params, batch, shape)`, `step(params, {self.args}, state)`, "
                 f"`run(params, {self.args}[T], state=None)`. Default dt {self.default_dt_doc()}.")
        doc = self.class_doc(": pure functions, one step per `step`.", usage)
        with o.block(f"class {self.cls}", doc, after=2):
            o.blank()
            o.line(f"dt = {self.default_dt}")
            o.blank()
            self.emit_init()
            self.emit_params()
            self.emit_init_state()
            self.emit_step()
            self.emit_run()

    def emit_dt(self) -> None:
        """`dt`: the argument, else the class's default."""
        self.out.line(f"dt = {self.cls}.dt if dt is None else dt")

    def emit_shape(self) -> None:
        """`shape` as a tuple: a layer's shape may be given as an int."""
        self.out.line("shape = (shape,) if isinstance(shape, int) else tuple(shape)")

    def emit_resolve(self) -> None:
        """`dt`, and `p`: the argument `params` when it is a `Params` already, else made from its values."""
        self.emit_dt()
        self.out.line(f"p = params if isinstance(params, {self.cls}Params) else {self.cls}.params(params, dt=dt)")

    def emit_init(self) -> None:
        n, o = self.n, self.out
        with self.method(f"init(shape=(), *, dt=None, dtype=None{self.param_kwargs()}) -> dict",
                         "The param values of a layer of `shape`, as the torch module holds them: learnable params\n"
                         "(per neuron ones of `shape`) and fixed ones; derived params of learnable ones are left out\n"
                         "(recomputed by `params`) unless given."):
            self.emit_dt()
            o.line(f"dtype = {DTYPE}")
            self.emit_shape()
            printer = self.param_printer()
            for p in n.params:
                code = self.param_codes[p.name]
                if p.name not in n.live_params:
                    o.line(f"{code} = {printer(p.default)} if {code} is None else {code}", self.src(p.line))
            o.line("values = {}")
            for p in n.params:
                code = self.param_codes[p.name]
                if p.name in n.live_params:
                    with o.block(f"if {code} is not None"):
                        o.line(f'values["{code}"] = jnp.asarray({code}, dtype)')
                elif p.learnable and p.per_neuron:
                    o.line(f'values["{code}"] = jnp.full(shape, {code}, dtype)')
                else:
                    o.line(f'values["{code}"] = jnp.asarray({code}, dtype)')
            o.line("return values")

    def emit_params(self) -> None:
        n, o = self.n, self.out
        with self.method(f"params(values=None, *, dt=None) -> {self.cls}Params",
                         "The params a step uses, from `values` (a dict; missing ones take their defaults):\n"
                         "ranges applied, derived params recomputed."):
            local = Namer({"values", "dt", "dtype"})
            # a param named `values` keeps the dict
            env = {spec: local(code) for spec, code in self.param_codes.items()}
            if n.params:
                self.emit_dt()
                o.line("values = {} if values is None else values")
                # arrays, as torch's buffers are: `tau = 0` divides to inf, not ZeroDivisionError
                o.line("dtype = _float_dtype(values)")
            printer = self.param_printer(codes=env)
            for p in n.params:
                code, key = env[p.name], self.param_codes[p.name]
                value = f'values["{key}"] if "{key}" in values else {printer(p.default)}'
                o.line(f"{code} = jnp.asarray({value}, dtype)", self.src(p.line))
                if p.low is not None and p.high is not None:
                    o.line(f"{code} = {clamp(code, printer(p.low), printer(p.high))}", self.src(p.line))
            o.line(f"return {self.cls}Params({', '.join(env.values())})")

    def emit_init_state(self) -> None:
        o = self.out
        with self.method(f"init_state(params, batch: int, shape=(), *, dt=None, dtype=None) -> {self.cls}State",
                         "The state at the start of a run, for `batch` samples of a layer of `shape`."):
            if self.state_reads_params():
                self.emit_resolve()
            self.emit_shape()
            o.line(f"zeros = jnp.zeros((batch, *shape), {DTYPE})")
            o.line(f"return {self.initial_state()}")

    def emit_step(self) -> None:
        with self.method(f"step(params, {self.args}, state: {self.cls}State, *, dt=None, t=0.0)"
                         f" -> tuple[jax.Array, {self.cls}State]",
                         self.step_doc() + f"; `params` is a dict of values or a `{self.cls}Params`."):
            self.emit_resolve()
            self.emit_step_body()

    def refractory_steps(self) -> str:
        """`round(refractory / dt)`: a Python int when it is a number, else an array."""
        assert self.n.refractory is not None
        value = self.printer(self.n.refractory)
        if self.printer.is_array(self.n.refractory):
            return f"jnp.round(({value}) / dt)"
        return f"float(round({value} / dt))"

    def emit_run(self) -> None:
        o, first = self.out, self.first
        with self.method(f"run(params, {self.args}, state: {self.cls}State | None = None, *, dt=None, "
                         "record: bool = False)",
                         "All steps of inputs shaped [T, batch, *shape], by `lax.scan`. Returns the outputs stacked\n"
                         "over time, the final state and, with `record`, every state stacked over time (else None)."):
            self.emit_resolve()
            self.emit_default_state(f"{self.cls}.init_state(p, {first}.shape[1], {first}.shape[2:], "
                                    f"dtype={first}.dtype)")
            o.blank()
            xs = [code for _spec, code in self.inputs]
            with o.block("def body(state, xs)", after=1):
                o.line(f"{unpacked([*xs, 't'] if self.n.reads_t else xs)} = xs")
                t_arg = ", t=t" if self.n.reads_t else ""
                o.line(f"out, state = {self.cls}.step(p, {self.args}, state, dt=dt{t_arg})")
                o.line("return state, (out, state) if record else (out, None)")
            seq = self.args
            if self.n.reads_t:
                seq += f", jnp.arange({first}.shape[0], dtype={first}.dtype) * dt"
            o.line(f"state, (outputs, stacked) = lax.scan(body, state, ({seq},))")
            o.line("return outputs, state, stacked")
