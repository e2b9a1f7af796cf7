"""Fused neuron recurrences: all T steps of a layer as one autograd node.

Prints a neuron's kernel IR (`ir.LKernel`, built in `lower/kernel.py`, which decides what each
kernel computes and saves) twice: as two scalar kernels that numba compiles on first use (CPU
tensors), and as two Triton kernels (`triton.py`, CUDA tensors); then the `autograd.Function`
that runs either pair. Where neither can run, the neuron runs its plain step loop under
autograd, which gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ... import ir
from ...expr import names as expr_names
from ...names import ModuleNames, Namer, short
from ..printer import Printer
from ..writer import STATIC, CodeWriter, unpacked
from .triton import NoTritonKernel, TritonKernels, walk

_FIXED = {"T", "M", "N", "b", "t", "m", "n", "dt", "steps", "math", "numba", "counter", "out", "saved", "rec",
          "active", "g_out", "g_rec", *TritonKernels.fixed}
_SCALARS = {"N", "dt", "steps"}  # the kernel arguments that are numbers, not arrays
_INDEX = {"t": "t", "t-1": "t - 1", "m": "m", "n": "n"}
# the locals of the autograd Function's methods, which no spec name may take
_FUNCTION_LOCALS = {"ctx", "kernels", "dt", "steps", "record", "T", "M", "N", "shape", "dtype", "work", "inputs",
                    "start", "params",
                    "out", "saved", "rec", "active", "initial", "final", "records", "g_out", "grads", "g_final",
                    "g_recs", "g_rec", "zeros", "g_inputs", "g_params", "param_shapes", "torch", "x", "s", "p", "g",
                    "k", "_compiled", "_sum_to"}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name)).lstrip("_")


def _arrays(prefix: str, ids: Iterable[str], tensors: Iterable[str]) -> dict[str, str]:
    """Kernel arguments `prefix + id` as `tensors`, one each, in the order of `ids`."""
    return {f"{prefix}{name}": tensor for name, tensor in zip(ids, tensors)}


def _views(prefix: str, ids: Sequence[str], local: str) -> dict[str, str]:
    """Kernel arguments `prefix + id` as the items of the list `local`, in the order of `ids`."""
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
        self.triton_names = (module_names.internal(f"_{snake}_forward_triton"),
                             module_names.internal(f"_{snake}_backward_triton"))
        names = Namer(_FIXED)
        self.v = {}
        for local, base in self.k.locals:  # `spike` and `gate` are fine in a kernel (not at class level)
            self.v[local] = base if base in ("spike", "gate") and base not in names.taken else names.fresh(short(base))
            names.taken.add(self.v[local])
        self.v["dt"] = "dt"
        self.arr = {a: names.fresh(short(base)) for a, base in self.k.arrays}
        self.arr.update({a: a for a in _FIXED})
        self.scalar = Printer({}, self.v, arrays=set())
        registers = {a: names.fresh(f"{self.arr[a]}_r") for a, _base in self.k.arrays}
        registers["counter"] = names.fresh("counter_r")
        depth = {"saved": len(self.k.saved), "rec": len(fields), "g_rec": len(fields)}
        self.triton: TritonKernels | None = TritonKernels(self.k, n.file, self.v, self.arr, registers, depth)

    def emit(self, o: CodeWriter) -> None:
        """The forward kernel, the backward kernel and the autograd Function that calls them."""
        self.emit_kernel(o, self.forward_name, self.k.forward, (
            f"`{self.cls}` over all steps: batch rows in parallel, a row's neurons innermost (numba).\n\n"
            "Inputs are [T, M]; states [M] (updated in place); params [N] for M = batch * N.\n"
            "Writes the output of each step to `out`, the updated pre-reset states the backward\n"
            "reads to `saved`, with `rec` of nonzero length every state after the step, and the\n"
            "refractory mask to `active`; `inv` [k, N] is scratch for the per-neuron invariants."))
        self.emit_kernel(o, self.backward_name, self.k.backward, (
            f"The gradient of `{self.cls}` over all steps, in reverse (compiled by numba).\n\n"
            "`st_*` hold the states before the first step; `lam_*` come in as the gradient of\n"
            "the final states and leave as that of the initial ones. Gradients of the inputs\n"
            "go to `g_<input>` [T, M], of the params to `g_<param>` [M] (summed later)."))
        self.emit_triton(o)
        self.emit_function(o)

    def emit_triton(self, o: CodeWriter) -> None:
        """The Triton pair, or none (the layer then runs its plain step loop on CUDA) where a statement
        has no Triton form."""
        assert self.triton is not None
        kernels = o.child()
        try:
            self.triton.emit(kernels, self.triton_names[0], self.k.forward, (
                f"`{self.cls}` over all steps, a block of elements per program (Triton); as `{self.forward_name}`."))
            self.triton.emit(kernels, self.triton_names[1], self.k.backward, (
                f"The gradient of `{self.cls}` over all steps (Triton); as `{self.backward_name}`."))
        except NoTritonKernel:
            self.triton = None
            return
        o.lines.extend(kernels.lines)

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
        """Batch rows in parallel; in each, the steps in order and in a step the row's neurons, innermost
        and contiguous (so that numba vectorises them). The invariants (params, their subexpressions)
        are computed once per neuron into `inv` [len, N], a scratch array the caller passes."""
        kept = self.invariants(p)
        args = [self.arr[a] for a in p.args] + (["inv"] if kept else [])
        with o.block(f"def {name}({', '.join(args)})", doc, after=2):
            o.line(f"T, M = {'g_out' if p.reverse else 'out'}.shape")
            if kept:
                with o.block("for n in range(N)"):
                    for s in p.invariants:
                        self.statement(o, s)
                    for j, local in enumerate(kept):
                        o.line(f"inv[{j}, n] = {self.v[local]}")
            steps = "for t in range(T - 1, -1, -1)" if p.reverse else "for t in range(T)"
            with o.block("for b in numba.prange(M // N)"), o.block(steps), o.block("for n in range(N)"):
                o.line("m = b * N + n")
                for j, local in enumerate(kept):
                    o.line(f"{self.v[local]} = inv[{j}, n]")
                self.statements(o, p.step)

    @staticmethod
    def invariants(p: ir.KPass) -> list[str]:
        """The locals the invariants define that the step reads, in order."""
        read: set[str] = set()
        for s in walk(p.step):
            for _field, value in s:
                if isinstance(value, str):
                    read.add(value)
                elif isinstance(value, ir.Num | ir.Name | ir.Call | ir.BinOp | ir.Neg):
                    read.update(x.id for x in expr_names(value))
        return [s.target for s in p.invariants if isinstance(s, ir.KAssign | ir.KLoad) and s.target in read]

    # ---- the autograd Function ------------------------------------------------------------------
    def emit_function(self, o: CodeWriter) -> None:
        k, cls = self.k, self.cls
        names = Namer(_FUNCTION_LOCALS)
        ins = [names(i) for i in k.inputs]
        sts = [names(code) for _spec, code in self.fields]
        pas = {p: names(p) for p in k.params}
        read = {a for p in (k.forward, k.backward) for a in p.args}
        used = [p for p in k.params if f"pa:{p}" in read]
        pair = f"`{self.forward_name}` and `{self.backward_name}`"
        if self.triton is not None:
            pair = f"{pair}, or Triton's `{self.triton_names[0]}` and `{self.triton_names[1]}`"
        doc = (f"All steps of `{cls}` as one autograd node: `kernels` \"numba\" runs kernels {pair}.\n"
               "The kernels compute in `work`, the dtype `_work_dtype` gives, and return the data's dtype.")
        with o.block(f"class {cls}Run(torch.autograd.Function)", doc, after=2):
            with o.block(f"def forward(ctx, kernels, dt, steps, record, {', '.join([*ins, *sts, *pas.values()])})",
                         decorators=STATIC, after=1):
                o.line(f"T, shape, dtype = {ins[0]}.shape[0], {ins[0]}.shape[1:], {ins[0]}.dtype")
                o.line("work = _work_dtype(kernels, dtype)")
                o.line(f"inputs = [x.detach().reshape(T, -1).to(work).contiguous() for x in ({unpacked(ins)})]")
                o.line(f"start = [s.detach().reshape(-1).to(work, copy=True) for s in ({unpacked(sts)})]")
                if used:
                    o.line(f"params = ({unpacked([pas[p] for p in used])})")
                    o.line("params = [p.detach().to(work).expand(shape[1:]).reshape(-1).contiguous() for p in params]")
                o.line("M = inputs[0].shape[1]")
                o.line("out = torch.empty_like(inputs[0])")
                if k.saved:
                    o.line(f"saved = out.new_empty((T, {len(k.saved)}, M))")
                o.line(f"rec = out.new_empty((T if record else 0, {len(self.fields)}, M))")
                if k.refractory:
                    o.line("active = out.new_empty((T, M), dtype=torch.uint8)")
                if k.saved_start:
                    clones = ", ".join(f"start[{self.spec_fields.index(f)}].clone()" for f in k.saved_start)
                    o.line(f"initial = [{clones}]")
                self.call(o, 0, k.forward, "record", {
                    "counter": f"start[{len(self.spec_fields) - 1}]",
                    **_views("pa:", used, "params"), **_views("in:", k.inputs, "inputs"),
                    **_views("st:", self.spec_fields, "start")})
                kept = (["*inputs"] if k.saves_inputs else []) + (["*initial"] if k.saved_start else [])
                kept += ["*params"] if used and list(k.saved_params) == used else [f"params[{used.index(p)}]"
                                                                         for p in k.saved_params]
                kept += (["saved"] if k.saved else []) + (["active"] if k.refractory else [])
                o.line(f"ctx.save_for_backward({', '.join(kept)})")
                shapes = ", ".join(f"{pas[p]}.shape" for p in k.grad_params)
                o.line(f"ctx.meta = (kernels, dt, T, shape, work{', (' + shapes + ',)' if shapes else ''})")
                o.line("final = [s.reshape(shape).to(dtype) for s in start]")
                o.line("records = [rec[:, k].reshape(T, *shape).to(dtype) for k in range(rec.shape[1])] "
                       "if record else []")
                o.line("return (out.reshape(T, *shape).to(dtype), *final, *records)")
            self.emit_function_backward(o, names, pas)

    def emit_function_backward(self, o: CodeWriter, names: Namer, pas: dict[str, str]) -> None:
        k = self.k
        n_fields = len(self.fields)
        adjoints = len(k.states) + (1 if k.reads_spiked else 0)
        ins = [names.fresh(f"{i}_all") for i in k.inputs] if k.saves_inputs else []
        initial = [names.fresh(f"{f}_start") for f in k.saved_start]
        params = [names.fresh(f"{p}_value") for p in k.saved_params]
        with o.block("def backward(ctx, g_out, *grads)", decorators=STATIC):
            o.line(f"kernels, dt, T, shape, work{', param_shapes' if k.grad_params else ''} = ctx.meta")
            kept = [*ins, *initial, *params] + (["saved"] if k.saved else []) + (["active"] if k.refractory else [])
            if kept:
                o.line(f"({unpacked(kept)}) = ctx.saved_tensors")
            o.line("M = shape.numel()")
            o.line("g_out = g_out.reshape(T, -1).to(work).contiguous()  # autograd gives zeros for an unused output")
            o.line("g_final = [g.reshape(-1).to(work, copy=True) if g is not None else g_out.new_zeros(M) "
                   f"for g in grads[:{adjoints}]]")
            o.line(f"g_recs = grads[{n_fields}:]")
            with o.block("if any(g is not None for g in g_recs)"):
                o.line("zeros = g_out.new_zeros((T, M))")
                o.line("g_rec = torch.stack([g.reshape(T, -1).to(work) if g is not None else zeros "
                       "for g in g_recs], 1)")
            with o.block("else"):
                o.line(f"g_rec = g_out.new_zeros((0, {n_fields}, M))")
            o.line(f"g_inputs = [torch.empty_like(g_out) for _ in range({len(k.inputs)})]")
            if k.grad_params:
                o.line(f"g_params = [g_out.new_zeros(M) for _ in range({len(k.grad_params)})]")
            self.call(o, 1, k.backward, "g_rec.shape[0] > 0", {
                "g_rec": "g_rec.contiguous()",
                **_arrays("in:", k.inputs, ins), **_arrays("st:", k.saved_start, initial),
                **_arrays("pa:", k.saved_params, params), **_views("lam:", self.spec_fields[:adjoints], "g_final"),
                **_views("g:", k.inputs, "g_inputs"), **_views("g:", k.grad_params, "g_params")})
            returned = ["None", "None", "None", "None", "*(g.reshape(T, *shape) for g in g_inputs)",
                        f"*(g.reshape(shape) for g in g_final[:{adjoints}])"] + ["None"] * (n_fields - adjoints)
            index = {p: j for j, p in enumerate(k.grad_params)}
            returned += [f"_sum_to(g_params[{index[p]}].reshape(shape), param_shapes[{index[p]}])" if p in index
                         else "None" for p in k.params]
            o.line(f"return ({', '.join(returned)})")

    def call(self, o: CodeWriter, which: int, p: ir.KPass, recording: str, code: dict[str, str]) -> None:
        """The call of the forward (`which` 0) or backward kernel: numba's on numpy views of the
        tensors `code` gives for each argument, or Triton's on the tensors themselves."""
        code = {**{a: a for a in _FIXED}, "N": "shape[1:].numel()", "dt": "float(dt)", "steps": "float(steps)",
                **code}
        numba_args = [code[a] if a in _SCALARS else f"{code[a]}.numpy()" for a in p.args]
        if kept := len(self.invariants(p)):
            numba_args.append(f"torch.empty(({kept}, shape[1:].numel()), dtype=work).numpy()")
        numba_call = f"_compiled({(self.forward_name, self.backward_name)[which]})({', '.join(numba_args)})"
        if self.triton is None:
            o.line(numba_call)
            return
        with o.block('if kernels == "triton"'):
            o.line(f"_launch({self.triton_names[which]}, {', '.join(code[a] for a in p.args)}, T, M, "
                   f"recording={recording})")
        with o.block("else"):
            o.line(numba_call)
