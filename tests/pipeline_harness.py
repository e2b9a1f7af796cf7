"""The whole-pipeline fuzzer's machinery, shared by `tests/test_fuzz_pipeline.py` (the fast CI profile)
and `scripts/fuzz_pipeline.py` (the long profile, which counts outcomes and writes reproductions).

A *case* is a set of spec files (a root spec and perhaps a library it imports) written to a folder.
`run_case` takes it through load -> lower -> generate (torch and JAX) -> `compile()` -> build and one
forward and backward on three paths: the fused numba kernels (torch's default on CPU), the plain torch
step loop (`FUSED = False`, as on a GPU) and JAX. It returns one `Outcome` whose `kind` is one of
`KINDS`; every kind but `ok` and `spec-error` is a fault of the compiler.

Specs come from `SpecGen`, a generator of *valid* specs (random neurons, functions, small networks),
from `mutate` (random edits of real specs) and from `token_soup`. All three draw through a `Chooser`,
so hypothesis (shrinking, `derandomize`) and a seeded `random.Random` (the long profile) drive the same
code. Constructs that are known to break, and are being fixed elsewhere, are generated only when their
name is switched on (`CONSTRUCTS`, `KNOWN_OPEN`).
"""

from __future__ import annotations

import builtins
import contextlib
import random
import re
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

import snnspec
from snnspec.emit import generate as emit
from snnspec.emit.writer import source_name

T = TypeVar("T")

# ---- what may be generated ---------------------------------------------------------------------------

# Constructs the generator uses only when switched on: each known to break today (the reliability file
# that reproduces it, or what goes wrong). Switch one on (remove it from KNOWN_OPEN) once it is fixed.
CONSTRUCTS: dict[str, str] = {
    "heaviside_in_dynamics": "reliability/min_heaviside_in_update.snn, heaviside_of_state.snn: DiracDelta in the "
                             "fused adjoint",
    "sign_in_dynamics": "reliability/min_sign_in_update.snn: DiracDelta in the fused adjoint",
    "minmax_in_dynamics": "reliability/min_max_in_ode_fused_backward.snn: numba float(bool) in the fused backward "
                          "(min, max and clip)",
    "fn_of_constant": "reliability/min_torch_fn_on_constant_let.snn, min_clip_of_t.snn: torch.sin(float) on the "
                      "plain path",
    "detach_of_constant": "reliability/min_min_of_detached_constant.snn: Detach(c) is not comparable",
    "spiked_without_spike": "reliability/min_spiked_in_nonspiking_neuron.snn: undefined 'spike' in generated code",
    "tau_zero": "reliability/min_tau_zero_jax_divzero.snn: ZeroDivisionError in JAX",
    "long_names": "reliability/long_state_name.py: numba 'redefinition of argument' for long names",
    "empty_neuron": "reliability/min_empty_neuron.snn: AssertionError in the fused emitter",
    "keyword_prefixed_names": "names starting syn/pre/post/grad/smooth after a newline are lexed as keywords",
    "class_clash": "reliability/min_class_clash_without_location.snn, min_snake_case_kernel_collision.snn",
    "rk4": "reliability/rk4_adjoint_timeout.snn: the rk4 adjoint times out (SymbolicTimeout traceback)",
    "equal_time_constants": "exact solutions of coupled ODEs with equal time constants",
    "on_spike_division": "reliability/on_spike_nan.snn: an on-spike right side that is inf off-spike gives NaN",
    "abs_of_expression": "abs() of a non-symbol (abs(sigmoid(p) ** 2)) in a learnable param's update: the fused "
                         "adjoint crashes, 'cannot express re in the language' (found by this fuzzer)",
    "overflowing_literal": "reliability/min_overflowing_literal.snn: 1e309 reaches the emitter",
    "huge_int_literal": "reliability/min_int_literal_5000_digits.snn: int conversion limit",
    "param_math_error": "reliability/min_param_default_math_error.snn: log(0) as a param default",
    "param_overflows_float32": "reliability/min_param_overflows_float32.snn: a range bound of 1e300",
}
# rk4 builds (the adjoint's time limit, then the unfused path) but spends 5 s of symbolic work a neuron,
# too slow for the CI profile; the long profile (scripts/fuzz_pipeline.py) generates it
KNOWN_OPEN: frozenset[str] = frozenset({"rk4"})
# constructs fixed by making them a diagnostic: a spec that uses one is a SpecError (with a location)
DIAGNOSED: frozenset[str] = frozenset({"long_names", "tau_zero", "spiked_without_spike", "empty_neuron",
                                       "overflowing_literal", "huge_int_literal", "param_math_error",
                                       "param_overflows_float32", "class_clash"})
EVERYTHING: frozenset[str] = frozenset(CONSTRUCTS)

