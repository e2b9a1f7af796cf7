"""PyTorch neurons: per neuron a `NamedTuple` of its state and of its params, an
`autograd.Function` for the spike (exact 0/1 forward, the derived surrogate gradient backward)
and an `nn.Module` with `init_state`, `params`, `step` (one step, given params), `forward` (one
step) and `run` (all T steps, fused where `fused.py` prints kernels).
"""

from __future__ import annotations

from ... import ir
from ...names import ModuleNames
from ..neuron import NeuronSkeleton, SpikeFunction
from ..writer import STATIC, CodeWriter
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
    dt_text = "self.dt"
    decorators = ()

    def __init__(self, n: ir.LNeuron, out: CodeWriter, module_names: ModuleNames):
        super().__init__(n, out)
        self.spike_fn = f"{self.cls}Spike.apply"
        self.fused = None if n.kernel is None else FusedEmitter(n, self.cls, self.fields, module_names)

    def refractory_count(self) -> str:
        fired = "gate" if self.n.reset is not None else "spike.detach()"
        return f"torch.where({fired} > 0, float(self.refractory_steps), refractory_left - 1)"

    # -- the pieces
    def emit_spike_function(self, spike: SpikeFunction) -> None:
        o = self.out
        doc = spike.doc(f"The spike: `heaviside(x {spike.cmp} 0)` forward; surrogate `{spike.surrogate}` backward")
        with o.block(f"class {self.cls}Spike(torch.autograd.Function)", doc, after=2):
            with o.block(f"def forward(ctx, {spike.args})", decorators=STATIC, after=1):
                o.line(f"ctx.save_for_backward({spike.args},)" if spike.extra else "ctx.save_for_backward(x)")
                o.line(f"return (x {spike.cmp} 0).to(x.dtype)")
            with o.block("def backward(ctx, grad_output)", decorators=STATIC):
                o.line(f"{spike.targets} = ctx.saved_tensors")
                o.line(f"return grad_output * ({spike.grad}){', None' * spike.extra}", spike.source)

    def emit_class(self) -> None:
        """The module, after the fused kernels its `run` calls."""
        if self.fused is not None:
            self.fused.emit(self.out)
        usage = f"Construct with `{self.cls}(shape, dt=None, **params)`; default dt {self.default_dt_doc()}."
        with self.out.block(f"class {self.cls}(nn.Module)", self.class_doc(", one step per call.", usage), after=2):
            self.out.blank()
            self.emit_init()
            self.emit_params()
            self.emit_init_state()
            self.emit_step()
            self.emit_forward()
            if self.fused is not None:
                self.emit_kernels_for()
            self.emit_run()

    def emit_init(self) -> None:
        n, o = self.n, self.out
        with self.method(f"__init__(self, shape, *, dt=None{self.param_kwargs()})"):
            o.line("super().__init__()")
            o.line("self.shape = (shape,) if isinstance(shape, int) else tuple(shape)")
            o.line(f"self.dt = {self.default_dt} if dt is None else float(dt)")
            o.line("dt = self.dt")
            printer = self.param_printer()
            for p in n.params:
                code = self.param_codes[p.name]
                if p.name in n.live_params:
                    o.line(f'self.register_buffer("{code}", None if {code} is None else _tensor({code}))',
                           self.src(p.line))
                    continue
                o.line(f"{code} = _tensor({printer(p.default)} if {code} is None else {code})", self.src(p.line))
                if p.learnable:
                    shape = ".expand(self.shape).clone()" if p.per_neuron else ""
                    o.line(f"self.{code} = nn.Parameter({code}{shape})")
                else:
                    o.line(f'self.register_buffer("{code}", {code})')
            if not n.params:
                o.line('self.register_buffer("reference", torch.zeros(()), persistent=False)')
            if self.fused is not None:
                o.line("self.kernels = None  # run()'s kernels: None for the module's KERNELS, or one of its values")
            if self.refrac_field:
                assert n.refractory is not None
                o.line(f"self.refractory_steps = round(float({printer(n.refractory)}) / dt)")

    def emit_params(self) -> None:
        n, o = self.n, self.out
        with self.method(f"params(self) -> {self.cls}Params",
                         "The params as used in a step: ranges applied, derived params recomputed."):
            printer = self.param_printer("self.dt")
            for p in n.params:
                code = self.param_codes[p.name]
                value = f"self.{code}"
                if p.name in n.live_params:  # None unless given: computed from the learnable params it depends on
                    value = f"self.{code} if self.{code} is not None else {printer(p.default)}"
                if p.low is not None and p.high is not None:
                    bounds = printer.is_array(p.low) or printer.is_array(p.high)
                    value = clamp(f"({value})" if p.name in n.live_params else value, printer(p.low),
                                  printer(p.high), bounds)
                o.line(f"{code} = {value}", self.src(p.line) if value != f"self.{code}" else None)
            o.line(f"return {self.cls}Params({', '.join(self.param_codes.values())})")

    def emit_init_state(self) -> None:
        o = self.out
        with self.method(f"init_state(self, batch: int) -> {self.cls}State",
                         "The state at the start of a run, for `batch` samples."):
            ref = f"self.{next(iter(self.param_codes.values()))}" if self.param_codes else "self.reference"
            if self.state_reads_params():
                o.line("p = self.params()")
            o.line(f"zeros = torch.zeros((batch, *self.shape), dtype={ref}.dtype, device={ref}.device)")
            o.line(f"return {self.initial_state()}")

    def emit_step(self) -> None:
        with self.method(f"step(self, p: {self.cls}Params, {self.args}, state: {self.cls}State, t: float = 0.0)"
                         f" -> tuple[torch.Tensor, {self.cls}State]", self.step_doc() + "."):
            if self.n.reads_t:
                self.out.line(f"t = torch.as_tensor(t, dtype={self.first}.dtype, device={self.first}.device)")
            self.emit_step_body()

    def emit_forward(self) -> None:
        doc = "One step; `state=None` starts from `init_state`."
        with self.method(f"forward(self, {self.args}, state: {self.cls}State | None = None)"
                         f" -> tuple[torch.Tensor, {self.cls}State]", doc):
            self.emit_default_state(f"self.init_state({self.first}.shape[0])")
            self.out.line(f"return self.step(self.params(), {self.args}, state)")

    def emit_kernels_for(self) -> None:
        assert self.fused is not None
        triton = "" if self.fused.triton is not None else ", triton_kernels=False"
        with self.method("kernels_for(self, x: torch.Tensor) -> str",
                         'The kernels `run` uses on tensors like `x`: "numba", "triton" or "plain".'):
            self.out.line(f"return _kernels(x, self.kernels{triton})")

    def emit_run(self) -> None:
        o, first = self.out, self.first
        with self.method(f"run(self, {self.args}, state: {self.cls}State | None = None, record: bool = False)",
                         "All steps of inputs shaped [T, batch, *shape]. Returns the outputs stacked over time,\n"
                         "the final state and, with `record`, every state stacked over time."):
            o.line("p = self.params()")
            self.emit_default_state(f"self.init_state({first}.shape[1])")
            if self.fused is not None:
                o.line(f"kernels = self.kernels_for({first})")
                with o.block('if kernels != "plain"'):
                    steps = "self.refractory_steps" if self.refrac_field else "0"
                    o.line(f"out, *rest = {self.cls}Run.apply(kernels, self.dt, {steps}, record, {self.args}, "
                           "*state, *p)")
                    o.line(f"final = {self.cls}State(*rest[:{len(self.fields)}])")
                    o.line(f"return out, final, {self.cls}State(*rest[{len(self.fields)}:]) if record else None")
            o.line("outputs, states = [], []")
            with o.block(f"for i in range({first}.shape[0])"):
                step_args = ", ".join(f"{code}[i]" for _spec, code in self.inputs)
                t_arg = ", i * self.dt" if self.n.reads_t else ""
                o.line(f"out, state = self.step(p, {step_args}, state{t_arg})")
                o.line("outputs.append(out)")
                with o.block("if record"):
                    o.line("states.append(state)")
            o.line(f"stacked = {self.cls}State(*(torch.stack(s) for s in zip(*states))) if record else None")
            o.line("return torch.stack(outputs), state, stacked")
