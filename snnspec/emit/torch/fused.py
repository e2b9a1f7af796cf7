"""Fused neuron recurrences: all T steps of a layer as one autograd node.

The forward loops over time without an autograd graph and saves only each step's updated
(pre-reset) state values; the backward walks the steps in reverse with the partial derivatives
`lower/adjoint.py` derives, recomputing spikes and resets from the saved values. Both loops are
printed as scalar kernels that numba compiles on first use. Without numba (or off the CPU) the
neuron runs its plain step loop under autograd, which gives the same numbers.
"""

from __future__ import annotations

import re

from ... import ir
from ...lower.adjoint import GATE, LAdjoint, derive, new, reads_old_state, reset_blend, updated_values
from ...names import ModuleNames, Namer
from ..printer import Printer
from ..writer import CodeWriter

_KERNEL_NAMES = {"T", "M", "N", "b", "t", "m", "n", "free", "counter", "dt", "steps", "record", "math", "numba",
                 "torch", "out", "saved",
                 "rec", "active", "now", "gate", "spike", "x", "gx", "gs", "tau_steps",
                 "g_out", "g_rec"}


_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*) = ")


def _fill_empty_blocks(lines: list[str]) -> list[str]:
    """Put `pass` into a block that pruning left empty."""
    out: list[str] = []
    for k, line in enumerate(lines):
        out.append(line)
        if line.rstrip().endswith(":"):
            depth = len(line) - len(line.lstrip())
            following = lines[k + 1] if k + 1 < len(lines) else ""
            if len(following) - len(following.lstrip()) <= depth:
                out.append(" " * (depth + 4) + "pass")
    return out


def _times(weight: str, factor: str) -> str:
    """`weight * (factor)`, without the multiplication when the factor is 1."""
    if factor == "1":
        return weight
    if factor == "-1":
        return f"-{weight}"
    return f"{weight} * ({factor})"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name)).lstrip("_")


