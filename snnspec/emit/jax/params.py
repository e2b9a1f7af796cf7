"""The JAX network's params and buffers, printed from the program's parameter table: `init` (as
torch initialises the same module), `init_buffers` (plastic weights, batchnorm statistics) and
`neuron_params` (each layer's neuron params as its steps use them)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from ... import ir
from ...names import Namer, class_name, py_name
from ..writer import CodeWriter, literal


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

    def src(self, line: int | None) -> tuple[str, int | None]:
        return (self.net.file, line)

    def emit_init(self) -> None:
        o = self.out
        entries = self.program.params
        o.line("@staticmethod")
        o.line("def init(key, dtype=None) -> dict:")
        with o.indent():
            o.docstring("Fresh params, as torch initialises the same module: dense and conv weights and biases\n"
                        "uniform on +-1/sqrt(fan_in), batchnorm weight 1 and bias 0, one_to_one weights 1,\n"
                        "learnable neuron params at their values.")
            if not entries:
                o.line("return {}")
                o.blank()
                return
            o.line("dtype = jnp.result_type(float) if dtype is None else dtype")
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
        o.blank()

    def emit_init_buffers(self) -> None:
        o = self.out
        entries = self.program.buffers
        o.line("@staticmethod")
        o.line("def init_buffers(key=None, dtype=None) -> dict:")
        with o.indent():
            o.docstring("The buffers at the start, keyed as torch's `named_buffers()` (less the fixed neuron and rule\n"
                        "params, constants here): plastic weights and biases drawn from `key` as torch draws them\n"
                        "(uniform on +-1/sqrt(fan_in)), batchnorm running statistics mean 0 and variance 1.")
            if not entries:
                o.line("return {}")
                o.blank()
                return
            o.line("dtype = jnp.result_type(float) if dtype is None else dtype")
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
        o.blank()

    @staticmethod
    def initial(t: ir.PTensor, draws: Iterator[int]) -> str:
        """The initial value of an array of the parameter table (`draws` numbers the random ones)."""
        if t.init == "uniform":
            assert t.fan_in is not None
            return f"_uniform(keys[{next(draws)}], {t.shape!r}, {literal(1 / t.fan_in ** 0.5)}, dtype)"
        return "jnp.zeros((), int)" if t.init == "count" else f"jnp.{t.init}({t.shape!r}, dtype)"

    def emit_neuron_params(self) -> None:
        o = self.out
        o.line("@staticmethod")
        o.line("def neuron_params(params) -> dict:")
        with o.indent():
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
        o.blank()
