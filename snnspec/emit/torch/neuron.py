"""PyTorch neurons: per neuron a `NamedTuple` of its state and of its params, an
`autograd.Function` for the spike (exact 0/1 forward, the derived surrogate gradient backward)
and an `nn.Module` with `init_state`, `params`, `step` (one step, given params), `forward` (one
step) and `run` (all T steps, fused where `fused.py` prints kernels).
"""

from __future__ import annotations

from ... import ir
from ...expr import format_expr, names
from ...lower.kernel import live_params
from ..names import ModuleNames, Namer, class_name, py_name
from ..printer import PRODUCT, Printer
from ..writer import CodeWriter, literal
from .functions import TORCH_FUNCTIONS
from .fused import FusedEmitter


class NeuronEmitter:
    """Prints one lowered neuron: its state and params tuples, spike function and module."""

    def __init__(self, n: ir.LNeuron, out: CodeWriter, module_names: ModuleNames):
        self.n = n
        self.out = out
        self.module_names = module_names
        self.cls = class_name(n.name)
        fields = Namer()
        self.state_fields = [(s.var, fields(s.var)) for s in n.states]
        self.uses_spiked = any(x.id == "spiked" for e in self._all_exprs() for x in names(e))
        if self.uses_spiked:
            self.state_fields.append(("spiked", fields("spiked")))
        self.refrac_field = fields.fresh("refractory_left") if n.refractory is not None and n.spike else None
        self.param_fields = [(p.name, py_name(p.name)) for p in n.params]
        self.uses_t = any(x.id == "t" for e in self._all_exprs() for x in names(e))
        # the fixed locals of step() and run(), so that no input, state or let takes their names
        local = Namer({"p", "state", "t", "dt", "spike", "gate", "active", "refractory_left", "i", "out", "rest",
                       "final", "stacked"})
        self.inputs = [(i.var, local(i.var)) for i in n.inputs]
        self.locals = {name: local(name) for name, _ in self.state_fields}
        self.locals.update({spec: code for spec, code in self.inputs})
        self.locals.update({x.var: local(x.var) for x in n.lets})
        self.locals.update({p: f"p.{code}" for p, code in self.param_fields})
        self.printer = Printer(TORCH_FUNCTIONS, {**self.locals, "dt": "self.dt", "t": "t"},
                               arrays=set(self.locals))
        self.fused = self.make_fused()

    def _all_exprs(self) -> list[ir.Expr]:
        n = self.n
        exprs = [u.value for u in (*n.updates, *n.lets)]
        if n.spike:
            exprs += [n.spike.x, n.spike.grad]
        if n.reset:
            exprs += [u.value for u in n.reset.updates]
        return exprs

    def src(self, line: int | None) -> tuple[str, int | None]:
        return (self.n.file, line)

    # -- the pieces
    def emit(self) -> None:
        self.emit_tuples()
        if self.n.spike is not None:
            self.emit_spike_function()
        if self.fused is not None:
            self.fused.emit_forward(self.out)
            self.out.blank(2)
            self.fused.emit_backward(self.out)
            self.out.blank(2)
            self.fused.emit_function(self.out)
        self.emit_module()

    def make_fused(self) -> FusedEmitter | None:
        """The fused (numba) recurrence for this neuron, if lowering gave it one."""
        if self.n.kernel is None:
            return None
        fused = FusedEmitter(self.n.kernel, self.n, self.cls, [*self.state_fields, *(
            [("refractory_left", self.refrac_field)] if self.refrac_field else [])])
        fused.name_kernels(self.module_names)
        return fused

    def emit_tuples(self) -> None:
        o = self.out
        o.line(f"class {self.cls}State(NamedTuple):")
        with o.indent():
            o.docstring(f"The state of a `{self.cls}` layer, one tensor of shape [batch, *shape] each.")
            for _spec, code in self.state_fields:
                o.line(f"{code}: torch.Tensor")
            if self.refrac_field:
                o.line(f"{self.refrac_field}: torch.Tensor")
            if not self.state_fields and not self.refrac_field:
                o.line("pass")
        o.blank(2)
        o.line(f"class {self.cls}Params(NamedTuple):")
        with o.indent():
            o.docstring(f"The params of a `{self.cls}` layer in SI units, clamped to their ranges.")
            for _spec, code in self.param_fields:
                o.line(f"{code}: torch.Tensor")
            if not self.param_fields:
                o.line("pass")
        o.blank(2)

    def emit_spike_function(self) -> None:
        spike = self.n.spike
        assert spike is not None
        o = self.out
        extra = sorted({x.id for x in names(spike.grad)} - {spike.grad_var, "pi", "dt", "t"})
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

    def live_params(self) -> set[str]:
        """Derived params that depend on a learnable one: recomputed on every forward."""
        return live_params(self.n)

    def emit_params(self) -> None:
        n, o = self.n, self.out
        o.line(f"def params(self) -> {self.cls}Params:")
        with o.indent():
            o.docstring("The params as used in a step: ranges applied, derived params recomputed.")
            env = {spec: code for spec, code in self.param_fields}
            printer = Printer(TORCH_FUNCTIONS, {**env, "dt": "self.dt"}, arrays=set(env))
            live = self.live_params()
            for p in n.params:
                code = env[p.name]
                value = f"self.{code}"
                if p.name in live:
                    value = f"self.{code} if self.{code} is not None else {printer(p.default)}"
                if p.low is not None and p.high is not None:
                    low, high = printer(p.low), printer(p.high)
                    if p.name in live:
                        value = f"({value})"
                    value = f"{value}.clamp({low}, {high})" if not (printer.is_array(p.low) or printer.is_array(
                        p.high)) else f"torch.clamp(torch.clamp({value}, min={low}), max={high})"
                if value != f"self.{code}":
                    o.line(f"{code} = {value}", self.src(p.line))
                else:
                    o.line(f"{code} = self.{code}")
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
            values = []
            for spec, _code in self.state_fields:
                init = next((s.value for s in n.states if s.var == spec), ir.Num(value=0.0))
                text = self.printer(init)
                values.append("zeros" if text == "0" else f"zeros + {text}")
            if self.refrac_field:
                values.append("zeros")
            o.line(f"return {self.cls}State({', '.join(values)})")
        o.blank()

    def emit_step(self) -> None:
        n, o = self.n, self.out
        args = ", ".join(code for _s, code in self.inputs)
        o.line(f"def step(self, p: {self.cls}Params, {args}, state: {self.cls}State, t: float = 0.0)"
               f" -> tuple[torch.Tensor, {self.cls}State]:")
        with o.indent():
            o.docstring("One step from `state` with inputs " + ", ".join(f"`{c}`" for _s, c in self.inputs) + ".")
            fields = [self.locals[s] for s, _c in self.state_fields]
            if self.refrac_field:
                fields.append("refractory_left")
            if fields:
                o.line(f"{', '.join(fields)}{',' if len(fields) == 1 else ''} = state")
            for let in n.lets:
                o.line(f"{self.locals[let.var]} = {self.printer(let.value)}", self.src(let.line))
            updates = list(n.updates)
            if len(updates) == 1:
                u = updates[0]
                o.line(f"{self.locals[u.var]} = {self.printer(u.value)}", self.src(u.line))
            elif updates:
                o.line(f"{', '.join(self.locals[u.var] for u in updates)} = (")
                with o.indent():
                    for u in updates:
                        o.line(f"{self.printer(u.value)},", self.src(u.line))
                o.line(")")
            self.emit_spike_and_reset(updates)
        o.blank()

    def emit_spike_and_reset(self, updates: list[ir.Update]) -> None:
        n, o = self.n, self.out
        held = [u.var for u in n.reset.updates] if n.reset else []
        if self.refrac_field:
            o.line("active = refractory_left <= 0")
            old = {s.var for s in updates}
            for var in held:
                if var in old:
                    # the state tuple still holds the value before this step
                    before = f"state.{dict(self.state_fields)[var]}"
                    o.line(f"{self.locals[var]} = torch.where(active, {self.locals[var]}, {before})")
        result = []
        if n.spike is None:
            spike_code = self.locals[n.output] if n.output else "None"
        else:
            spike = n.spike
            extra = sorted({x.id for x in names(spike.grad)} - {spike.grad_var, "pi", "dt", "t"})
            extra_args = "".join(f", {self.printer(ir.Name(id=e))}" for e in extra)
            o.line(f"spike = {self.cls}Spike.apply({self.printer(spike.x)}{extra_args})", self.src(spike.line))
            if self.refrac_field:
                o.line("spike = spike * active")
            spike_code = "spike"
            if n.reset is not None:
                o.line(f"gate = {'spike' if n.reset.with_gradient else 'spike.detach()'}")
                self.emit_reset(n.reset)
        for spec, _code in self.state_fields:
            result.append("spike" if spec == "spiked" else self.locals[spec])
        if self.refrac_field:
            fired = "gate" if n.reset is not None else "spike.detach()"
            o.line(f"refractory_left = torch.where({fired} > 0, float(self.refractory_steps), refractory_left - 1)")
            result.append("refractory_left")
        o.line(f"return {spike_code}, {self.cls}State({', '.join(result)})")

    def emit_reset(self, reset: ir.LReset) -> None:
        o = self.out
        values = []
        for u in reset.updates:
            var = self.locals[u.var]
            v = u.value
            if isinstance(v, ir.BinOp) and v.op in "+-" and isinstance(v.left, ir.Name) and v.left.id == u.var:
                right, prec = self.printer.print(v.right)
                right = right if prec > PRODUCT else f"({right})"
                values.append((var, f"{var} {v.op} gate * {right}", u.line))
            else:
                values.append((var, f"{var} - gate * ({var} - {self.printer(v)})", u.line))
        if len(values) == 1:
            var, text, line = values[0]
            o.line(f"{var} = {text}", self.src(line))
        else:
            o.line(f"{', '.join(v for v, _t, _l in values)} = (")
            with o.indent():
                for _v, text, line in values:
                    o.line(f"{text},", self.src(line))
            o.line(")")

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
