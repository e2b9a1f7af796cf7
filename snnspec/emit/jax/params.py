"""The JAX network's params and buffers, printed from the program's parameter table: `init` (as
torch initialises the same module), `init_buffers` (plastic weights, batchnorm statistics),
`neuron_params` (each layer's neuron params as its steps use them), and how the network's functions
read them (`param`, `emit_buffers`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from ... import ir
from ...names import Namer, class_name, py_name
from ..writer import STATIC, CodeWriter, literal
from .functions import DTYPE


class ParamsPrinter:
    """The params functions of a network namespace (a mixin of `NetworkEmitter`)."""

    net: ir.LNetwork
    program: ir.LProgram
    out: CodeWriter
    cls: str
    reserved: set[str]
    layers: dict[str, ir.LLayer]
    neurons: dict[str, ir.LNeuron]
    layer_attr: dict[str, str]
    frozen: set[str]  # the attributes of frozen ops
    buffer_keys: set[str]  # the plastic weights and biases
    has_bn: bool

    def src(self, line: int | None) -> tuple[str, int | None]:
        return (self.net.file, line)

    def param(self, key: str) -> str:
        """The code reading a params key: frozen weights without gradient, plastic ones from `buffers`."""
        if key in self.buffer_keys:
            return f'buffers["{key}"]'
        attr = key.split(".")[0]
        text = f'params["{key}"]'
        return f"lax.stop_gradient({text})" if attr in self.frozen else text

    def emit_buffers(self) -> None:
        """`buffers` where a function reads them: plastic weights must be given; batchnorm statistics
        default to `init_buffers()`."""
        o = self.out
        if self.program.plastic_dense:
            o.line("if buffers is None:")
            with o.indent():
                o.line(f'raise ValueError("{self.cls} has plastic weights: pass buffers, from '
                       f'{self.cls}.init_buffers(key) "')
                o.line('                 "or torch\'s named_buffers()")')
        elif self.has_bn:
            o.line(f"buffers = {self.cls}.init_buffers(dtype=dtype) if buffers is None else buffers")

    def emit_init(self) -> None:
        o = self.out
        entries = self.program.params
        with o.block("def init(key, dtype=None) -> dict", decorators=STATIC, after=1):
            o.docstring("Fresh params, as torch initialises the same module: dense and conv weights and biases\n"
                        "uniform on +-1/sqrt(fan_in), batchnorm weight 1 and bias 0, one_to_one weights 1,\n"
                        "learnable neuron params at their values.")
            if not entries:
                o.line("return {}")
                return
            o.line(f"dtype = {DTYPE}")
            if any(t.init == "neuron" for t in entries):
                o.line(f"dt = {self.cls}.dt")
            n_random = sum(1 for t in entries if t.init == "uniform")
            if n_random:
                o.line(f"keys = jax.random.split(key, {n_random})")
            local = Namer(self.reserved)
            inits: dict[str, str] = {}
            for t in entries:
                layer = t.layer
                if t.init == "neuron" and layer is not None and layer not in inits:
                    la = self.layers[layer]
                    neuron = self.neurons[layer]
                    kw = "".join(f", {py_name(k)}={literal(v)}" for k, v in la.overrides.items())
                    inits[layer] = local(f"{layer}_init")
                    o.line(f"{inits[layer]} = {class_name(neuron.name)}.init({tuple(la.shape)!r}, dt=dt, "
                           f"dtype=dtype{kw})", self.src(la.line))
            draws = itertools.count()
            o.line("return {")
            with o.indent():
                for t in entries:
                    value = f'{inits[t.layer]}["{t.key.split(".", 1)[1]}"]' if t.layer is not None else None
                    o.line(f'"{t.key}": {value or self.initial(t, draws)},')
            o.line("}")

    def emit_init_buffers(self) -> None:
        o = self.out
        entries = self.program.buffers
        with o.block("def init_buffers(key=None, dtype=None) -> dict", decorators=STATIC, after=1):
            o.docstring("The buffers at the start, keyed as torch's `named_buffers()` (less the fixed neuron and rule\n"
                        "params, constants here): plastic weights and biases drawn from `key` as torch draws them\n"
                        "(uniform on +-1/sqrt(fan_in)), batchnorm running statistics mean 0 and variance 1.")
            if not entries:
                o.line("return {}")
                return
            o.line(f"dtype = {DTYPE}")
            n_random = sum(1 for t in entries if t.init == "uniform")
            if n_random:
                o.line("if key is None:")
                with o.indent():
                    o.line(f'raise ValueError("{self.cls} has plastic weights, drawn at random: pass '
                           'key=jax.random.PRNGKey(...)")')
                o.line(f"keys = jax.random.split(key, {n_random})")
            draws = itertools.count()
            o.line("return {")
            with o.indent():
                for t in entries:
                    o.line(f'"{t.key}": {self.initial(t, draws)},')
            o.line("}")

    @staticmethod
    def initial(t: ir.PTensor, draws: Iterator[int]) -> str:
        """The initial value of an array of the parameter table (`draws` numbers the random ones)."""
        if t.init == "uniform":
            assert t.fan_in is not None
            return f"_uniform(keys[{next(draws)}], {t.shape!r}, {literal(1 / t.fan_in ** 0.5)}, dtype)"
        return "jnp.zeros((), int)" if t.init == "count" else f"jnp.{t.init}({t.shape!r}, dtype)"

    def emit_neuron_params(self) -> None:
        o = self.out
        with o.block("def neuron_params(params) -> dict", decorators=STATIC, after=1):
            o.docstring("Each layer's neuron params as its steps use them: the layer's overrides, learnable values\n"
                        "from `params`, ranges applied.")
            o.line(f"dt = {self.cls}.dt")
            o.line("return {")
            with o.indent():
                for la in self.net.layers:
                    neuron = self.neurons[la.name]
                    attr = self.layer_attr[la.name]
                    values = {py_name(k): literal(v) for k, v in la.overrides.items()}
                    for prm in neuron.params:
                        if prm.learnable:
                            values[py_name(prm.name)] = f'params["{attr}.{py_name(prm.name)}"]'
                    given = ", ".join(f'"{k}": {v}' for k, v in values.items())
                    o.line(f'"{attr}": {class_name(neuron.name)}.params({{{given}}}, dt=dt),', self.src(la.line))
            o.line("}")
