"""Plasticity rules (LANGUAGE.md §4) for the PyTorch backend.

A rule becomes an `nn.Module` holding its params, with `init_state` and `step`. Its states live
per presynaptic neuron `[batch, pre]`, per postsynaptic neuron `[batch, post]` or per synapse
`[batch, post, pre]`; the weight `w` is `[post, pre]`, shared by the batch, so every change to it
is averaged over the batch. `step` runs without gradients and returns new tensors (never in place),
so the weights a step used stay intact for autograd through the rest of the model. What a step
computes is printed by the shared `rule.RuleEmitter`; this module gives it torch's functions and
the module around it.
"""

from __future__ import annotations

from ..rule import RuleEmitter as SharedRuleEmitter
from ..writer import CodeWriter
from .functions import TORCH_FUNCTIONS, clamp


class RuleEmitter(SharedRuleEmitter):
    functions = TORCH_FUNCTIONS
    array_type = "torch.Tensor"
    param_prefix = "self."
    dt_text = "self.dt"
    zeros_like = "torch.zeros_like"
    clamp = staticmethod(clamp)  # torch's clamp, as the neuron's params are clamped

    def emit(self, o: CodeWriter) -> None:
        self.emit_state_tuple(o)
        with o.block(f"class {self.cls}(nn.Module)", self.class_doc(o), after=2):
            o.blank()
            self.emit_init(o)
            self.emit_init_state(o)
            self.emit_step(o)

    def emit_init(self, o: CodeWriter) -> None:
        r = self.rule
        kwargs = "".join(f", {code}=None" for code in self.params.values())
        with o.block(f"def __init__(self, *, dt{kwargs})", after=1):
            o.line("super().__init__()")
            o.line("self.dt = float(dt)")
            o.line("dt = self.dt")
            env = self.param_printer(self.params)
            for p in r.params:
                code = self.params[p.name]
                o.line(f"{code} = _tensor({env(p.default)} if {code} is None else {code})", (r.file, p.line))
                o.line(f'self.register_buffer("{code}", {code})')

    def emit_init_state(self, o: CodeWriter) -> None:
        with o.block(f"def init_state(self, batch: int, post: int, pre: int, like: torch.Tensor) -> {self.cls}State",
                     after=1):
            values = self.state_values(lambda size: f"torch.zeros({size}, dtype=like.dtype, device=like.device)")
            o.line(f"return {self.cls}State({', '.join(values)})")

    def emit_step(self, o: CodeWriter) -> None:
        # no_grad: a rule changes `w` without gradients (LANGUAGE.md §4); without it, spikes that carry a
        # surrogate gradient would put the weight updates on the autograd tape of the rest of the model
        with o.block(f"def step(self, state: {self.cls}State, w: torch.Tensor, pre: torch.Tensor, "
                     f"post: torch.Tensor{self.mod_args})",
                     "One step after the postsynaptic layer spiked: `pre` [batch, pre] and `post` [batch, post]\n"
                     "are this step's spikes; modulators are scalars or [batch]. Returns the new state and w.",
                     decorators=["@torch.no_grad()"]):
            for code in self.mods.values():
                o.line(f"{code} = torch.as_tensor({code}, dtype=w.dtype, device=w.device).reshape(-1)")
            self.emit_step_body(o)
