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
from ..rule import SHAPES
from ..rule import RuleEmitter as SharedRuleEmitter
from ..writer import STATIC, CodeWriter
from .functions import DTYPE, JAX_FUNCTIONS, clamp


class RuleEmitter(SharedRuleEmitter):
    functions = JAX_FUNCTIONS
    array_type = "jax.Array"
    param_prefix = "p."
    dt_text = "dt"
    zeros_like = "jnp.zeros_like"
    clamp = staticmethod(clamp)  # the neuron's params are clamped by the same `_clamp`

    def emit(self, o: CodeWriter) -> None:
        self.emit_state_tuple(o)
        o.named_tuple(f"{self.cls}Params", f"The params of rule `{self.rule.name}` in SI units.",
                      [f"{code}: jax.Array" for code in self.params.values()])
        usage = ("`params(values, dt=dt)` gives the params the other functions take; `init_state(p, batch, post, "
                 f"pre)`,\n`step(p, state, w, pre, post{self.mod_args}, dt=dt) -> (state, w)`.")
        with o.block(f"class {self.cls}", f"{self.class_doc(o)}\n\n{usage}", after=2):
            o.blank()
            self.emit_params(o)
            self.emit_init_state(o)
            self.emit_step(o)

    def emit_params(self, o: CodeWriter) -> None:
        r = self.rule
        with o.block(f"def params(values=None, *, dt) -> {self.cls}Params",
                     "The params a step uses, from `values` (a dict of SI values; missing ones take their\n"
                     "defaults), for steps of `dt` seconds (or steps, in a spec without units).",
                     decorators=STATIC, after=1):
            if r.params:
                o.line("values = {} if values is None else values")
            local = Namer({"values", "dt"})
            names = {name: local(name) for name in self.params}  # a param named `values` keeps the dict
            env = self.param_printer(names)
            for p in r.params:
                code = self.params[p.name]
                o.line(f'{names[p.name]} = values["{code}"] if "{code}" in values else {env(p.default)}',
                       (r.file, p.line))
            o.line(f"return {self.cls}Params({', '.join(names.values())})")

    def emit_init_state(self, o: CodeWriter) -> None:
        with o.block(f"def init_state(p, batch: int, post: int, pre: int, *, dtype=None) -> {self.cls}State",
                     f"The state at the start of a run (`p` from `params`): pre {SHAPES['pre']}, post "
                     f"{SHAPES['post']},\nsyn {SHAPES['syn']}.", decorators=STATIC, after=1):
            o.line(f"dtype = {DTYPE}")
            values = self.state_values(lambda size: f"jnp.zeros({size}, dtype)")
            if len(values) <= 2:
                o.line(f"return {self.cls}State({', '.join(values)})")
            else:
                o.line(f"return {self.cls}State(")
                with o.indent():
                    for value in values:
                        o.line(f"{value},")
                o.line(")")

    def emit_step(self, o: CodeWriter) -> None:
        with o.block(f"def step(p, state: {self.cls}State, w, pre, post{self.mod_args}, *, dt)"
                     f" -> tuple[{self.cls}State, jax.Array]",
                     "One step after the postsynaptic layer spiked (`p` from `params`): `pre` [batch, pre] and\n"
                     "`post` [batch, post] are this step's spikes; modulators are scalars or [batch]. Returns the\n"
                     "new state and w. No gradient flows through it (it reads everything through\n"
                     "`lax.stop_gradient`).", decorators=STATIC):
            for code in self.mods.values():
                o.line(f"{code} = jnp.asarray({code}, w.dtype).reshape(-1)")
            read = ["p", "state", "w", "pre", "post", *self.mods.values()]
            o.line(f"{', '.join(read)} = lax.stop_gradient(({', '.join(read)}))")
            self.emit_step_body(o)
