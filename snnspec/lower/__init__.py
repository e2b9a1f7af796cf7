"""Lowering: a checked `ir.Spec` to the `ir.LoweredSpec` a backend prints.

One module per concern: `integrate` (ODEs to updates), `surrogate` (smooth to grad),
`neuron` (a neuron or rule as SI params and discrete updates), `plan` (the network).
"""

from __future__ import annotations

from .. import ir
from ..diagnostics import Diagnostics
from .neuron import lower_neuron, lower_rule
from .plan import lower_network


def lower(spec: ir.Spec, diags: Diagnostics) -> ir.LoweredSpec:
    neurons = {}
    for name, neuron in spec.neurons.items():
        lowered = lower_neuron(neuron, spec.surrogates, diags)
        if lowered is not None:
            neurons[name] = lowered
    rules = {name: lower_rule(rule, diags) for name, rule in spec.rules.items()}
    networks = {name: lower_network(net, spec) for name, net in spec.networks.items()} if not diags.errors else {}
    return ir.LoweredSpec(file=spec.file, neurons=neurons, rules=rules, networks=networks)
