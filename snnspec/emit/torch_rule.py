"""Plasticity rules (LANGUAGE.md §4) for the PyTorch backend.

A rule becomes an `nn.Module` holding its params, with `init_state` and `step`. Its states live
per presynaptic neuron `[batch, pre]`, per postsynaptic neuron `[batch, post]` or per synapse
`[batch, post, pre]`; the weight `w` is `[post, pre]`, shared by the batch, so every change to it
is averaged over the batch. `step` runs without gradients and returns new tensors (never in place),
so the weights a step used stay intact for autograd through the rest of the model.
"""

from __future__ import annotations

from .. import ir
from ..expr import names
from ..lower.adjoint import reset_blend
from .names import Namer, py_name
from .printer import Printer
from .writer import CodeWriter

SHAPES = {"pre": "[batch, pre]", "post": "[batch, post]", "syn": "[batch, post, pre]", "w": "[post, pre]"}


class UnsupportedRule(Exception):
    """A rule statement the backend cannot broadcast (e.g. a post state changed `on pre`)."""


class RuleEmitter:
    def __init__(self, rule: ir.LRule, cls: str):
        self.rule = rule
        self.cls = cls
        local = Namer({"p", "state", "w", "pre", "post", "gate", "batch", "dt", "self", "like"})
        self.local = {s.var: local(s.var) for s in rule.states}
        self.mods = {m: local(m) for m in rule.modulators}
        self.params = {p.name: py_name(p.name) for p in rule.params}

    def scope_of(self, name: str) -> str:
        if name == "w":
            return "w"
        return self.rule.scopes.get(name, "")

    def printer(self, context: str, extra: dict[str, str] | None = None) -> Printer:
        """Names as seen from a value of scope `context` (pre, post or syn/w)."""
        text: dict[str, str] = dict(extra or {})
        for name, code in self.local.items():
            scope = self.scope_of(name)
            if context in ("syn", "w"):
                text[name] = {"pre": f"{code}[:, None, :]", "post": f"{code}[:, :, None]"}.get(scope, code)
            else:
                text[name] = code
        for name, code in self.mods.items():
            text[name] = {"pre": f"{code}[:, None]", "post": f"{code}[:, None]"}.get(context, f"{code}[:, None, None]")
        text.update({p: f"self.{code}" for p, code in self.params.items()})
        text["w"] = "w"
        text["dt"] = "self.dt"
        return Printer(_torch_functions(), text, arrays=set(text) - {"dt"})

    def check_context(self, var: str, value: ir.Expr, where: str) -> None:
        scope = self.scope_of(var)
        reads = {self.scope_of(n.id) for n in names(value)} - {""}
        everything = {"pre", "post", "syn", "w"}
        allowed = {"pre": {"pre"}, "post": {"post"}, "syn": everything, "w": everything}
        if not reads <= allowed[scope]:
            raise UnsupportedRule(f"rule '{self.rule.name}': {where} a {scope} value '{var}' cannot read "
                                  f"{', '.join(sorted(reads - allowed[scope]))} values")

    def emit(self, o: CodeWriter) -> None:
        r = self.rule
        o.line(f"class {self.cls}State(NamedTuple):")
        with o.indent():
            o.docstring(f"The state of rule `{r.name}`: pre {SHAPES['pre']}, post {SHAPES['post']}, "
                        f"syn {SHAPES['syn']}.")
            for s in r.states:
                o.line(f"{self.local[s.var]}: torch.Tensor  # {r.scopes[s.var]}")
            if not r.states:
                o.line("pass")
        o.blank(2)
        o.line(f"class {self.cls}(nn.Module):")
        with o.indent():
            o.docstring(f"Plasticity rule `{r.name}` ({r.file}): changes a connection's weight `w` [post, pre]\n"
                        "without gradients. Per step: states integrate, then `on pre`, `on post`, `clip`;\n"
                        "changes to `w` are averaged over the batch.")
            o.blank()
            self.emit_init(o)
            self.emit_init_state(o)
            self.emit_step(o)
        o.blank(2)

    def emit_init(self, o: CodeWriter) -> None:
        r = self.rule
        kwargs = "".join(f", {code}=None" for code in self.params.values())
        o.line(f"def __init__(self, *, dt{kwargs}):")
        with o.indent():
            o.line("super().__init__()")
            o.line("self.dt = float(dt)")
            o.line("dt = self.dt")
            env = Printer(_torch_functions(), {**self.params, "dt": "dt"}, arrays=set(self.params.values()))
            for p in r.params:
                code = self.params[p.name]
                o.line(f"{code} = _tensor({env(p.default)} if {code} is None else {code})", (r.file, p.line))
                o.line(f'self.register_buffer("{code}", {code})')
        o.blank()

    def emit_init_state(self, o: CodeWriter) -> None:
        r = self.rule
        o.line(f"def init_state(self, batch: int, post: int, pre: int, like: torch.Tensor) -> {self.cls}State:")
        with o.indent():
            sizes = {"pre": "(batch, pre)", "post": "(batch, post)", "syn": "(batch, post, pre)"}
            values = []
            for s in r.states:
                init = self.printer(r.scopes[s.var])(s.value)
                values.append(f"torch.zeros({sizes[r.scopes[s.var]]}, dtype=like.dtype, device=like.device) + {init}"
                              if init != "0" else f"torch.zeros({sizes[r.scopes[s.var]]}, dtype=like.dtype, "
                              "device=like.device)")
            o.line(f"return {self.cls}State({', '.join(values)})")
        o.blank()

    def emit_step(self, o: CodeWriter) -> None:
        r = self.rule
        mods = "".join(f", {code}" for code in self.mods.values())
        # no_grad: a rule changes `w` without gradients (LANGUAGE.md §4); without it, spikes that carry a
        # surrogate gradient would put the weight updates on the autograd tape of the rest of the model
        o.line("@torch.no_grad()")
        o.line(f"def step(self, state: {self.cls}State, w: torch.Tensor, pre: torch.Tensor, post: torch.Tensor{mods}):")
        with o.indent():
            o.docstring("One step after the postsynaptic layer spiked: `pre` [batch, pre] and `post` [batch, post]\n"
                        "are this step's spikes; modulators are scalars or [batch]. Returns the new state and w.")
            for code in self.mods.values():
                o.line(f"{code} = torch.as_tensor({code}, dtype=w.dtype, device=w.device).reshape(-1)")
            fields = [self.local[s.var] for s in r.states]
            if fields:
                o.line(f"{', '.join(fields)}{',' if len(fields) == 1 else ''} = state")
            updates = [u for u in r.updates]
            if updates:
                values = []
                for u in updates:
                    self.check_context(u.var, u.value, "an update of")
                    printer = self.printer(self.scope_of(u.var))
                    text = self.weight_update(u.value, printer) if u.var == "w" else printer(u.value)
                    values.append((self.local.get(u.var, "w"), text, u.line))
                self.emit_assignments(o, values)
            for event, body in (("pre", r.on_pre), ("post", r.on_post)):
                if not body:
                    continue
                gate = {"pre": "pre", "post": "post"}[event]
                values = []
                for u in body:
                    scope = self.scope_of(u.var)
                    self.check_context(u.var, u.value, f"`on {event}`,")
                    if event == "pre" and scope == "post" or event == "post" and scope == "pre":
                        raise UnsupportedRule(f"rule '{r.name}': `on {event}` cannot change the {scope} state "
                                              f"'{u.var}'")
                    blend = reset_blend(u.var, u.value, ())  # var + gate * e, or var - gate * (var - value)
                    g = gate if scope in ("pre", "post") else (
                        f"{gate}[:, None, :]" if event == "pre" else f"{gate}[:, :, None]")
                    printer = self.printer(scope, {f"{u.var}'": self.local.get(u.var, "w"), "gate'": g})
                    text = self.weight_update(blend, printer) if u.var == "w" else printer(blend)
                    values.append((self.local.get(u.var, "w"), text, u.line))
                o.line(f"# on {event}: where the {event}synaptic neuron spiked")
                self.emit_assignments(o, values)
            for c in r.clips:
                p = self.printer(self.scope_of(c.var))
                var = self.local.get(c.var, "w")
                low, high = p(c.low), p(c.high)
                both = p.is_array(c.low) or p.is_array(c.high)
                text = f"torch.clamp(torch.clamp({var}, min={low}), max={high})" if both else \
                    f"{var}.clamp({low}, {high})"
                o.line(f"{var} = {text}")
            o.line(f"return {self.cls}State({', '.join(fields)}), w")

    @staticmethod
    def weight_update(value: ir.Expr, printer: Printer) -> str:
        """The new `w` [post, pre] from its per-sample value: `w + D` / `w - D` becomes
        `w + _batch_mean(D)`, the mean of the changes (a change that is exactly zero for every sample
        leaves `w` exactly as it was, and small changes keep their precision); any other form is
        `_batch_mean(value)`."""
        if isinstance(value, ir.BinOp) and value.op in ("+", "-") and isinstance(value.left, ir.Name) \
                and value.left.id in ("w", "w'"):
            return f"w {value.op} _batch_mean({printer(value.right)})"
        return f"_batch_mean({printer(value)})"

    def emit_assignments(self, o: CodeWriter, values: list[tuple[str, str, int | None]]) -> None:
        src = self.rule.file
        if len(values) == 1:
            var, text, line = values[0]
            o.line(f"{var} = {text}", (src, line))
            return
        o.line(f"{', '.join(v for v, _t, _l in values)} = (")
        with o.indent():
            for _v, text, line in values:
                o.line(f"{text},", (src, line))
        o.line(")")


def _torch_functions():  # type: ignore[no-untyped-def]
    from .torch import TORCH_FUNCTIONS

    return TORCH_FUNCTIONS