CANARY = "zqxcanary"  # never an identifier of a generated spec; must never reach generated code

KINDS = ("ok", "spec-error", "unlocated-diagnostic", "crash-before-code", "invalid-python", "long-line",
         "runtime-error", "mismatch", "canary-leak")
FAULTS = tuple(k for k in KINDS if k not in ("ok", "spec-error"))
LIMIT = 120


# ---- choosers: who makes the random choices ------------------------------------------------------------

class Chooser(Protocol):
    def pick(self, options: Sequence[T]) -> T: ...
    def between(self, lo: int, hi: int) -> int: ...
    def chance(self, p: float) -> bool: ...


class RandomChooser:
    """Choices from a seeded `random.Random` (the long profile: fast, no shrinking)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def between(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class HypothesisChooser:
    """Choices drawn by hypothesis (`st.composite`'s `draw`), so failures shrink."""

    def __init__(self, draw: Callable[[Any], Any]):
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def pick(self, options: Sequence[T]) -> T:
        return self.draw(self.st.sampled_from(list(options)))

    def between(self, lo: int, hi: int) -> int:
        return self.draw(self.st.integers(lo, hi))

    def chance(self, p: float) -> bool:
        # an integer draw shrinks towards 0, i.e. towards "no": the simpler spec
        return self.draw(self.st.integers(0, 999)) >= 1000 - round(p * 1000)


# ---- a case: spec files in a folder ------------------------------------------------------------------

@dataclass
class Case:
    """Spec files by path relative to the case's folder; `root` is the one to load."""

    files: dict[str, str]
    root: str = f"{CANARY}_spec.snn"
    folder: str = f"{CANARY}_root"
    seq_inputs: int = 0  # how many of the network's inputs are `encode none` ([T, batch, ...])

    def write(self, base: Path) -> Path:
        folder = base / self.folder
        for rel, text in self.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8")
        return folder / self.root

    def text(self) -> str:
        """Every file, one after the other, for a report."""
        return "\n".join(f"# ---- {rel}\n{text}" for rel, text in self.files.items())


# ---- the generator of valid specs ----------------------------------------------------------------------

FUNCS1 = ["exp", "log", "sqrt", "abs", "sign", "tanh", "sigmoid", "atan", "erf", "sin", "cos", "heaviside", "detach"]
SURROGATES = ["atan(alpha = 2)", "fast_sigmoid(slope = 10)", "sigmoid(slope = 5)", "triangular(width = 1)",
              "gaussian(sigma = 0.5)", "straight_through", "spike_rate_escape(beta = 1, slope = 5)", "fuzzgrad",
              "fuzzsmooth(k = 3)"]
USER_SURROGATES = ("surrogate fuzzgrad(x) { grad = 1 / (1 + 4 * abs(x)) ** 2 }  # " + CANARY + "\n"
                   "surrogate fuzzsmooth(x; k = 2) { smooth = tanh(k * x) / 2 }\n")
NUMBERS = ["0.5", "1", "2", "0.25", "3", "0.1", "1.5", "0.9", "4", "0.75"]


@dataclass
class Atom:
    text: str
    tensor: bool  # a torch tensor on the plain path (states, inputs, params), not a Python float


@dataclass
class NeuronSpec:
    name: str
    text: str
    states: list[str]
    inputs: list[str]
    spikes: bool


class SpecGen:
    """Random valid specs: neurons with params, states, inputs, lets, ODEs and updates, `spike when`,
    `on spike`, refractory and surrogates, and a small network of them. `enabled` names the constructs
    of `CONSTRUCTS` it may use."""

    def __init__(self, c: Chooser, enabled: frozenset[str] = frozenset()):
        self.c, self.on = c, enabled

    # -- expressions
    def number(self) -> str:
        if "overflowing_literal" in self.on and self.c.chance(0.01):
            return "1e309"
        if "huge_int_literal" in self.on and self.c.chance(0.005):
            return "1" * 5000
        return self.c.pick(NUMBERS)

    def expr(self, atoms: list[Atom], depth: int) -> Atom:
        if depth <= 0 or self.c.chance(0.3):
            return self.c.pick(atoms) if atoms and self.c.chance(0.8) else Atom(self.number(), False)
        form = self.c.between(0, 5)
        if form == 0:
            a, b = self.expr(atoms, depth - 1), self.expr(atoms, depth - 1)
            op = self.c.pick(["+", "-", "*"])
            return Atom(f"({a.text} {op} {b.text})", a.tensor or b.tensor)
        if form == 1:
            a, b = self.expr(atoms, depth - 1), self.expr(atoms, depth - 1)
            den = f"(1 + {self.mag(b.text)})" if self.c.chance(0.85) else b.text
            return Atom(f"{a.text} / {den}", a.tensor or b.tensor)
        if form == 2:
            a = self.expr(atoms, depth - 1)
            return Atom(f"{a.text} ** {self.c.pick(['2', '3'])}", a.tensor)
        if form == 3 and "minmax_in_dynamics" in self.on:
            a, b = self.expr(atoms, depth - 1), self.expr(atoms, depth - 1)
            return self.tensorise(Atom(f"{self.c.pick(['min', 'max'])}({a.text}, {b.text})", a.tensor or b.tensor),
                                  atoms)
        if form == 4 and "minmax_in_dynamics" in self.on:
            a = self.expr(atoms, depth - 1)
            lo = self.c.pick(["-1", "0", "-0.5"])
            return self.tensorise(Atom(f"clip({a.text}, {lo}, {self.c.pick(['1', '2', '0.5'])})", a.tensor), atoms)
        return self.call(atoms, depth)

    def mag(self, text: str) -> str:
        """A magnitude of `text`: abs() where it may be, else a square."""
        if "abs_of_expression" in self.on or re.fullmatch(r"\w+", text):
            return f"abs({text})"
        return f"({text}) ** 2"

    def call(self, atoms: list[Atom], depth: int) -> Atom:
        funcs = [f for f in FUNCS1 if not (f == "heaviside" and "heaviside_in_dynamics" not in self.on)
                 and not (f == "sign" and "sign_in_dynamics" not in self.on)]
        f = self.c.pick(funcs)
        a = self.expr(atoms, depth - 1)
        raw = self.c.chance(0.1)  # unguarded: may be NaN or inf, which every path must agree on
        if f == "log" and not raw:
            text = f"log(1 + {self.mag(a.text)})"
        elif f == "sqrt" and not raw:
            text = f"sqrt({self.mag(a.text)})"
        elif f == "exp" and not raw:
            text = f"exp(-{self.mag(a.text)})"
        elif f == "abs" and "abs_of_expression" not in self.on and not re.fullmatch(r"\w+", a.text):
            text = f"({a.text}) ** 2"
        else:
            text = f"{f}({a.text})"
        if f == "detach" and not a.tensor and "detach_of_constant" not in self.on:
            return a
        return self.tensorise(Atom(text, a.tensor), atoms)

    def tensorise(self, call: Atom, atoms: list[Atom]) -> Atom:
        """A function of constants only (numbers, `t`, `dt`, constant lets) unless that is switched on:
        then it is made a function of a state or input too."""
        if call.tensor or "fn_of_constant" in self.on:
            return call
        tensors = [a for a in atoms if a.tensor]
        if not tensors:
            return Atom(self.number(), False)
        name, rest = call.text.split("(", 1)
        return Atom(f"{name}({self.c.pick(tensors).text} + {rest}", True)

    # -- names
    def names(self, prefix: str, n: int) -> list[str]:
        out = []
        for k in range(n):
            name = f"{prefix}{k}"
            if "keyword_prefixed_names" in self.on and self.c.chance(0.1):
                name = self.c.pick(["syn", "pre", "post", "grad", "smooth"]) + f"_{prefix}{k}"
            if "long_names" in self.on and self.c.chance(0.05):
                name = name + "x" * self.c.pick([100, 300, 1000])
            out.append(name)
        return out

    # -- a neuron
    def neuron(self, name: str) -> NeuronSpec:
        c = self.c
        if "empty_neuron" in self.on and c.chance(0.03):
            return NeuronSpec(name, f"neuron {name} {{}}\n", [], ["I"], False)
        lines: list[str] = []
        params = self.names("p", c.between(0, 3))
        atoms: list[Atom] = [Atom("t", False), Atom("dt", False)]
        for k, p in enumerate(params):
            default = self.c.pick(NUMBERS) if k == 0 or c.chance(0.6) else self.expr(
                [a for a in atoms if a.text in params or a.text == "dt"], 1).text
            if "param_math_error" in self.on and c.chance(0.02):
                default = "log(0)"
            tail = ""
            if c.chance(0.3):
                tail += " learnable" + (" per neuron" if c.chance(0.4) else "")
            if c.chance(0.3):
                hi = "1e300" if "param_overflows_float32" in self.on and c.chance(0.1) else "10"
                tail += f" in [0, {hi}]"
                default = self.c.pick(NUMBERS)
            lines.append(f"param {p} = {default}{tail}")
            atoms.append(Atom(p, True))
        states = self.names("s", c.between(1, 3))
        spikes = c.chance(0.8)
        inputs = ["I"] + (["J"] if c.chance(0.25) else [])
        if inputs != ["I"] or c.chance(0.2):
            lines.append("input I" + (" = 0.1" if c.chance(0.3) else ""))
            if "J" in inputs:
                lines.append(f"input J = {c.pick(NUMBERS)}")
        for s in states:
            lines.append(f"state {s} = {c.pick(['0', '0', '0.1', '-0.2'])}")
            atoms.append(Atom(s, True))
        atoms += [Atom(i, True) for i in inputs]
        if spikes or "spiked_without_spike" in self.on and c.chance(0.2):
            atoms.append(Atom("spiked", True))
        for let in self.names("l", c.between(0, 2)):
            e = self.expr(atoms, 2)
            lines.append(f"let {let} = {e.text}")
            atoms.append(Atom(let, e.tensor))
        taus = [2, 3, 5, 7, 11, 13]
        odes = False
        for k, s in enumerate(states):
            drive = self.expr(atoms, c.between(1, 3)).text
            form = c.between(0, 3)
            if form == 0:
                lines.append(f"{s} <- {c.pick(['0.5', '0.8', '0.9'])} * {s} + {drive}")
            elif form == 1 and k > 0 and c.chance(0.3):
                continue  # a state without dynamics keeps its initial value (or what `on spike` sets)
            else:
                odes = True
                tau = c.pick(["2", "5"]) if "equal_time_constants" in self.on else str(taus[k])
                if "tau_zero" in self.on and c.chance(0.05):
                    lines.insert(0, "param tz = 0")
                    tau = "tz"
                elif params and c.chance(0.2) and "equal_time_constants" in self.on:
                    tau = f"(1 + abs({params[0]}))"
                linear = c.chance(0.4)
                rhs = f"(-{s} + {c.pick(inputs)}) / {tau}" if linear else f"(-{s} + {drive}) / {tau}"
                lines.append(f"d{s}/dt = {rhs}")
        if odes and c.chance(0.35):
            methods = ["exact", "euler", "exponential_euler"] + (["rk4"] if "rk4" in self.on else [])
            lines.append(f"method {c.pick(methods)}")
        if spikes:
            lhs = c.pick(states)
            cmp = c.pick([">", ">", ">="])
            rhs = c.pick(["1", "0.5"] + [p for p in params if c.chance(0.5)])
            sur = f" surrogate {c.pick(SURROGATES)}" if c.chance(0.5) else ""
            lines.append(f"spike when {lhs} {cmp} {rhs}{sur}")
            if c.chance(0.7):
                stmts = []
                for s in states:
                    if c.chance(0.6):
                        op = c.pick(["=", "-=", "+="])
                        value = c.pick(["0", "1", "0.5"] + params)
                        if "on_spike_division" in self.on and c.chance(0.1):
                            value = f"1 / {c.pick(states)}"
                        stmts.append(f"{s} {op} {value}")
                if stmts:
                    grad = " with gradient" if c.chance(0.2) else ""
                    lines.append(f"on spike{grad} {{ " + "; ".join(stmts) + " }")
            if c.chance(0.25):
                lines.append(f"refractory {c.pick(['1', '2', '3'])}")
        body = "\n".join(f"    {line}" + (f"  # {CANARY}" if c.chance(0.2) else "") for line in lines)
        text = f"# {CANARY}: neuron {name}\nneuron {name} {{\n{body}\n}}\n"
        return NeuronSpec(name, text, states, inputs, spikes)

    # -- a case
    def case(self) -> Case:
        c = self.c
        neurons = [self.neuron(f"N{k}") for k in range(c.between(1, 2))]
        if "class_clash" in self.on and c.chance(0.05):
            neurons.append(self.neuron(c.pick(["n0", "N_0"])))
        library = c.chance(0.3) and len(neurons) > 1
        steps = c.between(3, 8)
        size = c.between(2, 5)
        net = [f"network Net {{  # {CANARY}"]
        if c.chance(0.2):
            net.append(f"    dt = {c.pick(['0.5', '2'])}")
        net.append(f"    steps = {steps}")
        net.append(f"    input x[{size}] encode direct  # {CANARY}")
        seq = c.chance(0.2)
        if seq:
            net.append("    input y[3] encode none")
        layers: list[tuple[str, NeuronSpec]] = []
        for k in range(c.between(1, 3)):
            n = c.pick(neurons)
            layers.append((f"h{k}", n))
            net.append(f"    layer h{k} = {n.name}[{c.between(2, 4)}]")
        for k, (layer, n) in enumerate(layers):
            dest = f"{layer}.J" if "J" in n.inputs and c.chance(0.5) else layer
            if k == 0:
                net.append(f"    x -> dense -> {dest}")
            else:
                prev, pn = layers[k - 1]
                src = prev if pn.spikes and c.chance(0.6) else f"{prev}.{c.pick(pn.states)}" if pn.states else "x"
                op = c.pick(["dense", "dense", "dense(bias = false)", "dense -> scale(0.5)", "dense -> delay(2)"])
                net.append(f"    {src} -> {op} -> {dest}")
            if seq and c.chance(0.5):
                net.append(f"    y -> dense -> {layer}")
            if n.spikes and c.chance(0.15):
                net.append(f"    {layer} -> dense -> {layer}")
        if seq and not any(line.startswith("    y ->") for line in net):
            net.append(f"    y -> dense -> {layers[0][0]}")
        outputs = []
        for layer, n in layers:
            if n.spikes:
                outputs.append(f"{layer}.spike {c.pick(['count', 'rate', 'trace'])}")
            if n.states and (c.chance(0.6) or not n.spikes):
                outputs.append(f"{layer}.{c.pick(n.states)} {c.pick(['trace', 'last', 'max', 'rate', 'count'])}")
        net.append("    output " + ", ".join(outputs))
        net.append("}")
        used = sorted({n.name for _, n in layers})
        surrogates = USER_SURROGATES
        if library:
            lib_neurons = [n for n in neurons[1:]]
            lib = f"# {CANARY} library\n{surrogates}" + "".join(n.text for n in lib_neurons)
            main = [n for n in neurons if n not in lib_neurons]
            imported = sorted({n.name for n in lib_neurons} & set(used)) or [lib_neurons[0].name]
            head = f'from "{CANARY}_lib/lib.snn" import {", ".join(imported)}  # {CANARY}\n'
            root = head + surrogates + "".join(n.text for n in main) + "\n".join(net) + "\n"
            name = self.root_name()
            return Case({name: root, f"{CANARY}_lib/lib.snn": lib}, name, self.folder_name(), seq_inputs=int(seq))
        root = f"# {CANARY}\n" + surrogates + "".join(n.text for n in neurons) + "\n".join(net) + "\n"
        name = self.root_name()
        return Case({name: root}, name, self.folder_name(), seq_inputs=int(seq))

    def root_name(self) -> str:
        return f"{CANARY}_spec.snn" if self.c.chance(0.8) else f'{CANARY} """\'x.snn'

    def folder_name(self) -> str:
        """The root spec's folder: never printed (file names are relative to it), so it may hold anything."""
        return f"{CANARY}_root" if self.c.chance(0.7) else f'{CANARY} """\n\t\'#\\ root'



# ---- mutations and soups of real specs ------------------------------------------------------------------

KEYWORDS = [
    "from", "import", "surrogate", "smooth", "grad", "neuron", "param", "learnable", "per", "in", "state",
    "input", "let", "method", "refractory", "spike", "when", "on", "with gradient", "rule", "pre", "post", "syn",
    "modulator", "clip", "network", "dt", "steps", "encode", "layer", "frozen", "learn", "output", "train",
    "loss", "optimizer", "batch", "epochs", "exact", "euler", "rk4", "count", "rate", "trace", "direct", "none",
]
SYMBOLS = ["{", "}", "(", ")", "[", "]", ",", ";", "=", "+=", "-=", "*=", "<-", "->", ".", "+", "-", "*", "/",
           "**", ">", ">=", "<", "#", '"', "\\\n"]
NAMES = ["v", "I", "x", "w", "h", "out", "tau", "beta", "mem", "spiked", "t", "pi", "exp", "max", "clip",
         "heaviside", "detach", "atan", "Leaky", "LIF", "STDP", "dense", "conv2d", "flatten", "scale",
         "lateral", "maxpool", "dv/dt", "dx_pre/dt", "ms", "mV", "nA", "Mohm", "Hz", "pF", "nS"]
LITERALS = ["0", "1", "2.5", "1e-3", "25", "784", ".5", "1e308", "1e999", "0.0", "3", "10"]
PATHS = ['"std/neurons.snn"', '"std/rules.snn"', '"std/surrogates.snn"', '"missing.snn"', '"../x.snn"', '""', '"."',
         '"fuzz.snn"', '"a\x00b.snn"']
TOKENS = KEYWORDS + SYMBOLS + NAMES + LITERALS + PATHS
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9.]+|\S")
_INSERTABLE = list("{}()[],;=<->*/+.#\"\\ \n\tdvxI0123456789")


