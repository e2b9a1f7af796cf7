"""Triton kernels for CUDA tensors, printed from the same kernel IR (`ir.LKernel`) as the numba ones.

Each program runs a block of `BLOCK` elements through all T steps: the states and adjoints a pass
updates stay in registers across the time loop (loaded before it, stored after), params load once
per element, inputs and outputs stream through memory. Everything computes in `COMPUTE`
(float32, or float64 for float64 data) and is stored in the tensor's own dtype, so float16 and
bfloat16 modules keep float32 arithmetic. Without CUDA the kernels run under Triton's interpreter
(`TRITON_INTERPRET=1`, on CPU tensors), which is how the tests check them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ... import ir
from ...expr import names, number_value
from ..printer import ATOM, Emit, Printer
from ..writer import CodeWriter

_VEC = "tl.zeros([BLOCK], COMPUTE)"  # a block of zeros in the compute dtype, to broadcast a scalar into


class NoTritonKernel(Exception):
    """A neuron the Triton printer cannot express (it then runs the plain step loop on CUDA)."""


def _call(fn: str) -> Emit:
    return lambda a, _flags: f"{fn}({', '.join(a)})"


def _unsupported(fn: str) -> Emit:
    def emit(_a: list[str], _flags: list[bool]) -> str:
        raise NoTritonKernel(f"'{fn}' has no Triton builtin that also runs in the interpreter")

    return emit


# only `tl` builtins: the interpreter that tests the kernels on CPU has no libdevice
TRITON_FUNCTIONS: dict[str, Emit] = {
    **{fn: _call(f"tl.{fn}") for fn in ("exp", "log", "sqrt", "abs", "sigmoid", "erf", "sin", "cos")},
    "tanh": lambda a, _f: f"(2.0 * tl.sigmoid(2.0 * {a[0]}) - 1.0)",
    "sign": lambda a, _f: f"tl.where({a[0]} > 0, 1.0, tl.where({a[0]} < 0, -1.0, 0.0))",
    "heaviside": lambda a, _f: f"tl.where({a[0]} > 0, 1.0, 0.0)",
    "min": _call("tl.minimum"), "max": _call("tl.maximum"),
    "clip": lambda a, _f: f"tl.minimum(tl.maximum({a[0]}, {a[1]}), {a[2]})",
    "detach": lambda a, _f: a[0],
    "atan": _unsupported("atan"),
}


class TritonPrinter(Printer):
    """Every name is a Triton value (so no `math.*` call), `pi` a literal, and powers products or
    `exp(y * log(x))`: Triton has no `**`."""

    def print(self, expr: ir.Expr) -> tuple[str, int]:
        if isinstance(expr, ir.Name) and expr.id == "pi":
            return "3.141592653589793", ATOM
        return super().print(expr)

    def _binop(self, expr: ir.BinOp) -> tuple[str, int]:
        if expr.op != "**":
            return super()._binop(expr)
        base = self(expr.left)
        exponent = number_value(expr.right)
        if exponent is None:
            raise NoTritonKernel("a power with a varying exponent")
        if exponent == int(exponent) and 1 <= abs(exponent) <= 4:
            product = " * ".join([f"({base})"] * int(abs(exponent)))
            return (f"({product})" if exponent > 0 else f"(1.0 / ({product}))"), ATOM
        if exponent == 0.5:
            return f"tl.sqrt({base})", ATOM
        return f"tl.exp({exponent!r} * tl.log({base}))", ATOM


def _registers(p: ir.KPass) -> list[str]:
    """The per-element arrays (index `m`) a pass writes: they live in registers across the time loop."""
    out: list[str] = []
    for s in walk((*p.invariants, *p.step)):
        dst = s.dst if isinstance(s, ir.KStore | ir.KCountdown) else None
        if dst is not None and dst.index == ("m",) and dst.array not in out:
            out.append(dst.array)
    return out


def walk(block: tuple[ir.KStatement, ...]) -> Iterator[ir.KStatement]:
    """The statements of `block`, those inside an `if` included."""
    for s in block:
        yield s
        if isinstance(s, ir.KIf):
            yield from walk((*s.body, *s.orelse))


class TritonKernels:
    """Prints a neuron's forward and backward Triton kernels, with the local and array names the
    numba kernels use (`v`, `arr`); `depth` gives the middle size of the [T, k, M] arrays."""

    fixed = {"tl", "m", "n", "t", "T", "M", "N", "valid", "BLOCK", "COMPUTE", "RECORDING"}

    def __init__(self, k: ir.LKernel, file: str, v: Mapping[str, str], arr: Mapping[str, str],
                 registers: Mapping[str, str], depth: Mapping[str, int]):
        self.k, self.file, self.v, self.arr, self.depth = k, file, v, arr, depth
        self.registers = registers  # array id -> the name of its register copy
        self.printer = TritonPrinter(TRITON_FUNCTIONS, v, arrays=set(v))
        self.reg: dict[str, str] = {}
        self.blocks: set[str] = set()  # the locals that are blocks of values (the rest are scalars)

    def emit(self, o: CodeWriter, name: str, p: ir.KPass, doc: str) -> None:
        """One kernel; raises `NoTritonKernel` (before anything is written) if it cannot be printed."""
        body = o.child()
        body.level += 1
        self.reg = {a: self.registers[a] for a in _registers(p)}
        self.blocks = set()
        body.line("m = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)")
        body.line("valid = m < M")
        if any("n" in e.index for e in self._elems(p)):
            body.line("n = m % N")
        for a, r in self.reg.items():
            body.line(f"{r} = tl.load({self.arr[a]} + m, mask=valid).to(COMPUTE)")
        for s in p.invariants:
            self.statement(body, s)
        with body.block("for t in range(T - 1, -1, -1)" if p.reverse else "for t in range(T)"):
            self.statements(body, p.step)
        for a, r in self.reg.items():
            body.line(f"tl.store({self.arr[a]} + m, {r}, mask=valid)")
        args = [self.arr[a] for a in p.args] + ["T", "M", "BLOCK: tl.constexpr", "COMPUTE: tl.constexpr",
                                                "RECORDING: tl.constexpr"]
        with o.block(f"def {name}({', '.join(args)})", doc, after=2):
            o.lines.extend(body.lines)

    def _elems(self, p: ir.KPass) -> Iterator[ir.KElem]:
        for s in walk((*p.invariants, *p.step)):
            for attr in ("src", "dst"):
                e = getattr(s, attr, None)
                if isinstance(e, ir.KElem):
                    yield e

    # ---- statements ---------------------------------------------------------------------------
    def offset(self, e: ir.KElem) -> str:
        index = ["(t - 1)" if i == "t-1" else str(i) for i in e.index]
        if len(index) == 1:
            return index[0]
        if len(index) == 2:
            return f"{index[0]} * M + m"
        depth = self.depth[e.array]
        return f"{index[0]} * M + m" if depth == 1 else f"({index[0]} * {depth} + {index[1]}) * M + m"

    def load(self, e: ir.KElem) -> str:
        if e.array in self.reg and e.index == ("m",):
            return self.reg[e.array]
        return f"tl.load({self.arr[e.array]} + {self.offset(e)}, mask=valid)"

    def store(self, o: CodeWriter, e: ir.KElem, value: str, add: bool = False, block: bool = True,
              source: tuple[str, int | None] | None = None) -> None:
        """`e = value` (`+=` if `add`); `block`: the value is a block, not a scalar."""
        if e.array in self.reg and e.index == ("m",):
            r = self.reg[e.array]
            o.line(f"{r} = {r} + {value}" if add else f"{r} = {value}" if block else f"{r} = {value} + {_VEC}", source)
            return
        if add:
            value = f"{self.load(e)} + {value}"
        o.line(f"tl.store({self.arr[e.array]} + {self.offset(e)}, {value}, mask=valid)", source)

    def value(self, x: str | float) -> str:
        return self.v[x] if isinstance(x, str) else repr(float(x))

    def statements(self, o: CodeWriter, block: tuple[ir.KStatement, ...]) -> None:
        """The statements of `block`; the accumulations of a record's gradient in a row share one `if`."""
        if not block:
            o.line("pass")
        grouped: list[ir.KStore] = []
        for s in (*block, None):
            if isinstance(s, ir.KStore) and s.optional and s.add and s.src is not None:
                grouped.append(s)
                continue
            if grouped:
                with o.block("if RECORDING"):  # the records' gradients exist
                    for g in grouped:
                        assert g.src is not None
                        self.store(o, g.dst, self.load(g.src), add=True)
                grouped = []
            if s is not None:
                self.statement(o, s)

    def is_block(self, expr: ir.Expr) -> bool:
        return any(x.id in self.blocks for x in names(expr))

    def statement(self, o: CodeWriter, s: ir.KStatement) -> None:
        v = self.v
        target = getattr(s, "target", None)
        if target is not None:
            self.blocks.add(target)
        if isinstance(s, ir.KAssign):
            # every local is a block of COMPUTE: a Python number held in a local would be a float32
            # constant, and an `if` needs the same type in both branches
            value = self.printer(s.value)
            if not self.is_block(s.value):
                constant = all(x.id == "pi" for x in names(s.value))
                value = f"tl.full([BLOCK], {value}, COMPUTE)" if constant else f"{value} + {_VEC}"
            o.line(f"{v[s.target]} = {value}", (self.file, s.line))
        elif isinstance(s, ir.KLoad):
            o.line(f"{v[s.target]} = {self.load(s.src)}{'' if s.src.array in self.reg else '.to(COMPUTE)'}")
        elif isinstance(s, ir.KStore):
            self.emit_store(o, s)
        elif isinstance(s, ir.KTest):
            o.line(f"{v[s.target]} = {self.load(s.src)} {s.op} {s.value if s.op == '<=' else int(s.value)}")
        elif isinstance(s, ir.KSpike):
            cond = f"({v[s.x]} {'>=' if s.inclusive else '>'} 0.0)"
            cond = cond if s.mask is None else f"{cond} & {v[s.mask]}"
            o.line(f"{v[s.target]} = tl.where({cond}, 1.0, 0.0).to(COMPUTE)")
        elif isinstance(s, ir.KFinite):  # x - x is 0 exactly where x is finite
            o.line(f"{v[s.target]} = ({v[s.value]} - {v[s.value]} == 0.0) | ({v[s.gate]} != 0.0)")
        elif isinstance(s, ir.KSelect):
            o.line(f"{v[s.target]} = tl.where({v[s.mask]}, {self.value(s.then)}, {self.value(s.other)}).to(COMPUTE)")
        elif isinstance(s, ir.KFlag):
            self.store(o, s.dst, f"tl.where({v[s.mask]}, 1, 0)")
        elif isinstance(s, ir.KCountdown):
            self.store(o, s.dst, f"tl.where({v[s.gate]} > 0.0, steps, {self.load(s.dst)} - 1.0)")
        elif isinstance(s, ir.KTime):
            o.line(f"{v[s.target]} = ({_VEC} + t) * dt")
        else:
            with o.block("if t == 0" if s.cond == "first_step" else "if RECORDING"):
                self.statements(o, s.body)
            if s.orelse:
                with o.block("else"):
                    self.statements(o, s.orelse)

    def emit_store(self, o: CodeWriter, s: ir.KStore) -> None:
        if s.value is not None:
            value, block = self.printer(s.value), self.is_block(s.value)
        else:
            value, block = (self.load(s.src), True) if s.src else ("0.0", False)
        if not (s.optional and s.src is not None):
            self.store(o, s.dst, value, s.add, block, (self.file, s.line))
            return
        with o.block("if RECORDING"):  # the record's gradient exists
            self.store(o, s.dst, value, s.add)
        if not s.add:
            with o.block("else"):
                self.store(o, s.dst, "0.0", block=False)
