"""JAX neurons: per neuron a `NamedTuple` of its state and of its params, a `jax.custom_jvp`
spike (exact 0/1 forward, the derived surrogate gradient as its derivative) and a namespace class
of static functions: `init` (param values, as the torch module holds them), `params` (ranges
applied, derived params recomputed), `init_state`, `step` (one step) and `run` (`lax.scan` over
time). Mirrors `emit/torch/neuron.py`.
"""

from __future__ import annotations

from ... import ir
from ...expr import format_expr, names
from ...names import ModuleNames, Namer, py_name
from ..neuron import NeuronSkeleton
from ..printer import Printer
from ..writer import CodeWriter, literal
from .functions import JAX_FUNCTIONS

# locals of the generated neuron functions that spec names must not take
_NEURON_LOCALS = {"p", "state", "t", "dt", "spike", "gate", "active", "zeros", "refractory_left", "values", "params",
                  "shape", "batch", "dtype", "record", "body", "carry", "xs", "out", "outputs", "stacked", "steps",
                  "refractory_steps", "jax", "jnp", "lax", "math"}


class NeuronEmitter(NeuronSkeleton):
    """Prints one lowered neuron: its state and params tuples, spike function and namespace."""

    functions = JAX_FUNCTIONS
    array_type = "jax.Array"
    array_word = "array"
    reserved_locals = _NEURON_LOCALS
    where = "jnp.where"
    scalars = {"dt", "pi"}
    isfinite = "jnp.isfinite"

    def __init__(self, n: ir.LNeuron, out: CodeWriter, module_names: ModuleNames):
        super().__init__(n, out, module_names)
        if n.spike is not None:
            self.spike_fn = module_names.internal(f"_{self.cls}_spike")
            self.spike_jvp = module_names.internal(f"_{self.cls}_spike_jvp")

    def step_printer(self) -> Printer:
        # `t` may be traced (inside `lax.scan`), so it is printed as an array, never with `math`
        return Printer(JAX_FUNCTIONS, {**self.locals, "dt": "dt", "t": "t"},
                       arrays={*self.locals, "t"} - self.scalar_lets, fixed=self.fixed)

    def spike_call(self, args: str) -> str:
        return f"{self.spike_fn}({args})"

    def detached(self, value: str) -> str:
        return f"lax.stop_gradient({value})"

    def refractory_count(self) -> str:
        if self.n.reset is None:
            self.out.line("gate = lax.stop_gradient(spike)")
        return f"jnp.where(gate > 0, {self.refractory_steps()}, refractory_left - 1)"

    def emit(self) -> None:
        self.emit_tuples()
        if self.n.spike is not None:
            self.emit_spike_function()
        self.emit_namespace()

    def emit_spike_function(self) -> None:
        spike = self.n.spike
        assert spike is not None
        o = self.out
        extra = self.spike_extra()
        grad_names = {spike.grad_var: "x", **{p: f"p_{py_name(p)}" for p in extra}}
        printer = Printer(JAX_FUNCTIONS, {**grad_names, "dt": "dt"}, arrays=set(grad_names))
        fn = self.spike_fn
        args = ", ".join(["x", *(grad_names[p] for p in extra)])
        cmp = ">=" if spike.inclusive else ">"
        o.line("@jax.custom_jvp")
        o.line(f"def {fn}({args}):")
        with o.indent():
            o.docstring(f"The spike of `{self.cls}`: `heaviside(x {cmp} 0)`; its derivative is the surrogate "
                        f"`{spike.surrogate}`:\n\n    d spike / d x = {format_expr(spike.grad)}")
            o.line(f"return (x {cmp} 0).astype(x.dtype)")
        o.blank(2)
        o.line(f"@{fn}.defjvp")
        o.line(f"def {self.spike_jvp}(primals, tangents):")
        with o.indent():
            o.line(f"{args}, = primals" if extra else "(x,) = primals")
            o.line("x_dot = tangents[0]")
            o.line(f"return {fn}({args}), x_dot * ({printer(spike.grad)})", self.src(spike.line))
        o.blank(2)

    def emit_namespace(self) -> None:
        n, o = self.n, self.out
        o.line(f"class {self.cls}:")
        with o.indent():
            lines = [f"Neuron `{n.name}` ({o.source(n.file)}): pure functions, one step per `step`.", ""]
            lines += [f"    {eq}" for eq in n.equations]
            if n.method:
                lines += ["", f"ODEs integrated by `{n.method}` over each step, inputs held constant."]
            if n.method_note:
                lines.append(f"Note: {n.method_note}.")
            default_dt = "1 ms (dt in seconds)" if n.uses_units else "1 (dt counts steps)"
            inputs = ", ".join(c for _s, c in self.inputs)
            lines += ["", "`init(shape, dt=None, **params)` gives the param values (a dict), `params(values)` the "
                      "values a step uses;", f"`init_state(params, batch, shape)`, `step(params, {inputs}, state)`, "
                      f"`run(params, {inputs}[T], state=None)`. Default dt {default_dt}."]
            o.docstring("\n".join(lines))
            o.blank()
            o.line(f"dt = {literal(1e-3 if n.uses_units else 1.0)}")
            o.blank()
            self.emit_init()
            self.emit_params()
            self.emit_init_state()
            self.emit_step()
            self.emit_run()
        o.blank(2)

    def emit_init(self) -> None:
        n, o = self.n, self.out
        kwargs = "".join(f", {code}=None" for _s, code in self.param_fields)
        o.line("@staticmethod")
        o.line(f"def init(shape=(), *, dt=None, dtype=None{kwargs}) -> dict:")
        with o.indent():
            o.docstring("The param values of a layer of `shape`, as the torch module holds them: learnable params\n"
                        "(per neuron ones of `shape`) and fixed ones; derived params of learnable ones are left out\n"
                        "(recomputed by `params`) unless given.")
            o.line(f"dt = {self.cls}.dt if dt is None else dt")
            o.line("dtype = jnp.result_type(float) if dtype is None else dtype")
            o.line("shape = (shape,) if isinstance(shape, int) else tuple(shape)")
            env = {spec: code for spec, code in self.param_fields}
            init_printer = Printer(JAX_FUNCTIONS, {**env, "dt": "dt"}, arrays=set(env))
            live = self.live_params()
            entries: list[tuple[str, str | None]] = []
            for p in n.params:
                code = env[p.name]
                if p.name in live:
                    entries.append((code, None))
                    continue
                o.line(f"{code} = {init_printer(p.default)} if {code} is None else {code}", self.src(p.line))
                if p.learnable and p.per_neuron:
                    entries.append((code, f"jnp.full(shape, {code}, dtype)"))
                else:
                    entries.append((code, f"jnp.asarray({code}, dtype)"))
            o.line("values = {}")
            for code, value in entries:
                if value is None:
                    o.line(f"if {code} is not None:")
                    with o.indent():
                        o.line(f'values["{code}"] = jnp.asarray({code}, dtype)')
                else:
                    o.line(f'values["{code}"] = {value}')
            o.line("return values")
        o.blank()

    def emit_params(self) -> None:
        n, o = self.n, self.out
        o.line("@staticmethod")
        o.line(f"def params(values=None, *, dt=None) -> {self.cls}Params:")
        with o.indent():
            o.docstring("The params a step uses, from `values` (a dict; missing ones take their defaults):\n"
                        "ranges applied, derived params recomputed.")
            field = dict(self.param_fields)
            local = Namer({"values", "dt", "dtype"})
            env = {spec: local(code) for spec, code in self.param_fields}  # a param named `values` keeps the dict
            if n.params:
                o.line(f"dt = {self.cls}.dt if dt is None else dt")
                o.line("values = {} if values is None else values")
                # arrays, as torch's buffers are: `tau = 0` divides to inf, not ZeroDivisionError
                o.line("dtype = _float_dtype(values)")
            printer = Printer(JAX_FUNCTIONS, {**env, "dt": "dt"}, arrays=set(env))
            for p in n.params:
                code, key = env[p.name], field[p.name]
                value = f'values["{key}"] if "{key}" in values else {printer(p.default)}'
                o.line(f"{code} = jnp.asarray({value}, dtype)", self.src(p.line))
                if p.low is not None and p.high is not None:
                    o.line(f"{code} = _clamp({code}, {printer(p.low)}, {printer(p.high)})", self.src(p.line))
            o.line(f"return {self.cls}Params({', '.join(env[spec] for spec, _c in self.param_fields)})")
        o.blank()

    def resolve_line(self) -> None:
        self.out.line(f"p = params if isinstance(params, {self.cls}Params) else {self.cls}.params(params, dt=dt)")

    def emit_init_state(self) -> None:
        n, o = self.n, self.out
        o.line("@staticmethod")
        o.line(f"def init_state(params, batch: int, shape=(), *, dt=None, dtype=None) -> {self.cls}State:")
        with o.indent():
            o.docstring("The state at the start of a run, for `batch` samples of a layer of `shape`.")
            inits = [s.value for s in n.states]
            if any(x.id in dict(self.param_fields) for e in inits for x in names(e)):
                o.line(f"dt = {self.cls}.dt if dt is None else dt")
                self.resolve_line()
            o.line("shape = (shape,) if isinstance(shape, int) else tuple(shape)")
            o.line("zeros = jnp.zeros((batch, *shape), jnp.result_type(float) if dtype is None else dtype)")
            o.line(f"return {self.cls}State({', '.join(self.state_inits())})")
        o.blank()

    def emit_step(self) -> None:
        o = self.out
        args = ", ".join(code for _s, code in self.inputs)
        o.line("@staticmethod")
        o.line(f"def step(params, {args}, state: {self.cls}State, *, dt=None, t=0.0)"
               f" -> tuple[jax.Array, {self.cls}State]:")
        with o.indent():
            o.docstring("One step from `state` with inputs " + ", ".join(f"`{c}`" for _s, c in self.inputs)
                        + f"; `params` is a dict of values or a `{self.cls}Params`.")
            o.line(f"dt = {self.cls}.dt if dt is None else dt")
            self.resolve_line()
            self.emit_step_body()
        o.blank()

    def refractory_steps(self) -> str:
        """`round(refractory / dt)`: a Python int when it is a number, else an array."""
        assert self.n.refractory is not None
        value = self.printer(self.n.refractory)
        if self.printer.is_array(self.n.refractory):
            return f"jnp.round(({value}) / dt)"
        return f"float(round({value} / dt))"

    def emit_run(self) -> None:
        o = self.out
        args = ", ".join(code for _s, code in self.inputs)
        first = self.inputs[0][1]
        o.line("@staticmethod")
        o.line(f"def run(params, {args}, state: {self.cls}State | None = None, *, dt=None, record: bool = False):")
        with o.indent():
            o.docstring("All steps of inputs shaped [T, batch, *shape], by `lax.scan`. Returns the outputs stacked\n"
                        "over time, the final state and, with `record`, every state stacked over time (else None).")
            o.line(f"dt = {self.cls}.dt if dt is None else dt")
            self.resolve_line()
            o.line("if state is None:")
            with o.indent():
                o.line(f"state = {self.cls}.init_state(p, {first}.shape[1], {first}.shape[2:], dtype={first}.dtype)")
            o.blank()
            xs = [c for _s, c in self.inputs]
            o.line("def body(state, xs):")
            with o.indent():
                unpacked = [*xs, "t"] if self.uses_t else xs
                o.line(f"{', '.join(unpacked)}{',' if len(unpacked) == 1 else ''} = xs")
                t_arg = ", t=t" if self.uses_t else ""
                o.line(f"out, state = {self.cls}.step(p, {', '.join(xs)}, state, dt=dt{t_arg})")
                o.line("return state, (out, state) if record else (out, None)")
            o.blank()
            seq = ", ".join(xs)
            if self.uses_t:
                seq += f", jnp.arange({first}.shape[0], dtype={first}.dtype) * dt"
            o.line(f"state, (outputs, stacked) = lax.scan(body, state, ({seq},))")
            o.line("return outputs, state, stacked")

