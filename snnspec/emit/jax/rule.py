"""Plasticity rules (LANGUAGE.md §4) for the JAX backend.

A rule becomes a `NamedTuple` of its state, one of its params and a class of static functions, as
the JAX neurons are written: `params(values, dt=...)`, `init_state(p, batch, post, pre)` and
`step(p, state, w, pre, post, *modulators, dt=...) -> (state, w)`. `step` reads everything through
`lax.stop_gradient`, so no gradient flows through a weight change (torch's rule step runs under
`torch.no_grad()`). What a step computes is printed by the shared `rule.RuleEmitter`; this module
gives it jax.numpy's functions and the class around it.
"""

from __future__ import annotations

from ...names import Namer
from ..printer import Printer
from ..rule import SHAPES
from ..rule import RuleEmitter as SharedRuleEmitter
from ..writer import CodeWriter
from .functions import JAX_FUNCTIONS


class RuleEmitter(SharedRuleEmitter):
    functions = JAX_FUNCTIONS
    array_type = "jax.Array"
    param_prefix = "p."
    dt_text = "dt"
    zeros_like = "jnp.zeros_like"

    def clamp(self, var: str, low: str, high: str, arrays: bool) -> str:
        return f"_clamp({var}, {low}, {high})"

    def emit(self, o: CodeWriter) -> None:
        r = self.rule
        self.emit_state_tuple(o)
        o.line(f"class {self.cls}Params(NamedTuple):")
        with o.indent():
            o.docstring(f"The params of rule `{r.name}` in SI units.")
            for code in self.params.values():
                o.line(f"{code}: jax.Array")
            if not self.params:
                o.line("pass")
        o.blank(2)
        o.line(f"class {self.cls}:")
        with o.indent():
            mods = "".join(f", {code}" for code in self.mods.values())
            o.docstring(f"Plasticity rule `{r.name}` ({o.source(r.file)}): changes a connection's weight `w`\n"
                        "[post, pre] without gradients. Per step: states integrate, then `on pre`, `on post`, `clip`;\n"
                        "changes to `w` are averaged over the batch.\n\n"
                        "`params(values, dt=dt)` gives the params the other functions take; "
                        "`init_state(p, batch, post, pre)`,\n"
                        f"`step(p, state, w, pre, post{mods}, dt=dt) -> (state, w)`.")
            o.blank()
            self.emit_params(o)
            self.emit_init_state(o)
            self.emit_step(o)
        o.blank(2)

    def emit_params(self, o: CodeWriter) -> None:
        r = self.rule
        o.line("@staticmethod")
        o.line(f"def params(values=None, *, dt) -> {self.cls}Params:")
        with o.indent():
            o.docstring("The params a step uses, from `values` (a dict of SI values; missing ones take their\n"
                        "defaults), for steps of `dt` seconds (or steps, in a spec without units).")
            if r.params:
                o.line("values = {} if values is None else values")
            local = Namer({"values", "dt"})
            names = {name: local(name) for name in self.params}  # a param named `values` keeps the dict
            env = Printer(self.functions, {**names, "dt": "dt"}, arrays=set(names))
            for p in r.params:
                code = self.params[p.name]
                o.line(f'{names[p.name]} = values["{code}"] if "{code}" in values else {env(p.default)}',
                       (r.file, p.line))
            o.line(f"return {self.cls}Params({', '.join(names.values())})")
        o.blank()

    def emit_init_state(self, o: CodeWriter) -> None:
        o.line("@staticmethod")
        o.line(f"def init_state(p, batch: int, post: int, pre: int, *, dtype=None) -> {self.cls}State:")
        with o.indent():
            o.docstring(f"The state at the start of a run (`p` from `params`): pre {SHAPES['pre']}, post "
                        f"{SHAPES['post']},\nsyn {SHAPES['syn']}.")
            o.line("dtype = jnp.result_type(float) if dtype is None else dtype")
            values = self.state_values(lambda size: f"jnp.zeros({size}, dtype)")
            if len(values) <= 2:
                o.line(f"return {self.cls}State({', '.join(values)})")
            else:
                o.line(f"return {self.cls}State(")
                with o.indent():
                    for value in values:
                        o.line(f"{value},")
                o.line(")")
        o.blank()

    def emit_step(self, o: CodeWriter) -> None:
        mods = "".join(f", {code}" for code in self.mods.values())
        o.line("@staticmethod")
        o.line(f"def step(p, state: {self.cls}State, w, pre, post{mods}, *, dt)"
               f" -> tuple[{self.cls}State, jax.Array]:")
        with o.indent():
            o.docstring("One step after the postsynaptic layer spiked (`p` from `params`): `pre` [batch, pre] and\n"
                        "`post` [batch, post] are this step's spikes; modulators are scalars or [batch]. Returns the\n"
                        "new state and w. No gradient flows through it (it reads everything through\n"
                        "`lax.stop_gradient`).")
            for code in self.mods.values():
                o.line(f"{code} = jnp.asarray({code}, w.dtype).reshape(-1)")
            read = ["p", "state", "w", "pre", "post", *self.mods.values()]
            o.line(f"{', '.join(read)} = lax.stop_gradient(({', '.join(read)}))")
            self.emit_step_body(o)
