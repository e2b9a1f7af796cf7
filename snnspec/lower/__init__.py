"""Lowering: a checked `ir.Spec` to the `ir.LoweredSpec` a backend prints.

One module per concern: `integrate` (ODEs to updates), `surrogate` (smooth to grad),
`neuron` (a neuron or rule as SI params and discrete updates), `plan` (the network).
Lowered neurons and rules are kept in the cache (`snnspec.cache`): sympy is imported only on a miss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

from .. import ir
from ..cache import cached
from ..depth import recursion_room
from ..diagnostics import Diagnostics
from .plan import lower_network
from .program import build_program
from .stability import warn_unstable_euler


def lower(spec: ir.Spec, diags: Diagnostics) -> ir.LoweredSpec:
    neurons = {}
    for name, neuron in spec.neurons.items():
        work = partial(_lower_neuron, neuron, spec.surrogates)
        inputs = (neuron, *spec.surrogates.values())
        lowered = _guarded(partial(cached, "lowered", ir.LNeuron, inputs, work, diags), neuron, diags)
        if lowered is not None:
            neurons[name] = lowered
    rules = {}
    for name, rule in spec.rules.items():
        work_rule = partial(_lower_rule, rule)
        lowered_rule = _guarded(partial(cached, "lowered", ir.LRule, (rule,), work_rule, diags), rule, diags)
        if lowered_rule is not None:
            rules[name] = lowered_rule
    networks = {}
    if not diags.errors:
        for name, net in spec.networks.items():
            lowered_net = lower_network(net, spec)
            program = build_program(lowered_net, neurons, rules, diags)
            networks[name] = lowered_net.model_copy(update={"program": program})
            warn_unstable_euler(net, neurons, diags)
    return ir.LoweredSpec(file=spec.file, neurons=neurons, rules=rules, networks=networks)


def _lower_neuron(neuron: ir.Neuron, surrogates: Mapping[str, ir.Surrogate], diags: Diagnostics) -> ir.LNeuron | None:
    from .neuron import lower_neuron  # imports sympy: only when the cache misses

    return lower_neuron(neuron, surrogates, diags)


def _lower_rule(rule: ir.Rule, diags: Diagnostics) -> ir.LRule:
    from .neuron import lower_rule

    return lower_rule(rule, diags)


T = TypeVar("T")


def _guarded(work: Callable[[], T], decl: ir.Neuron | ir.Rule, diags: Diagnostics) -> T | None:
    """Run the symbolic work for one declaration; input nested past Python's recursion limit, or a result
    the language cannot write (an infinity, a complex number), is a diagnostic at the declaration."""
    from ..symbolic import Inexpressible
    from .budget import SymbolicTimeout

    try:
        with recursion_room():  # the recursive passes take a few frames per level of the deepest tree parsed
            return work()
    except RecursionError:
        diags.error(f"the equations of '{decl.name}' nest too deeply for symbolic work", decl.span,
                    "write them with fewer nested calls, or inline fewer `let`s into one another")
    except Inexpressible as err:
        diags.error(f"the equations of '{decl.name}' give a value the language cannot express ({err})", decl.span,
                    "look for a division by zero, or a log or square root of a negative constant")
    except SymbolicTimeout:
        diags.error(f"the symbolic work on '{decl.name}' ran past its time limit", decl.span,
                    "simplify its equations, or give `method euler`")
    return None