def token_soup(c: Chooser, max_tokens: int = 60) -> str:
    """Tokens of the language in random order."""
    return "".join(c.pick(TOKENS) + c.pick([" ", " ", " ", "\n", "; ", ""]) for _ in range(c.between(0, max_tokens)))


def mutate(text: str, c: Chooser) -> str:
    """One random edit of a spec: characters, lines or tokens deleted, duplicated, swapped or replaced."""
    kind = c.pick(["delete_chars", "insert_chars", "duplicate_chars", "delete_line", "duplicate_line",
                   "swap_lines", "swap_tokens", "replace_token", "insert_token", "replace_alike", "replace_alike"])
    lines = text.split("\n")
    if kind in ("delete_line", "duplicate_line", "swap_lines"):
        i = c.between(0, len(lines) - 1)
        if kind == "delete_line":
            del lines[i]
        elif kind == "duplicate_line":
            lines.insert(i, lines[i])
        else:
            j = c.between(0, len(lines) - 1)
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if kind in ("swap_tokens", "replace_token", "insert_token", "replace_alike"):
        spans = [m.span() for m in _TOKEN.finditer(text)]
        if not spans:
            return text
        a = c.between(0, len(spans) - 1)
        s, e = spans[a]
        if kind == "replace_token":
            return text[:s] + c.pick(TOKENS) + text[e:]
        if kind == "replace_alike":  # a name for a name, a number for a number: the text still parses, mostly
            pool = LITERALS if text[s].isdigit() or text[s] == "." else NAMES if text[s].isalpha() else SYMBOLS
            return text[:s] + c.pick(pool) + text[e:]
        if kind == "insert_token":
            return text[:s] + c.pick(TOKENS) + " " + text[s:]
        b = c.between(0, len(spans) - 1)
        (s1, e1), (s2, e2) = sorted([spans[a], spans[b]])
        if s2 < e1:
            return text
        return text[:s1] + text[s2:e2] + text[e1:s2] + text[s1:e1] + text[e2:]
    pos = c.between(0, len(text))
    if kind == "delete_chars":
        return text[:pos] + text[pos + c.between(1, 8):]
    if kind == "insert_chars":
        return text[:pos] + "".join(c.pick(_INSERTABLE) for _ in range(c.between(1, 4))) + text[pos:]
    end = min(len(text), pos + c.between(1, 12))
    return text[:end] + text[pos:end] + text[end:]


