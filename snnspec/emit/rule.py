"""What the backends print alike for a plasticity rule (LANGUAGE.md §4): its state tuple and one
step (`LRule.blocks`), every name broadcast to the shape of the value it is read in and `w` the
batch mean of its per-sample values. The indexing is the same text in torch and jax.numpy, so a
backend gives only its function table, its clamp and the class around the step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

from .. import ir
from ..expr import names
from ..names import Namer, py_name
from ..rule_scope import scope_of
from .printer import Emit, Printer
from .writer import CodeWriter, unpacked

SHAPES = {"pre": "[batch, pre]", "post": "[batch, post]", "syn": "[batch, post, pre]", "w": "[post, pre]"}


def broadcast(scope: str, context: str) -> str:
    """The index that makes a value of `scope` broadcast against values of `context`: a pre value
    [batch, pre] read per synapse is `x[:, None, :]`, a post value `x[:, :, None]`; otherwise none.
    (The same text in torch and jax.numpy.)"""
    if context in ("syn", "w"):
        return {"pre": "[:, None, :]", "post": "[:, :, None]"}.get(scope, "")
    return ""


def modulator_index(context: str) -> str:
    """A modulator, flattened to [batch] (or [1]), read by a value of `context`."""
    return "[:, None]" if context in ("pre", "post") else "[:, None, None]"


def gate(event: str, scope: str) -> str:
    """The gate of `on EVENT` for a value of `scope`: this step's spikes of that side, broadcast."""
    return event + broadcast(event, scope)


# locals of the generated rule functions that a state or modulator must not take
_RULE_LOCALS = {"p", "params", "values", "state", "w", "pre", "post", "gate", "batch", "dt", "dtype", "self", "like"}


class RuleEmitter(ABC):
    """Prints one lowered rule; a backend subclass gives the names below and the class around it."""

    functions: Mapping[str, Emit]  # the backend's array functions
    array_type: str  # the annotation of an array
    param_prefix: str  # how a step reads a param: `self.` (torch) or `p.` (JAX)
    dt_text: str  # how a step reads `dt`
    zeros_like: str  # the backend's zeros_like, which keeps a constant assigned to a state or `w` in its shape

    def __init__(self, rule: ir.LRule, cls: str):
        self.rule = rule
        self.cls = cls
        local = Namer(_RULE_LOCALS)
        self.local = {s.var: local(s.var) for s in rule.states}
        self.mods = {m: local(m) for m in rule.modulators}
        self.mod_args = "".join(f", {code}" for code in self.mods.values())  # as `step` takes them
        self.params = {p.name: py_name(p.name) for p in rule.params}

    def printer(self, context: str, extra: dict[str, str] | None = None) -> Printer:
        """Names as seen from a value of scope `context` (pre, post or syn/w)."""
        text: dict[str, str] = dict(extra or {})
        for name, code in self.local.items():
            text[name] = code + broadcast(scope_of(name, self.rule.scopes), context)
        for name, code in self.mods.items():
            text[name] = code + modulator_index(context)
        text.update({p: self.param_prefix + code for p, code in self.params.items()})
        text["w"] = "w"
        text["dt"] = self.dt_text
        return Printer(self.functions, text, arrays=set(text) - {"dt"})

    def param_printer(self, codes: Mapping[str, str]) -> Printer:
        """The printer of param defaults, each param the local `codes[name]`: an array by its spec
        name, as the step's printer and the neurons' see it (not by its Python name)."""
        return Printer(self.functions, {**codes, "dt": "dt"}, arrays=set(codes))

    def reads_shaped(self, value: ir.Expr) -> bool:
        """Whether a value reads a state, a modulator or `w` (and so has their shape)."""
        return any(n.id in self.local or n.id in self.mods or n.id == "w" for n in names(value))

    @abstractmethod
    def clamp(self, value: str, low: str, high: str, arrays: bool) -> str:
        """`value` clamped to [low, high] (hi wins), as the backend writes it; `arrays`: a bound is an array."""

    def class_doc(self, o: CodeWriter) -> str:
        """What the rule's class is; a backend adds how to call it."""
        return (f"Plasticity rule `{self.rule.name}` ({o.source(self.rule.file)}): changes a connection's weight `w`\n"
                "[post, pre] without gradients. Per step: states integrate, then `on pre`, `on post`, `clip`;\n"
                "changes to `w` are averaged over the batch.")

    def emit_state_tuple(self, o: CodeWriter) -> None:
        r = self.rule
        o.named_tuple(f"{self.cls}State", f"The state of rule `{r.name}`: pre {SHAPES['pre']}, post {SHAPES['post']}, "
                      f"syn {SHAPES['syn']}.", [f"{self.local[s.var]}: {self.array_type}  # {r.scopes[s.var]}"
                                                for s in r.states])

    def state_values(self, zeros: Callable[[str], str]) -> list[str]:
        """Each state's initial value, from `zeros(size)` of its scope's size (`(batch, pre)`, ...)."""
        sizes = {"pre": "(batch, pre)", "post": "(batch, post)", "syn": "(batch, post, pre)"}
        values = []
        for s in self.rule.states:
            scope = self.rule.scopes[s.var]
            init = self.printer(scope)(s.value)
            values.append(zeros(sizes[scope]) if init == "0" else f"{zeros(sizes[scope])} + {init}")
        return values

    def assignment(self, event: str | None, a: ir.LRuleAssignment) -> tuple[str, str, int | None]:
        """The target, value and spec line of one assignment of a block (`on event`, or none)."""
        extra = None
        if event is not None:
            extra = {f"{a.var}'": self.local.get(a.var, "w"), ir.GATE: gate(event, a.scope)}
        printer = self.printer(a.scope, extra)
        target = self.local.get(a.var, "w")
        # a value of numbers and params only is the same for every sample: no batch mean, and
        # assigned on its own it takes the shape of what it replaces
        same = event is None and not self.reads_shaped(a.value)
        if same and a.op is None:
            return target, f"{self.zeros_like}({target}) + {printer(a.value)}", a.line
        if a.var != "w":
            return target, printer(a.value), a.line
        if a.op is not None:
            return target, f"w {a.op} {printer(a.value) if same else f'_batch_mean({printer(a.value)})'}", a.line
        return target, f"_batch_mean({printer(a.value)})", a.line

    def emit_step_body(self, o: CodeWriter) -> None:
        """From the state's fields to `return State(...), w`: each block, then the clips."""
        r = self.rule
        fields = [self.local[s.var] for s in r.states]
        if fields:
            o.line(f"{unpacked(fields)} = state")
        for block in self.rule.blocks:
            if block.event is not None:
                o.line(f"# on {block.event}: where the {block.event}synaptic neuron spiked")
            o.assign([self.assignment(block.event, a) for a in block.assignments], r.file)
        for c in self.rule.clips:
            p = self.printer(scope_of(c.var, self.rule.scopes))
            var = self.local.get(c.var, "w")
            o.line(f"{var} = {self.clamp(var, p(c.low), p(c.high), p.is_array(c.low) or p.is_array(c.high))}")
        o.line(f"return {self.cls}State({', '.join(fields)}), w")
