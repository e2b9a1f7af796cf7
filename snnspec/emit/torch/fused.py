"""Fused neuron recurrences: all T steps of a layer as one autograd node.

Prints a neuron's kernel IR (`ir.LKernel`, built in `lower/kernel.py`, which decides what each
kernel computes and saves) as two scalar kernels that numba compiles on first use, and the
`autograd.Function` that runs them. Without numba (or off the CPU) the neuron runs its plain
step loop under autograd, which gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ... import ir
from ...names import ModuleNames, Namer, short
from ..printer import Printer
from ..writer import STATIC, CodeWriter, unpacked

_FIXED = {"T", "M", "N", "b", "t", "m", "n", "dt", "steps", "math", "numba", "counter", "out", "saved", "rec",
          "active", "g_out", "g_rec"}
_INDEX = {"t": "t", "t-1": "t - 1", "m": "m", "n": "n"}
# the locals of the autograd Function's methods, which no spec name may take
_FUNCTION_LOCALS = {"ctx", "dt", "steps", "record", "T", "M", "N", "shape", "dtype", "inputs", "start", "params",
                    "out", "saved", "rec", "active", "initial", "final", "records", "g_out", "grads", "g_final",
                    "g_recs", "g_rec", "zeros", "g_inputs", "g_params", "param_shapes", "torch", "x", "s", "p", "g",
                    "k", "_compiled", "_sum_to"}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name)).lstrip("_")


def _arrays(prefix: str, ids: Iterable[str], tensors: Iterable[str]) -> dict[str, str]:
    """Kernel arguments `prefix + id` as numpy views of `tensors`, one each, in the order of `ids`."""
    return {f"{prefix}{name}": f"{tensor}.numpy()" for name, tensor in zip(ids, tensors)}


def _views(prefix: str, ids: Sequence[str], local: str) -> dict[str, str]:
    """Kernel arguments `prefix + id` as numpy views of the items of the list `local`, in the order of `ids`."""
    return _arrays(prefix, ids, (f"{local}[{k}]" for k in range(len(ids))))


class FusedEmitter:
    """Prints the fused kernels and the autograd Function for one neuron's `ir.LKernel`."""

    def __init__(self, n: ir.LNeuron, cls: str, fields: list[tuple[str, str]], module_names: ModuleNames):
        assert n.kernel is not None
        self.k, self.n, self.cls = n.kernel, n, cls
        self.fields = fields  # (spec name, State field): real states, spiked if read, refractory counter
        self.spec_fields = [spec for spec, _code in fields]
        snake = _snake(cls)  # module-level names, unique in the generated file
        self.forward_name = module_names.internal(f"_{snake}_forward")
        self.backward_name = module_names.internal(f"_{snake}_backward")
        names = Namer(_FIXED)
        self.v = {}
        for local, base in self.k.locals:  # `spike` and `gate` are fine in a kernel (not at class level)
            self.v[local] = base if base in ("spike", "gate") and base not in names.taken else names.fresh(short(base))
            names.taken.add(self.v[local])
        self.v["dt"] = "dt"
        self.arr = {a: names.fresh(short(base)) for a, base in self.k.arrays}
        self.arr.update({a: a for a in _FIXED})
        self.scalar = Printer({}, self.v, arrays=set())

    def emit(self, o: CodeWriter) -> None:
        """The forward kernel, the backward kernel and the autograd Function that calls them."""
        self.emit_kernel(o, self.forward_name, self.k.forward, (
            f"`{self.cls}` over all steps, one element at a time (compiled by numba).\n\n"
            "Inputs are [T, M]; states [M] (updated in place); params [N] for M = batch * N.\n"
            "Writes the output of each step to `out`, the updated pre-reset states the backward\n"
            "reads to `saved`, with `rec` of nonzero length every state after the step, and the\n"
            "refractory mask to `active`."))
        self.emit_kernel(o, self.backward_name, self.k.backward, (
            f"The gradient of `{self.cls}` over all steps, in reverse (compiled by numba).\n\n"
            "`st_*` hold the states before the first step; `lam_*` come in as the gradient of\n"
            "the final states and leave as that of the initial ones. Gradients of the inputs\n"
            "go to `g_<input>` [T, M], of the params to `g_<param>` [M] (summed later)."))
        self.emit_function(o)

    # ---- the kernels: a visitor of kernel statements ----------------------------------------------
    def elem(self, e: ir.KElem) -> str:
        return f"{self.arr[e.array]}[{', '.join(_INDEX[i] if isinstance(i, str) else str(i) for i in e.index)}]"

    def value(self, v: str | float) -> str:
        return self.v[v] if isinstance(v, str) else repr(float(v))

    def statements(self, o: CodeWriter, block: tuple[ir.KStatement, ...]) -> None:
        if not block:
            o.line("pass")
        for s in block:
            self.statement(o, s)

    def statement(self, o: CodeWriter, s: ir.KStatement) -> None:
        v = self.v
        if isinstance(s, ir.KAssign):
            o.line(f"{v[s.target]} = {self.scalar(s.value)}", (self.n.file, s.line))
        elif isinstance(s, ir.KLoad):
            o.line(f"{v[s.target]} = {self.elem(s.src)}")
        elif isinstance(s, ir.KStore):
            value = self.scalar(s.value) if s.value is not None else self.elem(s.src) if s.src else "0.0"
            if s.optional and s.src is not None:
                value = f"{value} if {self.arr[s.src.array]}.shape[0] > 0 else 0.0"
            o.line(f"{self.elem(s.dst)} {'+=' if s.add else '='} {value}")
        elif isinstance(s, ir.KTest):
            o.line(f"{v[s.target]} = {self.elem(s.src)} {s.op} {s.value if s.op == '<=' else int(s.value)}")
        elif isinstance(s, ir.KSpike):
            cond = f"{v[s.x]} {'>=' if s.inclusive else '>'} 0.0"
            o.line(f"{v[s.target]} = 1.0 if {cond if s.mask is None else f'({cond} and {v[s.mask]})'} else 0.0")
        elif isinstance(s, ir.KFinite):
            o.line(f"{v[s.target]} = math.isfinite({v[s.value]}) or {v[s.gate]} != 0.0")
        elif isinstance(s, ir.KSelect):
            o.line(f"{v[s.target]} = {self.value(s.then)} if {v[s.mask]} else {self.value(s.other)}")
        elif isinstance(s, ir.KFlag):
            o.line(f"{self.elem(s.dst)} = 1 if {v[s.mask]} else 0")
        elif isinstance(s, ir.KCountdown):
            o.line(f"{self.elem(s.dst)} = steps if {v[s.gate]} > 0.0 else {self.elem(s.dst)} - 1.0")
        elif isinstance(s, ir.KTime):
            o.line(f"{v[s.target]} = t * dt")
        else:
            with o.block("if t == 0" if s.cond == "first_step" else "if rec.shape[0] > 0"):
                self.statements(o, s.body)
            if s.orelse:
                with o.block("else"):
                    self.statements(o, s.orelse)

    def emit_kernel(self, o: CodeWriter, name: str, p: ir.KPass, doc: str) -> None:
        with o.block(f"def {name}({', '.join(self.arr[a] for a in p.args)})", doc, after=2):
            o.line(f"T, M = {'g_out' if p.reverse else 'out'}.shape")
            o.line("for b in numba.prange(M // N):  # batch rows in parallel; each element runs its own steps")
            with o.indent(), o.block("for n in range(N)"):
                o.line("m = b * N + n")
                for s in p.invariants:
                    self.statement(o, s)
                with o.block("for t in range(T - 1, -1, -1)" if p.reverse else "for t in range(T)"):
                    self.statements(o, p.step)

    # ---- the autograd Function ------------------------------------------------------------------
    def emit_function(self, o: CodeWriter) -> None:
        k, cls = self.k, self.cls
        names = Namer(_FUNCTION_LOCALS)
        ins = [names(i) for i in k.inputs]
        sts = [names(code) for _spec, code in self.fields]
        pas = {p: names(p) for p in k.params}
        read = {a for p in (k.forward, k.backward) for a in p.args}
        used = [p for p in k.params if f"pa:{p}" in read]
        doc = (f"All steps of `{cls}` as one autograd node (numba kernels `{self.forward_name}` and\n"
               f"`{self.backward_name}`).")
        with o.block(f"class {cls}Run(torch.autograd.Function)", doc, after=2):
            with o.block(f"def forward(ctx, dt, steps, record, {', '.join([*ins, *sts, *pas.values()])})",
                         decorators=STATIC, after=1):
                o.line(f"T, shape = {ins[0]}.shape[0], {ins[0]}.shape[1:]")
                o.line(f"inputs = [x.detach().reshape(T, -1).contiguous() for x in ({unpacked(ins)})]")
                o.line(f"start = [s.detach().reshape(-1).clone() for s in ({unpacked(sts)})]")
                if used:
                    o.line(f"params = ({unpacked([pas[p] for p in used])})")
                    o.line("params = [p.detach().expand(shape[1:]).reshape(-1).contiguous() for p in params]")
                o.line("M = inputs[0].shape[1]")
                o.line("out = torch.empty_like(inputs[0])")
                if k.saved:
                    o.line(f"saved = torch.empty((T, {len(k.saved)}, M), dtype=out.dtype)")
                o.line(f"rec = torch.empty((T if record else 0, {len(self.fields)}, M), dtype=out.dtype)")
                if k.refractory:
                    o.line("active = torch.empty((T, M), dtype=torch.uint8)")
                if k.saved_start:
                    clones = ", ".join(f"start[{self.spec_fields.index(f)}].clone()" for f in k.saved_start)
                    o.line(f"initial = [{clones}]")
                self.call(o, self.forward_name, k.forward, {
                    "steps": "float(steps)", "counter": f"start[{len(self.spec_fields) - 1}].numpy()",
                    **_views("pa:", used, "params"), **_views("in:", k.inputs, "inputs"),
                    **_views("st:", self.spec_fields, "start")})
                kept = (["*inputs"] if k.saves_inputs else []) + (["*initial"] if k.saved_start else [])
                kept += ["*params"] if used and list(k.saved_params) == used else [f"params[{used.index(p)}]"
                                                                         for p in k.saved_params]
                kept += (["saved"] if k.saved else []) + (["active"] if k.refractory else [])
                o.line(f"ctx.save_for_backward({', '.join(kept)})")
                shapes = ", ".join(f"{pas[p]}.shape" for p in k.grad_params)
                o.line(f"ctx.meta = (dt, T, shape, out.dtype{', (' + shapes + ',)' if shapes else ''})")
                o.line("final = [s.reshape(shape) for s in start]")
                o.line("records = [rec[:, k].reshape(T, *shape) for k in range(rec.shape[1])] if record else []")
                o.line("return (out.reshape(T, *shape), *final, *records)")
            self.emit_function_backward(o, names, pas)

    def emit_function_backward(self, o: CodeWriter, names: Namer, pas: dict[str, str]) -> None:
        k = self.k
        n_fields = len(self.fields)
        adjoints = len(k.states) + (1 if k.reads_spiked else 0)
        ins = [names.fresh(f"{i}_all") for i in k.inputs] if k.saves_inputs else []
        initial = [names.fresh(f"{f}_start") for f in k.saved_start]
        params = [names.fresh(f"{p}_value") for p in k.saved_params]
        with o.block("def backward(ctx, g_out, *grads)", decorators=STATIC):
            o.line(f"dt, T, shape, dtype{', param_shapes' if k.grad_params else ''} = ctx.meta")
            kept = [*ins, *initial, *params] + (["saved"] if k.saved else []) + (["active"] if k.refractory else [])
            if kept:
                o.line(f"({unpacked(kept)}) = ctx.saved_tensors")
            o.line("M = shape.numel()")
            o.line("g_final = [g.reshape(-1).clone() if g is not None else torch.zeros(M, dtype=dtype) "
                     f"for g in grads[:{adjoints}]]")
            o.line(f"g_recs = grads[{n_fields}:]")
            with o.block("if any(g is not None for g in g_recs)"):
                o.line("zeros = torch.zeros(T, M, dtype=dtype)")
                o.line("g_rec = torch.stack([g.reshape(T, -1) if g is not None else zeros for g in g_recs], 1)")
            with o.block("else"):
                o.line(f"g_rec = torch.zeros((0, {n_fields}, M), dtype=dtype)")
            o.line("g_out = (g_out if g_out is not None else torch.zeros(T, *shape, dtype=dtype)).reshape(T, -1)")
            o.line(f"g_inputs = [torch.empty((T, M), dtype=dtype) for _ in range({len(k.inputs)})]")
            if k.grad_params:
                o.line(f"g_params = [torch.zeros(M, dtype=dtype) for _ in range({len(k.grad_params)})]")
            self.call(o, self.backward_name, k.backward, {
                "g_out": "g_out.contiguous().numpy()", "g_rec": "g_rec.contiguous().numpy()",
                **_arrays("in:", k.inputs, ins), **_arrays("st:", k.saved_start, initial),
                **_arrays("pa:", k.saved_params, params), **_views("lam:", self.spec_fields[:adjoints], "g_final"),
                **_views("g:", k.inputs, "g_inputs"), **_views("g:", k.grad_params, "g_params")})
            returned = ["None", "None", "None", "*(g.reshape(T, *shape) for g in g_inputs)",
                        f"*(g.reshape(shape) for g in g_final[:{adjoints}])"] + ["None"] * (n_fields - adjoints)
            index = {p: j for j, p in enumerate(k.grad_params)}
            returned += [f"_sum_to(g_params[{index[p]}].reshape(shape), param_shapes[{index[p]}])" if p in index
                         else "None" for p in k.params]
            o.line(f"return ({', '.join(returned)})")

    def call(self, o: CodeWriter, kernel: str, p: ir.KPass, code: dict[str, str]) -> None:
        """The call of a kernel, each argument as `code` gives it (arrays as numpy views)."""
        code = {**{a: f"{a}.numpy()" for a in _FIXED}, "N": "shape[1:].numel()", "dt": "float(dt)", **code}
        o.line(f"_compiled({kernel})({', '.join(code[a] for a in p.args)})")