class FusedEmitter:
    """Prints the fused kernels and the autograd Function for one neuron."""

    def __init__(self, n: ir.LNeuron, cls: str, state_fields: list[tuple[str, str]], refractory: str | None,
                 inputs: list[tuple[str, str]], params: list[tuple[str, str]], grad_params: set[str]):
        self.n = n
        self.cls = cls
        self.forward_name = self.backward_name = ""
        self.adj: LAdjoint = derive(n, grad_params)
        self.states = [s.var for s in n.states]  # real states (spiked and the refractory counter aside)
        self.fields = state_fields  # the State tuple: real states, spiked if used, refractory counter
        self.refractory = refractory
        self.inputs = [spec for spec, _code in inputs]
        self.params = [spec for spec, _code in params]
        self.grad_params = [p for p in self.params if p in self.adj.params]
        self.uses_spiked = any(spec == "spiked" for spec, _ in state_fields)
        self.reset_vars = [u.var for u in n.reset.updates] if n.reset else []
        self.updated = {u.var for u in n.updates}
        self.uses_t = "t" in self.adj.uses or any(
            x.id == "t" for e in self.step_exprs() for x in _names(e))
        names = Namer(_KERNEL_NAMES)
        self.v = {s: names(s) for s in self.states}
        self.v.update({new(s): names.fresh(f"{s}_new") for s in self.states})
        self.v.update({i: names(i) for i in self.inputs})
        self.v.update({p: names(p) for p in self.params})
        self.v.update({x.var: names(x.var) for x in n.lets})
        self.v["spiked"] = names("spiked")
        self.v[GATE] = "gate"
        self.v["t"] = "now"
        self.v["dt"] = "dt"
        self.lam = {s: names.fresh(f"lam_{s}") for s in [*self.states, "spiked"]}
        self.arr = {s: names.fresh(f"st_{s}") for s in [*self.states, "spiked"]}
        self.arr.update({i: names.fresh(f"in_{i}") for i in self.inputs})
        self.arr.update({p: names.fresh(f"pa_{p}") for p in self.params})
        self.garr = {p: names.fresh(f"g_{p}") for p in [*self.inputs, *self.grad_params]}
        self.gu = {s: names.fresh(f"gu_{s}") for s in self.states}
        self.names = names
        self.scalar = Printer({}, self.v, arrays=set())

    def name_kernels(self, module_names: ModuleNames) -> None:
        """The module-level names of the two kernels, unique in the generated file."""
        snake = _snake(self.cls)
        self.forward_name = module_names.internal(f"_{snake}_forward")
        self.backward_name = module_names.internal(f"_{snake}_backward")

    def step_exprs(self) -> list[ir.Expr]:
        n = self.n
        exprs = [u.value for u in (*n.lets, *n.updates)]
        if n.spike:
            exprs += [n.spike.x, n.spike.grad]
        if n.reset:
            exprs += [u.value for u in n.reset.updates]
        return exprs

    @property
    def eligible(self) -> bool:
        """Whether this neuron's recurrence can be fused (the spike and resets read only updated values)."""
        return not reads_old_state(self.adj)

    @property
    def saves_inputs(self) -> bool:
        uses = set(self.adj.uses)
        if self.n.spike is not None:
            uses |= {x.id for x in _names(self.n.spike.x)} | {x.id for x in _names(self.n.spike.grad)}
        if self.n.reset is not None:
            uses |= {x.id for u in self.n.reset.updates for x in _names(u.value)}
        return bool(uses & set(self.inputs))

    # ---- pieces of a step, printed for scalars --------------------------------------------------
    def load_params(self, o: CodeWriter) -> None:
        for p in self.params:
            o.line(f"{self.v[p]} = {self.arr[p]}[n]")

    def post(self, o: CodeWriter, active: str | None) -> None:
        """From the updated values: x, the spike, the gate; then the post-reset states."""
        n = self.n
        if n.spike is None:
            return
        spike = n.spike
        o.line(f"x = {self.scalar(updated_values(spike.x, tuple(self.states)))}")
        cmp = ">=" if spike.inclusive else ">"
        o.line(f"spike = 1.0 if x {cmp} 0.0 else 0.0" if active is None
               else f"spike = 1.0 if (x {cmp} 0.0 and {active}) else 0.0")
        o.line("gate = spike")

    def reset_values(self) -> list[tuple[str, str]]:
        """(state, its post-reset value) for each state, printed on updated values."""
        out = []
        states = tuple(self.states)
        for s in self.states:
            if s in self.reset_vars and self.n.reset is not None:
                value = next(u.value for u in self.n.reset.updates if u.var == s)
                out.append((s, self.scalar(reset_blend(s, value, states))))
            else:
                out.append((s, self.v[new(s)]))
        return out

    def updates(self, o: CodeWriter) -> None:
        for let in self.n.lets:
            o.line(f"{self.v[let.var]} = {self.scalar(let.value)}", (self.n.file, let.line))
        for u in self.n.updates:
            o.line(f"{self.v[new(u.var)]} = {self.scalar(u.value)}", (self.n.file, u.line))
        for s in self.states:
            if s not in self.updated:
                o.line(f"{self.v[new(s)]} = {self.v[s]}")

    # ---- the kernels ------------------------------------------------------------------------------
    def emit_forward(self, o: CodeWriter) -> None:
        args = [self.arr[i] for i in self.inputs] + [self.arr[s] for s in self.states]
        if self.uses_spiked:
            args.append(self.arr["spiked"])
        if self.refractory:
            args.append("counter")
        args += [self.arr[p] for p in self.params] + ["N", "dt", "steps", "out", "saved", "rec", "active"]
        o.line(f"def {self.forward_name}({', '.join(args)}):")
        with o.indent():
            o.docstring(f"`{self.cls}` over all steps, one element at a time (compiled by numba).\n\n"
                        "Inputs are [T, M]; states [M] (updated in place); params [N] for M = batch * N.\n"
                        "Writes the output of each step to `out`, the updated pre-reset states to `saved`,\n"
                        "with `rec` of nonzero length every state after the step, and `active` the\n"
                        "refractory mask.")
            o.line("T, M = out.shape")
            o.line("for b in numba.prange(M // N):  # batch rows in parallel; each runs its own steps")
            with o.indent():
                o.line("for t in range(T):")
                with o.indent():
                    if self.uses_t:
                        o.line("now = t * dt")
                    o.line("for n in range(N):")
                    with o.indent():
                        o.line("m = b * N + n")
                        self.pruned(o, self.forward_body)

    def pruned(self, o: CodeWriter, body) -> None:  # type: ignore[no-untyped-def]
        """Print `body` into `o` without the plain assignments nothing reads (a param a step does
        not use, a gate without a reset), so the kernels stay lint-clean and minimal."""
        inner = o.child()
        body(inner)
        lines = list(inner.lines)
        while True:
            text = "\n".join(lines)
            targets: dict[str, int] = {}
            for line in lines:
                if m := _ASSIGN.match(line):
                    targets[m.group(1)] = targets.get(m.group(1), 0) + 1
            dead = {name for name, n in targets.items() if len(re.findall(rf"\b{name}\b", text)) == n}
            if not dead:
                break
            lines = [line for line in lines if not ((m := _ASSIGN.match(line)) and m.group(1) in dead)]
        lines = _fill_empty_blocks(lines)
        offset = len(o.lines)
        o.lines.extend(lines)
        kept = {line: k for k, line in enumerate(lines)}
        for k, source in inner.source_map.items():
            line = inner.lines[k - 1]
            if line in kept:
                o.source_map[offset + kept[line] + 1] = source

    def forward_body(self, o: CodeWriter) -> None:
        """One element of one step of the forward kernel."""
        self.load_params(o)
        for s in self.states:
            o.line(f"{self.v[s]} = {self.arr[s]}[m]")
        if self.uses_spiked:
            o.line(f"{self.v['spiked']} = {self.arr['spiked']}[m]")
        for i in self.inputs:
            o.line(f"{self.v[i]} = {self.arr[i]}[t, m]")
        self.updates(o)
        active = None
        if self.refractory:
            o.line("free = counter[m] <= 0.0")
            o.line("active[t, m] = 1 if free else 0")
            for s in self.reset_vars:
                o.line(f"{self.v[new(s)]} = {self.v[new(s)]} if free else {self.v[s]}")
            active = "free"
        for k, s in enumerate(self.states):
            o.line(f"saved[t, {k}, m] = {self.v[new(s)]}")
        self.post(o, active)
        for s, value in self.reset_values():
            o.line(f"{self.arr[s]}[m] = {value}")
        if self.uses_spiked:
            o.line(f"{self.arr['spiked']}[m] = spike")
        if self.refractory:
            o.line("counter[m] = steps if gate > 0.0 else counter[m] - 1.0")
        first = self.arr[self.n.output] if self.n.output and self.n.spike is None else "0.0"
        o.line(f"out[t, m] = {'spike' if self.n.spike is not None else first + '[m]'}")
        o.line("if rec.shape[0] > 0:")
        with o.indent():
            fields = [self.arr[s] for s in self.states]
            if self.uses_spiked:
                fields.append(self.arr["spiked"])
            if self.refractory:
                fields.append("counter")
            for k, name in enumerate(fields):
                o.line(f"rec[t, {k}, m] = {name}[m]")

    def emit_backward(self, o: CodeWriter) -> None:
        """The reverse loop: adjoints `lam_*` of the states after each step walk back to the start."""
        ins = [self.arr[i] for i in self.inputs] if self.saves_inputs else []
        start = [self.arr[s] for s in self.states] + ([self.arr["spiked"]] if self.uses_spiked else [])
        lams = [self.lam[s] for s in self.states] + ([self.lam["spiked"]] if self.uses_spiked else [])
        args = ins + start + [self.arr[p] for p in self.params] + ["N", "dt", "saved", "active", "g_out", "g_rec"]
        args += lams + [self.garr[i] for i in self.inputs] + [self.garr[p] for p in self.grad_params]
        o.line(f"def {self.backward_name}({', '.join(args)}):")
        with o.indent():
            o.docstring(f"The gradient of `{self.cls}` over all steps, in reverse (compiled by numba).\n\n"
                        "`st_*` hold the states before the first step; `lam_*` come in as the gradient of\n"
                        "the final states and leave as that of the initial ones. Gradients of the inputs\n"
                        "go to `g_<input>` [T, M], of the params to `g_<param>` [M] (summed later).")
            o.line("T, M = g_out.shape")
            o.line("for b in numba.prange(M // N):  # batch rows in parallel")
            with o.indent():
                o.line("for t in range(T - 1, -1, -1):")
                with o.indent():
                    if self.uses_t:
                        o.line("now = t * dt")
                    o.line("for n in range(N):")
                    with o.indent():
                        o.line("m = b * N + n")
                        self.pruned(o, self.backward_body)

    def backward_body(self, o: CodeWriter) -> None:
        """One element of one step of the backward kernel, in reverse time."""
        self.load_params(o)
        self.emit_old_values(o)
        for k, s in enumerate(self.states):
            o.line(f"{self.v[new(s)]} = saved[t, {k}, m]")
        if self.saves_inputs:
            for i in self.inputs:
                o.line(f"{self.v[i]} = {self.arr[i]}[t, m]")
        free = None
        if self.refractory:
            o.line("free = active[t, m] == 1")
            free = "free"
        self.post(o, free)
        self.emit_adjoint_step(o)

    def emit_old_values(self, o: CodeWriter) -> None:
        """The states before step t: the start values, or recomputed from the saved step t - 1."""
        old = self.states + (["spiked"] if self.uses_spiked else [])
        if not (set(self.adj.uses) & set(old)):
            return
        o.line("if t == 0:")
        with o.indent():
            for s in old:
                o.line(f"{self.v[s]} = {self.arr[s]}[m]")
        o.line("else:")
        with o.indent():
            for k, s in enumerate(self.states):
                o.line(f"{self.v[new(s)]} = saved[t - 1, {k}, m]")
            if self.saves_inputs:
                for i in self.inputs:
                    o.line(f"{self.v[i]} = {self.arr[i]}[t - 1, m]")
            free = None
            if self.refractory:
                o.line("free = active[t - 1, m] == 1")
                free = "free"
            self.post(o, free)
            for s, value in self.reset_values():
                o.line(f"{self.v[s]} = {value}")
            if self.uses_spiked:
                o.line(f"{self.v['spiked']} = spike")

    def emit_adjoint_step(self, o: CodeWriter) -> None:
        n, p = self.n, self.scalar
        fields = list(self.states) + (["spiked"] if self.uses_spiked else [])
        for k, s in enumerate(fields):
            o.line(f"{self.lam[s]}[m] += g_rec[t, {k}, m] if g_rec.shape[0] > 0 else 0.0")
        lam = {s: f"{self.lam[s]}[m]" for s in fields}
        if n.spike is None:
            assert n.output is not None  # a neuron without spikes outputs one of its states
            o.line(f"{lam[n.output]} += g_out[t, m]")
        gi: dict[str, list[str]] = {i: [] for i in self.inputs}  # terms of each input's gradient
        gp: dict[str, list[str]] = {q: [] for q in self.grad_params}
        if n.spike is not None:
            terms = ["g_out[t, m]"] + ([lam["spiked"]] if self.uses_spiked else [])
            if n.reset is not None and n.reset.with_gradient:
                terms += [_times(lam[d.of], p(d.value)) for d in self.adj.dR if d.wrt == GATE]
            o.line(f"gs = {' + '.join(terms)}")
            o.line(f"gx = gs * ({self._grad(n.spike)})" + (" * (1.0 if free else 0.0)" if self.refractory else ""))
        for s in self.states:
            terms = [] if s in self.reset_vars else [lam[s]]
            terms += [_times(lam[d.of], p(d.value)) for d in self.adj.dR if d.wrt == new(s)]
            terms += [_times("gx", p(d.value)) for d in self.adj.dX if d.wrt == new(s)]
            o.line(f"{self.gu[s]} = {' + '.join(terms) or '0.0'}")
        for d in (*self.adj.dR, *self.adj.dX):
            weight = lam[d.of] if d.of != "x" else "gx"
            if d.wrt in gi:
                gi[d.wrt].append(_times(weight, p(d.value)))
            elif d.wrt in gp:
                gp[d.wrt].append(_times(weight, p(d.value)))
        # the refractory hold, and states without dynamics, pass U's gradient to the old value
        carry: dict[str, list[str]] = {s: [] for s in fields}
        for s in self.states:
            if s not in self.updated:
                carry[s].append(f"{self.gu[s]}")
            elif self.refractory and s in self.reset_vars:  # held at its old value while refractory
                held = self.names.fresh(f"held_{s}")
                o.line(f"{held} = 0.0 if free else {self.gu[s]}")
                o.line(f"{self.gu[s]} = {self.gu[s]} if free else 0.0")
                carry[s].append(held)
        for d in self.adj.dF:
            term = _times(self.gu[d.of], p(d.value))
            if d.wrt in carry:
                carry[d.wrt].append(term)
            elif d.wrt in gi:
                gi[d.wrt].append(term)
            elif d.wrt in gp:
                gp[d.wrt].append(term)
        for i in self.inputs:
            o.line(f"{self.garr[i]}[t, m] = {' + '.join(gi[i]) or '0.0'}")
        for q in self.grad_params:
            if gp[q]:
                o.line(f"{self.garr[q]}[m] += {' + '.join(gp[q])}")
        for s in fields:
            o.line(f"{lam[s]} = {' + '.join(carry[s]) or '0.0'}")

    def _grad(self, spike: ir.LSpike) -> str:
        mapping = {**self.v, spike.grad_var: "x"}
        return Printer({}, mapping, arrays=set())(spike.grad)

    # ---- the autograd Function ------------------------------------------------------------------
    def emit_function(self, o: CodeWriter) -> None:
        cls = self.cls
        real = len(self.states)
        n_fields = len(self.fields)
        o.line(f"class {cls}Run(torch.autograd.Function):")
        with o.indent():
            o.docstring(f"All steps of `{cls}` as one autograd node (numba kernels `{self.forward_name}` and\n"
                        f"`{self.backward_name}`).")
            ins = ", ".join(self.inputs_code())
            sts = ", ".join(f"s{k}" for k in range(n_fields))
            pas = ", ".join(f"p{k}" for k in range(len(self.params)))
            o.line("@staticmethod")
            o.line(f"def forward(ctx, dt, steps, record, {ins}, {sts}{', ' if pas else ''}{pas}):")
            with o.indent():
                first = self.inputs_code()[0]
                o.line(f"T, shape = {first}.shape[0], {first}.shape[1:]")
                o.line("flat = [x.detach().reshape(T, -1).contiguous() for x in (" + ins + ",)]")
                o.line(f"start = [s.detach().reshape(-1).clone() for s in ({sts},)]")
                o.line("params = [p.detach().expand(shape[1:]).reshape(-1).contiguous() "
                       f"for p in ({pas}{',' if pas else ''})]")
                o.line("out = torch.empty_like(flat[0])")
                o.line(f"saved = torch.empty((T, {real}, flat[0].shape[1]), dtype=out.dtype)")
                o.line(f"rec = torch.empty((T if record else 0, {n_fields}, flat[0].shape[1]), dtype=out.dtype)")
                size = "(T, flat[0].shape[1])" if self.refractory else "(0, 0)"  # the refractory mask, if any
                o.line(f"active = torch.empty({size}, dtype=torch.uint8)")
                o.line(f"kernel = _compiled({self.forward_name})")
                o.line("initial = [s.clone() for s in start]")
                o.line("kernel(*(x.numpy() for x in flat), *(s.numpy() for s in start), "
                       "*(p.numpy() for p in params), shape[1:].numel(), float(dt), float(steps), out.numpy(), "
                       "saved.numpy(), "
                       "rec.numpy(), active.numpy())")
                keep = "*flat, " if self.saves_inputs else ""
                o.line(f"ctx.save_for_backward({keep}*initial, *params, saved, active)")
                o.line("ctx.meta = (dt, T, shape)")
                o.line(f"ctx.param_shapes = [p.shape for p in ({pas}{',' if pas else ''})]")
                o.line("final = [s.reshape(shape) for s in start]")
                o.line("records = [rec[:, k].reshape(T, *shape) for k in range(rec.shape[1])] if record else []")
                o.line("return (out.reshape(T, *shape), *final, *records)")
            o.blank()
            o.line("@staticmethod")
            o.line("def backward(ctx, g_out, *grads):")
            with o.indent():
                o.line("dt, T, shape = ctx.meta")
                o.line("tensors = list(ctx.saved_tensors)")
                k_in = len(self.inputs) if self.saves_inputs else 0
                o.line(f"flat = tensors[:{k_in}]")
                o.line(f"initial = tensors[{k_in}:{k_in + n_fields}]")
                o.line(f"params = tensors[{k_in + n_fields}:{k_in + n_fields + len(self.params)}]")
                o.line("saved, active = tensors[-2], tensors[-1]")
                o.line("M = saved.shape[2]")
                o.line(f"g_final = [g.reshape(-1).clone() if g is not None else torch.zeros(M, dtype=saved.dtype) "
                       f"for g in grads[:{n_fields}]]")
                o.line(f"g_recs = grads[{n_fields}:]")
                o.line("if any(g is not None for g in g_recs):")
                with o.indent():
                    o.line("g_rec = torch.stack([g.reshape(T, -1) if g is not None else torch.zeros(T, M, "
                           "dtype=saved.dtype) for g in g_recs], 1).contiguous()")
                o.line("else:")
                with o.indent():
                    o.line(f"g_rec = torch.zeros((0, {n_fields}, M), dtype=saved.dtype)")
                o.line("g_out = (g_out if g_out is not None else torch.zeros(T, *shape, dtype=saved.dtype))"
                       ".reshape(T, -1).contiguous()")
                o.line(f"g_inputs = [torch.empty((T, M), dtype=saved.dtype) for _ in range({len(self.inputs)})]")
                o.line(f"g_params = [torch.zeros(M, dtype=saved.dtype) for _ in range({len(self.grad_params)})]")
                o.line(f"lams = g_final[:{real + (1 if self.uses_spiked else 0)}]")
                o.line(f"kernel = _compiled({self.backward_name})")
                o.line("kernel(*(x.numpy() for x in flat), *(s.numpy() for s in initial[:len(lams)]), "
                       "*(p.numpy() for p in params), shape[1:].numel(), float(dt), saved.numpy(), active.numpy(), "
                       "g_out.numpy(), "
                       "g_rec.numpy(), *(lam.numpy() for lam in lams), *(g.numpy() for g in g_inputs), "
                       "*(g.numpy() for g in g_params))")
                o.line("g_start = [lam.reshape(shape) for lam in lams] + [None] * "
                       f"{n_fields - real - (1 if self.uses_spiked else 0)}")
                index = {p: k for k, p in enumerate(self.grad_params)}
                parts = []
                for k, q in enumerate(self.params):
                    if q in index:
                        parts.append(f"_sum_to(g_params[{index[q]}].reshape(shape), ctx.param_shapes[{k}])")
                    else:
                        parts.append("None")
                o.line(f"g_params_out = [{', '.join(parts)}]")
                o.line("return (None, None, None, *(g.reshape(T, *shape) for g in g_inputs), *g_start, "
                       "*g_params_out)")
        o.blank(2)

    def inputs_code(self) -> list[str]:
        return [f"i{k}" for k in range(len(self.inputs))]


def _names(expr: ir.Expr) -> list[ir.Name]:
    from ...expr import names

    return names(expr)

