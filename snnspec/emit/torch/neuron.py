"""PyTorch neurons: per neuron a `NamedTuple` of its state and of its params, an
`autograd.Function` for the spike (exact 0/1 forward, the derived surrogate gradient backward)
and an `nn.Module` with `init_state`, `params`, `step` (one step, given params), `forward` (one
step) and `run` (all T steps, fused where `fused.py` prints kernels).
"""

from __future__ import annotations

from ... import ir
from ...expr import format_expr, names
from ...names import ModuleNames, py_name
from ..neuron import NeuronSkeleton
from ..printer import Printer
from ..writer import CodeWriter, literal
from .functions import TORCH_FUNCTIONS, clamp
from .fused import FusedEmitter


class NeuronEmitter(NeuronSkeleton):
    """Prints one lowered neuron: its state and params tuples, spike function, fused kernels and module."""

    functions = TORCH_FUNCTIONS
    array_type = "torch.Tensor"
    array_word = "tensor"
    # the fixed locals of step() and run(), so that no input, state or let takes their names
    reserved_locals = {"p", "state", "t", "dt", "spike", "gate", "active", "refractory_left", "i", "out", "rest",
                       "final", "stacked"}
    where = "torch.where"
    isfinite = "torch.isfinite"

    def __init__(self, n: ir.LNeuron, out: CodeWriter, module_names: ModuleNames):
        super().__init__(n, out, module_names)
        refractory = [("refractory_left", self.refrac_field)] if self.refrac_field else []
        self.fused = None if n.kernel is None else FusedEmitter(n, self.cls, [*self.state_fields, *refractory],
                                                                  module_names)

    def step_printer(self) -> Printer:
        return Printer(TORCH_FUNCTIONS, {**self.locals, "dt": "self.dt", "t": "t"},
                       arrays={*self.locals, "t"} - self.scalar_lets, fixed=self.fixed)

    def spike_call(self, args: str) -> str:
        return f"{self.cls}Spike.apply({args})"

    def detached(self, value: str) -> str:
        return f"{value}.detach()"

    def refractory_count(self) -> str:
        fired = "gate" if self.n.reset is not None else "spike.detach()"
        return f"torch.where({fired} > 0, float(self.refractory_steps), refractory_left - 1)"

    # -- the pieces
    def emit(self) -> None:
        self.emit_tuples()
        if self.n.spike is not None:
            self.emit_spike_function()
        if self.fused is not None:
            self.fused.emit(self.out)
        self.emit_module()

    def emit_spike_function(self) -> None:
        spike = self.n.spike
        assert spike is not None
        o = self.out
        extra = self.spike_extra()
        grad_names = {spike.grad_var: "x", **{p: f"p_{py_name(p)}" for p in extra}}
        printer = Printer(TORCH_FUNCTIONS, {**grad_names, "dt": "dt"}, arrays=set(grad_names))
        o.line(f"class {self.cls}Spike(torch.autograd.Function):")
        with o.indent():
            cmp = ">=" if spike.inclusive else ">"
            o.docstring(f"The spike: `heaviside(x {cmp} 0)` forward; surrogate `{spike.surrogate}` backward:\n\n"
                        f"    d spike / d x = {format_expr(spike.grad)}")
            args = ", ".join(["x", *(grad_names[p] for p in extra)])
            o.line("@staticmethod")
            o.line(f"def forward(ctx, {args}):")
            with o.indent():
                o.line(f"ctx.save_for_backward({args},)" if extra else "ctx.save_for_backward(x)")
                o.line(f"return (x {cmp} 0).to(x.dtype)")
            o.blank()
            o.line("@staticmethod")
            o.line("def backward(ctx, grad_output):")
            with o.indent():
                o.line(f"{args}, = ctx.saved_tensors" if extra else "(x,) = ctx.saved_tensors")
                nones = ", None" * len(extra)
                o.line(f"return grad_output * ({printer(spike.grad)}){nones}", self.src(spike.line))
        o.blank(2)

    def emit_module(self) -> None:
        n, o = self.n, self.out
        o.line(f"class {self.cls}(nn.Module):")
        with o.indent():
            lines = [f"Neuron `{n.name}` ({o.source(n.file)}), one step per call.", ""]
            lines += [f"    {eq}" for eq in n.equations]
            if n.method:
                lines += ["", f"ODEs integrated by `{n.method}` over each step, inputs held constant."]
            if n.method_note:
                lines.append(f"Note: {n.method_note}.")
            default_dt = "1 ms (dt in seconds)" if n.uses_units else "1 (dt counts steps)"
            lines += ["", f"Construct with `{self.cls}(shape, dt=None, **params)`; default dt {default_dt}."]
            o.docstring("\n".join(lines))
            o.blank()
            self.emit_init()
            self.emit_params()
            self.emit_init_state()
            self.emit_step()
            self.emit_forward()
            self.emit_run()
        o.blank(2)

    def emit_init(self) -> None:
        n, o = self.n, self.out
        kwargs = "".join(f", {code}=None" for _s, code in self.param_fields)
        o.line(f"def __init__(self, shape, *, dt=None{kwargs}):")
        with o.indent():
            o.line("super().__init__()")
            o.line("self.shape = (shape,) if isinstance(shape, int) else tuple(shape)")
            o.line(f"self.dt = {literal(1e-3 if n.uses_units else 1.0)} if dt is None else float(dt)")
            o.line("dt = self.dt")
            learnable = {p.name for p in n.params if p.learnable}
            live = self.live_params()
            env = {spec: code for spec, code in self.param_fields}
            init_printer = Printer(TORCH_FUNCTIONS, {**env, "dt": "dt"}, arrays=set(env))
            for p in n.params:
                code = env[p.name]
                if p.name in live:
                    o.line(f'self.register_buffer("{code}", None if {code} is None else _tensor({code}))',
                           self.src(p.line))
                    continue
                o.line(f"{code} = _tensor({init_printer(p.default)} if {code} is None else {code})", self.src(p.line))
                if p.name in learnable:
                    shape = ".expand(self.shape).clone()" if p.per_neuron else ""
                    o.line(f"self.{code} = nn.Parameter({code}{shape})")
                else:
                    o.line(f'self.register_buffer("{code}", {code})')
            if not n.params:
                o.line('self.register_buffer("reference", torch.zeros(()), persistent=False)')
            if self.fused is not None:
                o.line("self.fused = True  # run() uses the fused kernels when numba is available")
            if self.refrac_field:
                assert n.refractory is not None
                o.line(f"self.refractory_steps = round(float({init_printer(n.refractory)}) / dt)")
        o.blank()

    def emit_params(self) -> None:
        n, o = self.n, self.out
        o.line(f"def params(self) -> {self.cls}Params:")
        with o.indent():
            o.docstring("The params as used in a step: ranges applied, derived params recomputed.")
            env = dict(self.param_fields)
            printer = Printer(TORCH_FUNCTIONS, {**env, "dt": "self.dt"}, arrays=set(env))
            live = self.live_params()
            for p in n.params:
                code = env[p.name]
                value = f"self.{code}"
                if p.name in live:  # None unless given: computed from the learnable params it depends on
                    value = f"self.{code} if self.{code} is not None else {printer(p.default)}"
                if p.low is not None and p.high is not None:
                    bounds = printer.is_array(p.low) or printer.is_array(p.high)
                    value = clamp(f"({value})" if p.name in live else value, printer(p.low), printer(p.high), bounds)
                o.line(f"{code} = {value}", self.src(p.line) if value != f"self.{code}" else None)
            o.line(f"return {self.cls}Params({', '.join(code for _s, code in self.param_fields)})")
        o.blank()

    def emit_init_state(self) -> None:
        n, o = self.n, self.out
        o.line(f"def init_state(self, batch: int) -> {self.cls}State:")
        with o.indent():
            o.docstring("The state at the start of a run, for `batch` samples.")
            ref = f"self.{self.param_fields[0][1]}" if self.param_fields else "self.reference"
            inits = [s.value for s in n.states]
            if any(x.id in dict(self.param_fields) for e in inits for x in names(e)):
                o.line("p = self.params()")
            o.line(f"zeros = torch.zeros((batch, *self.shape), dtype={ref}.dtype, device={ref}.device)")
            o.line(f"return {self.cls}State({', '.join(self.state_inits())})")
        o.blank()

    def emit_step(self) -> None:
        o = self.out
        args = ", ".join(code for _s, code in self.inputs)
        o.line(f"def step(self, p: {self.cls}Params, {args}, state: {self.cls}State, t: float = 0.0)"
               f" -> tuple[torch.Tensor, {self.cls}State]:")
        with o.indent():
            o.docstring("One step from `state` with inputs " + ", ".join(f"`{c}`" for _s, c in self.inputs) + ".")
            if self.uses_t:
                first = self.inputs[0][1]
                o.line(f"t = torch.as_tensor(t, dtype={first}.dtype, device={first}.device)")
            self.emit_step_body()
        o.blank()

    def emit_forward(self) -> None:
        o = self.out
        args = ", ".join(code for _s, code in self.inputs)
        o.line(f"def forward(self, {args}, state: {self.cls}State | None = None)"
               f" -> tuple[torch.Tensor, {self.cls}State]:")
        with o.indent():
            o.docstring("One step; `state=None` starts from `init_state`.")
            o.line("if state is None:")
            with o.indent():
                o.line(f"state = self.init_state({self.inputs[0][1]}.shape[0])")
            o.line(f"return self.step(self.params(), {args}, state)")
        o.blank()

    def emit_run(self) -> None:
        o = self.out
        args = ", ".join(code for _s, code in self.inputs)
        o.line(f"def run(self, {args}, state: {self.cls}State | None = None, record: bool = False):")
        with o.indent():
            o.docstring("All steps of inputs shaped [T, batch, *shape]. Returns the outputs stacked over time,\n"
                        "the final state and, with `record`, every state stacked over time.")
            first = self.inputs[0][1]
            o.line("p = self.params()")
            o.line("if state is None:")
            with o.indent():
                o.line(f"state = self.init_state({first}.shape[1])")
            if self.fused is not None:
                o.line(f"if self.fused and _fusable({first}):")
                with o.indent():
                    steps = "self.refractory_steps" if self.refrac_field else "0"
                    o.line(f"out, *rest = {self.cls}Run.apply(self.dt, {steps}, record, {args}, *state, *p)")
                    n_fields = len(self.state_fields) + (1 if self.refrac_field else 0)
                    o.line(f"final = {self.cls}State(*rest[:{n_fields}])")
                    o.line(f"return out, final, {self.cls}State(*rest[{n_fields}:]) if record else None")
            o.line("outputs, states = [], []")
            o.line(f"for i in range({first}.shape[0]):")
            with o.indent():
                step_args = ", ".join(f"{c}[i]" for _s, c in self.inputs)
                t_arg = ", i * self.dt" if self.uses_t else ""
                o.line(f"out, state = self.step(p, {step_args}, state{t_arg})")
                o.line("outputs.append(out)")
                o.line("if record:")
                with o.indent():
                    o.line("states.append(state)")
            o.line(f"stacked = {self.cls}State(*(torch.stack(s) for s in zip(*states))) if record else None")
            o.line("return torch.stack(outputs), state, stacked")