def mutated(text: str, c: Chooser) -> str:
    for _ in range(c.between(1, 3)):
        text = mutate(text, c)
    return text


# ---- running a case ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str
    stage: str = ""
    detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        """What makes two failures the same fault: kind, stage, exception type and message, numbers and
        names of the generated spec blurred."""
        text = re.sub(r"[0-9]+", "N", self.detail.splitlines()[0] if self.detail else "")
        text = re.sub(r"\b[snlp]N\b|\bNN?\b|\bh\d\b", "X", text)
        return f"{self.kind} | {self.stage} | {text[:140]}"


class CaseTimeout(Exception):
    """A stage ran past its time: the compiler hangs (or is far too slow) on this input."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `CaseTimeout` in the main thread after `seconds` (no limit off the main thread, or at 0)."""
    def fire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"no result after {seconds:g} s")

    try:
        old = signal.signal(signal.SIGALRM, fire)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _error_line(err: BaseException) -> str:
    """The exception in one line: its type, first line (and numba's `>>> signature` line), where it rose."""
    tb = traceback.extract_tb(err.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    lines = [line.strip() for line in str(err).strip().splitlines()] or [""]
    extra = [line for line in lines[1:] if line.startswith(">>>") or "not defined" in line][:1]
    return f"{type(err).__name__}: {' '.join([lines[0], *extra])}{where}"


def check_source(source: str, backend: str, doors: list[str]) -> Outcome | None:
    """Properties 2 and 5 for one generated module: valid Python, lines within the limit, and the canary
    nowhere but inside the file-name door (`source_name`: comments and docstrings)."""
    try:
        builtins.compile(source, f"<fuzz {backend}>", "exec")
    except SyntaxError as err:
        return Outcome("invalid-python", backend, f"{type(err).__name__}: {err}")
    long = [(k + 1, line) for k, line in enumerate(source.split("\n")) if len(line) > LIMIT]
    if long:
        k, line = long[0]
        return Outcome("long-line", backend, f"{len(long)} lines over {LIMIT}, first line {k} ({len(line)} chars)")
    stripped = source
    for door in sorted(doors, key=len, reverse=True):  # as printed, and as escaped inside a docstring
        stripped = stripped.replace(door, "").replace(door.replace("\\", "\\\\").replace('"""', '\\"\\"\\"'), "")
    if CANARY in stripped.lower():
        k = next(k for k, line in enumerate(stripped.split("\n")) if CANARY in line.lower())
        return Outcome("canary-leak", backend, f"line {k + 1}: {stripped.split(chr(10))[k].strip()[:100]}")
    return None


def front(path: Path, case: Case) -> tuple[Any, dict[str, str]] | Outcome:
    """Load, check, lower and generate both modules; property 1 (only SpecError), 2 and 5."""
    try:
        lowered = snnspec.load_lowered(path)
    except snnspec.SpecError as err:
        unlocated = [d for d in err.diagnostics if d.severity == "error" and d.span is None]
        if unlocated:
            return Outcome("unlocated-diagnostic", "load", unlocated[0].message)
        return Outcome("spec-error", "load", err.diagnostics[0].message if err.diagnostics else "")
    except CaseTimeout as err:
        return Outcome("crash-before-code", "load", f"timeout: {err}")
    except Exception as err:  # noqa: BLE001 - the point: anything but SpecError is a fault
        return Outcome("crash-before-code", "load", _error_line(err))
    root = str(path)
    doors = [source_name(str(path.parent / rel), root) for rel in case.files]
    sources = {}
    for backend in ("torch", "jax"):
        try:
            sources[backend] = emit(lowered, backend)
        except snnspec.SpecError as err:
            if any(d.severity == "error" and d.span is None for d in err.diagnostics):
                return Outcome("unlocated-diagnostic", f"emit {backend}", err.diagnostics[0].message)
            return Outcome("spec-error", f"emit {backend}", err.diagnostics[0].message if err.diagnostics else "")
        except CaseTimeout as err:
            return Outcome("crash-before-code", f"emit {backend}", f"timeout: {err}")
        except Exception as err:  # noqa: BLE001
            return Outcome("crash-before-code", f"emit {backend}", _error_line(err))
        bad = check_source(sources[backend], backend, doors)
        if bad is not None:
            return bad
    return lowered, sources


# -- the three paths

def _inputs(net: Any, steps: int, dtype: Any, batch: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    out = []
    for inp in net.inputs:
        lead = (steps, batch) if inp.encoding in ("none", "delta") else (batch,)
        out.append((rng.random((*lead, *inp.shape)) * 2.0).astype(dtype))
    return out


def _loss(outputs: Any, xp: Any) -> Any:
    return sum((1 + i) * xp.mean(getattr(outputs, f) ** 2) for i, f in enumerate(outputs._fields))


def run_torch(module: Any, cls: str, xs: list[np.ndarray], fused: bool, double: bool
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Outputs, gradients (params by their `named_parameters()` key, inputs as `x<k>`) and the params."""
    import torch

    module.FUSED = fused
    torch.manual_seed(0)
    net = getattr(module, cls)()
    if double:
        net = net.double()
    tensors = [torch.tensor(x, requires_grad=True) for x in xs]
    out = net(*tensors)
    loss = _loss(out, torch)
    if loss.requires_grad:  # else nothing the loss reads has a gradient (JAX's are then all zero)
        loss.backward()
    outputs = {f: getattr(out, f).detach().numpy() for f in out._fields}
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)).numpy() for k, p in net.named_parameters()}
    grads.update({f"x{k}": (t.grad if t.grad is not None else torch.zeros_like(t)).numpy()
                  for k, t in enumerate(tensors)})
    params = {k: p.detach().numpy() for k, p in net.named_parameters()}
    return outputs, grads, params


def run_jax(module: Any, cls: str, xs: list[np.ndarray], params: dict[str, np.ndarray]
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    import jax
    import jax.numpy as jnp

    J = getattr(module, cls)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    xj = [jnp.asarray(x) for x in xs]

    def loss(p: dict, xj: list) -> tuple[Any, Any]:
        out = J.apply(p, *xj, key=jax.random.PRNGKey(0))
        return _loss(out, jnp), out

    (_, out), (gp, gx) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(p, xj)
    outputs = {f: np.asarray(getattr(out, f)) for f in out._fields}
    grads = {k: np.asarray(v) for k, v in gp.items()}
    grads.update({f"x{k}": np.asarray(g) for k, g in enumerate(gx)})
    return outputs, grads


def differ(a: dict[str, np.ndarray], b: dict[str, np.ndarray], tol: float) -> str | None:
    """The first array of `a` that `b` does not match: NaN where NaN, the same infinities, and finite values
    within `tol` relative to the largest finite magnitude of all of `a` (at least 1)."""
    if set(a) != set(b):
        return f"different keys: {sorted(set(a) ^ set(b))}"
    scale = max([1.0] + [float(np.abs(v[np.isfinite(v)]).max(initial=0.0)) for v in a.values()])
    for k in sorted(a):
        x, y = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
        if x.shape != y.shape:
            return f"{k}: shape {x.shape} vs {y.shape}"
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return f"{k}: NaN in one and not the other"
        finite_x, finite_y = np.isfinite(x), np.isfinite(y)
        if not np.array_equal(finite_x, finite_y) or not np.array_equal(x[np.isinf(x)], y[np.isinf(y)]):
            return f"{k}: infinite in one and not the other"
        err = float(np.abs(x[finite_x] - y[finite_x]).max(initial=0.0)) / scale
        if err > tol:
            return f"{k}: relative difference {err:.3g} > {tol:g}"
    return None


def _set_x64(on: bool) -> None:
    import jax

    jax.config.update("jax_enable_x64", on)


def compare_paths(mods: dict[str, Any], cls: str, net: Any, steps: int, double: bool, fused: bool,
                  jax: bool) -> Outcome | None:
    """One forward and backward on each path; None where all agree. Property 3 and 4."""
    xs = _inputs(net, steps, np.float64 if double else np.float32)
    results: dict[str, tuple[dict, dict]] = {}
    params: dict[str, np.ndarray] = {}
    for path in (("fused", "plain") if fused else ("plain",)):
        try:
            out, grads, params = run_torch(mods["torch"], cls, xs, path == "fused", double)
        except CaseTimeout as err:
            return Outcome("runtime-error", path, f"timeout: {err}")
        except Exception as err:  # noqa: BLE001
            return Outcome("runtime-error", path, _error_line(err))
        results[path] = (out, grads)
    try:
        _set_x64(double)
        if jax:
            results["jax"] = run_jax(mods["jax"], cls, xs, params)
    except CaseTimeout as err:
        return Outcome("runtime-error", "jax", f"timeout: {err}")
    except Exception as err:  # noqa: BLE001
        return Outcome("runtime-error", "jax", _error_line(err))
    finally:
        _set_x64(False)
    out_tol, grad_tol = (1e-9, 1e-7) if double else (1e-4, 1e-3)
    base = "plain"
    for other in [p for p in results if p != base]:
        for what, k, tol in (("outputs", 0, out_tol), ("gradients", 1, grad_tol)):
            why = differ(results[base][k], results[other][k], tol)
            if why is not None:
                return Outcome("mismatch", f"{base} vs {other}", f"{what} {why}")
    return None


def import_module(source: str, backend: str) -> Any:
    # the same import `snnspec.compile` does (a cached file, so numba can cache its kernels)
    return snnspec._import_source(source, "fuzzcase", backend)


def run_case(case: Case, workdir: Path, *, runtime: bool = True, fused: bool = True, jax: bool = True,
             timeout: float = 120.0) -> Outcome:
    """Everything for one case. `runtime=False` stops once the code exists and is checked; `fused=False`
    and `jax=False` leave out the numba path and JAX (their compiles dominate: 2-5 s and 1-3 s a case)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    path = case.write(workdir)
    with time_limit(timeout):
        made = front(path, case)
        timings["front"] = time.perf_counter() - start
        if isinstance(made, Outcome):
            made.timings = timings
            return made
        lowered, sources = made
        if not runtime or not lowered.networks:
            return Outcome("ok", timings=timings)
        mods = {}
        for backend, source in sources.items():
            if backend == "jax" and not jax:
                continue
            try:
                mods[backend] = import_module(source, backend)
            except CaseTimeout as err:
                return Outcome("runtime-error", f"import {backend}", f"timeout: {err}", timings)
            except Exception as err:  # noqa: BLE001
                return Outcome("runtime-error", f"import {backend}", _error_line(err), timings)
        from snnspec.names import class_name

        for name, net in lowered.networks.items():
            steps = net.steps or 6
            t0 = time.perf_counter()
            bad = compare_paths(mods, class_name(name), net, steps, double=False, fused=fused, jax=jax)
            timings["float32"] = time.perf_counter() - t0
            if bad is not None and bad.kind == "mismatch":
                # float32 rounding (float64 inside the numba kernels) can flip a spike near its threshold
                # or overflow on one path only: only what float64 confirms is a fault
                t0 = time.perf_counter()
                bad = compare_paths(mods, class_name(name), net, steps, double=True, fused=fused, jax=jax)
                timings["float64"] = time.perf_counter() - t0
            if bad is not None:
                bad.timings = timings
                return bad
    timings["total"] = time.perf_counter() - start
    return Outcome("ok", timings=timings)


# ---- minimal reproductions -------------------------------------------------------------------------------

def minimize(case: Case, target: Outcome, workdir: Path, budget_s: float = 120.0, **run: Any) -> Case:
    """Delete lines (of every file) while the case still fails the same way (`Outcome.signature`), until
    no single deletion keeps it failing or the time budget is spent."""
    deadline = time.monotonic() + budget_s
    best = case
    k = 0
    changed = True
    while changed and time.monotonic() < deadline:
        changed = False
        for rel in list(best.files):
            lines = best.files[rel].split("\n")
            i = 0
            while i < len(lines) and time.monotonic() < deadline:
                trial_lines = lines[:i] + lines[i + 1:]
                trial = Case({**best.files, rel: "\n".join(trial_lines)}, best.root, best.folder, best.seq_inputs)
                k += 1
                got = run_case(trial, workdir / f"min{k}", **run)
                if got.signature == target.signature:
                    best, lines, changed = trial, trial_lines, True
                else:
                    i += 1
    return best
