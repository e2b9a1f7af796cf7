"""The skeleton both code backends print a neuron with: the names of its fields and of a step's
locals, the two `NamedTuple`s, the texts both classes share and the body of one step. A backend
subclass gives its tables and the few lines that differ, and prints the class around the step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import NamedTuple

from .. import ir
from ..expr import format_expr, names
from ..names import Namer, class_name, py_name
from .printer import PRODUCT, Emit, Printer
from .writer import CodeWriter, literal, unpacked


class SpikeFunction(NamedTuple):
    """What both backends' spike functions (exact forward, surrogate gradient) are printed from."""

    args: str  # `x`, then the surrogate's extra arguments
    targets: str  # the same as the targets that unpack them: `(x,)` or `x, p_a,`
    extra: int  # how many extra arguments
    cmp: str  # the forward's comparison with 0
    grad: str  # d spike / d x, printed
    surrogate: str  # the surrogate's name
    formula: str  # d spike / d x as the spec writes it
    source: tuple[str, int | None]  # the spike's line in the spec

    def doc(self, head: str) -> str:
        """The docstring: `head`, then the gradient's formula."""
        return f"{head}:\n\n    d spike / d x = {self.formula}"


class NeuronSkeleton(ABC):
    functions: Mapping[str, Emit]  # the backend's array functions
    array_type: str  # the annotation of a state or param array
    array_word: str  # what the docstrings call one ("tensor", "array")
    reserved_locals: set[str]  # the fixed locals of the generated step and run
    where: str  # the backend's elementwise select
    isfinite: str  # the backend's elementwise test for a finite value
    dt_text: str  # how a step reads `dt`
    decorators: tuple[str, ...]  # printed above each method of the class
    spike_fn: str  # what a step calls to make the spike (set by a backend's __init__ for a spiking neuron)

    def __init__(self, n: ir.LNeuron, out: CodeWriter):
        self.n = n
        self.out = out
        self.cls = class_name(n.name)
        fields = Namer()
        self.state_fields = [(s.var, fields(s.var)) for s in n.states]
        if n.reads_spiked:
            self.state_fields.append(("spiked", fields("spiked")))
        self.refrac_field = fields.fresh("refractory_left") if n.refractory is not None and n.spike else None
        # the State tuple's fields: the states, then the refractory counter
        self.fields = [*self.state_fields, *([("refractory_left", self.refrac_field)] if self.refrac_field else [])]
        self.param_codes = {p.name: py_name(p.name) for p in n.params}
        local = self.namer = Namer(self.reserved_locals)
        self.inputs = [(i.var, local(i.var)) for i in n.inputs]
        self.args = ", ".join(code for _spec, code in self.inputs)  # the inputs as a step takes them
        self.first = self.inputs[0][1]  # the input whose shape, dtype and device the others share
        self.locals = {name: local(name) for name, _ in self.state_fields}
        self.locals.update({spec: code for spec, code in self.inputs})
        self.locals.update({x.var: local(x.var) for x in n.lets})
        self.locals.update({p: f"p.{code}" for p, code in self.param_codes.items()})
        self.default_dt = literal(1e-3 if n.uses_units else 1.0)
        # `t` is an array (traced inside JAX's `lax.scan`), never printed with `math`
        self.printer = Printer(self.functions, {**self.locals, "dt": self.dt_text, "t": "t"},
                               arrays={*self.locals, "t"} - set(n.number_lets),
                               fixed={"t", "dt", "pi", *n.constant_lets})  # the names without gradient

    def detached(self, value: str) -> str:
        """`value` without gradient, as the spec's `detach` prints."""
        return self.functions["detach"]([value], [True])

    @abstractmethod
    def refractory_count(self) -> str:
        """The new `refractory_left`: the refractory steps where the neuron fired, else one less."""

    @abstractmethod
    def emit_spike_function(self, spike: SpikeFunction) -> None:
        """The spike: exact 0/1 forward, the surrogate as its gradient."""

    @abstractmethod
    def emit_class(self) -> None:
        """The class of the neuron's methods (init, params, init_state, step, run)."""

    def emit(self) -> None:
        self.emit_tuples()
        if self.n.spike is not None:
            self.emit_spike_function(self.spike_function(self.n.spike))
        self.emit_class()

    def src(self, line: int | None) -> tuple[str, int | None]:
        return (self.n.file, line)

    def method(self, signature: str, doc: str | None = None) -> AbstractContextManager[None]:
        """The frame of one method of the class: its decorators, `def signature:`, its docstring."""
        return self.out.block(f"def {signature}", doc, decorators=self.decorators, after=1)

    def param_printer(self, dt: str = "dt", codes: Mapping[str, str] | None = None) -> Printer:
        """The printer of param defaults and ranges: params as the locals `codes` (default their fields)."""
        codes = self.param_codes if codes is None else codes
        return Printer(self.functions, {**codes, "dt": dt}, arrays=set(codes))

    def param_kwargs(self) -> str:
        """The params as the keyword arguments of the constructor (`init` in JAX)."""
        return "".join(f", {code}=None" for code in self.param_codes.values())

    def class_doc(self, how: str, usage: str) -> str:
        """The class's docstring: what it is (`how` it steps), the equations, their integration, `usage`."""
        n = self.n
        lines = [f"Neuron `{n.name}` ({self.out.source(n.file)}){how}", "", *(f"    {eq}" for eq in n.equations)]
        if n.method:
            lines += ["", f"ODEs integrated by `{n.method}` over each step, inputs held constant."]
        if n.method_note:
            lines.append(f"Note: {n.method_note}.")
        return "\n".join([*lines, "", usage])

    def default_dt_doc(self) -> str:
        return "1 ms (dt in seconds)" if self.n.uses_units else "1 (dt counts steps)"

    def step_doc(self) -> str:
        return "One step from `state` with inputs " + ", ".join(f"`{code}`" for _spec, code in self.inputs)

    def spike_function(self, spike: ir.LSpike) -> SpikeFunction:
        extra = list(spike.grad_args)
        grad_names = {spike.grad_var: "x", **{p: f"p_{py_name(p)}" for p in extra}}
        printer = Printer(self.functions, {**grad_names, "dt": "dt"}, arrays=set(grad_names))
        args = ", ".join(["x", *(grad_names[p] for p in extra)])
        return SpikeFunction(args, f"{args}," if extra else "(x,)", len(extra), ">=" if spike.inclusive else ">",
                             printer(spike.grad), spike.surrogate, format_expr(spike.grad), self.src(spike.line))

    def state_reads_params(self) -> bool:
        """Whether a state's initial value reads a param (and so `init_state` needs `p`)."""
        return any(x.id in self.param_codes for s in self.n.states for x in names(s.value))

    def emit_default_state(self, value: str) -> None:
        with self.out.block("if state is None"):
            self.out.line(f"state = {value}")

    def emit_tuples(self) -> None:
        self.out.named_tuple(f"{self.cls}State", f"The state of a `{self.cls}` layer, one {self.array_word} of shape "
                             "[batch, *shape] each.", [f"{code}: {self.array_type}" for _spec, code in self.fields])
        self.out.named_tuple(f"{self.cls}Params", f"The params of a `{self.cls}` layer in SI units, clamped to their "
                             "ranges.", [f"{code}: {self.array_type}" for code in self.param_codes.values()])

    def initial_state(self) -> str:
        """The state at the start, each field from the local `zeros` [batch, *shape]."""
        values = []
        for spec, _code in self.state_fields:
            init = next((s.value for s in self.n.states if s.var == spec), ir.Num(value=0.0))
            text = self.printer(init)
            values.append("zeros" if text == "0" else f"zeros + {text}")
        return f"{self.cls}State({', '.join(values + (['zeros'] if self.refrac_field else []))})"

    def emit_step_body(self) -> None:
        """From the state's fields to `return spike, State(...)`."""
        n, o = self.n, self.out
        fields = [self.locals[s] for s, _c in self.state_fields] + (["refractory_left"] if self.refrac_field else [])
        if fields:
            o.line(f"{unpacked(fields)} = state")
        for let in n.lets:
            o.line(f"{self.locals[let.var]} = {self.printer(let.value)}", self.src(let.line))
        o.assign([(self.locals[u.var], self.printer(u.value), u.line) for u in n.updates], n.file)
        if self.refrac_field:
            o.line("active = refractory_left <= 0")
            updated = {u.var for u in n.updates}
            for var in (u.var for u in n.reset.updates if u.var in updated) if n.reset else ():
                # held while refractory: the state tuple still holds the value before this step
                o.line(f"{self.locals[var]} = {self.where}(active, {self.locals[var]}, "
                       f"state.{dict(self.state_fields)[var]})")
        if n.spike is None:
            spike_code = self.locals[n.output] if n.output else "None"
        else:
            extra_args = "".join(f", {self.printer(ir.Name(id=e))}" for e in n.spike.grad_args)
            o.line(f"spike = {self.spike_fn}({self.printer(n.spike.x)}{extra_args})", self.src(n.spike.line))
            if self.refrac_field:
                o.line("spike = spike * active")
            spike_code = "spike"
            if n.reset is not None:
                o.line(f"gate = {'spike' if n.reset.with_gradient else self.detached('spike')}")
                self.emit_reset(n.reset)
        result = ["spike" if spec == "spiked" else self.locals[spec] for spec, _code in self.state_fields]
        if self.refrac_field:
            o.line(f"refractory_left = {self.refractory_count()}")
            result.append("refractory_left")
        o.line(f"return {spike_code}, {self.cls}State({', '.join(result)})")

    def emit_reset(self, reset: ir.LReset) -> None:
        """Each reset state blended to its value where the neuron spiked: `v - gate * (v - value)`, or
        `v - gate * c` for `v -= c`; a value in `reset.guarded` first replaced by its fallback where
        it is not finite and the neuron did not spike (see `ir.LReset`)."""
        values = []
        for u in reset.updates:
            var = self.locals[u.var]
            op, change = ir.reset_change(u.var, u.value)
            if u.var in reset.guarded:
                text, prec = self.emit_guarded(u, change, var if op == "=" else "0.0"), PRODUCT + 1
            else:
                text, prec = self.printer.print(change)
            if op == "=":
                values.append((var, f"{var} - gate * ({var} - {text})", u.line))
            else:
                values.append((var, f"{var} {op} gate * {text if prec > PRODUCT else f'({text})'}", u.line))
        self.out.assign(values, self.n.file)

    def emit_guarded(self, u: ir.Update, change: ir.Expr, fallback: str) -> str:
        """The local holding `change`, replaced by `fallback` where it is not finite on a step without
        a spike. It is computed again on arrays whose gradient is cut where it was not kept, so that
        autograd's `0 * inf` there (d(1/v)/dv at v = 0) does not reach them either."""
        o, value, kept = self.out, self.namer.fresh(f"{u.var}_on_spike"), self.namer.fresh(f"{u.var}_kept")
        o.line(f"{value} = {self.printer(change)}", self.src(u.line))
        o.line(f"{kept} = (gate != 0) | {self.isfinite}({value})")
        read = {x.id for x in names(change)} & {*(s.var for s in self.n.states), *(i.var for i in self.n.inputs)}
        cut = {name: f"{self.where}({kept}, {self.locals[name]}, {self.detached(self.locals[name])})" for name in read}
        again = replace(self.printer, names={**self.printer.names, **cut})
        o.line(f"{value} = {self.where}({kept}, {again(change)}, {fallback})", self.src(u.line))
        return value
