"""Warnings for steps that a network's dt makes unstable: forward Euler on a stiff decay.

Forward Euler multiplies a decaying state by `1 - dt/tau` per step: negative (the state flips sign
every step) once dt/tau > 1, growing without bound once dt/tau >= 2. The lowered neuron records
the decay rates it can compute (`LNeuron.euler_rates`: params and dt only); a network fixes dt
and each layer's params, so the figure is known here, at check time.
"""

from __future__ import annotations

from .. import ir
from ..diagnostics import Diagnostics
from ..expr import EvalError, evaluate


def warn_unstable_euler(net: ir.Network, neurons: dict[str, ir.LNeuron], diags: Diagnostics) -> None:
    facts = net.facts
    if facts is None:
        return
    for layer in net.layers:
        n = neurons.get(layer.neuron)
        if n is None or not n.euler_rates:
            continue
        env = {"dt": facts.dt}
        overrides = facts.overrides.get(layer.name, {})
        try:
            for p in n.params:  # dependency order
                env[p.name] = overrides[p.name] if p.name in overrides else evaluate(p.default, env)
            rates = [(r.var, evaluate(r.value, env)) for r in n.euler_rates]
        except EvalError:
            continue
        unit = " s" if facts.dt_has_unit else " steps"
        for var, rate in rates:
            ratio = facts.dt * rate
            if ratio <= 1:
                continue
            what = ("is unstable for d{v}/dt (the state grows without bound)" if ratio >= 2 else
                    "oscillates for d{v}/dt (each step multiplies {v} by 1 - dt/tau = {f:.3g})")
            diags.warning(f"dt/tau = {ratio:.3g} {'≥ 2' if ratio >= 2 else '> 1'}: forward Euler "
                          f"{what.format(v=var, f=1 - ratio)}, in layer '{layer.name}' ({n.name}, "
                          f"dt = {facts.dt:g}{unit}, tau = {1 / rate:.3g}{unit})", layer.span,
                          "use `method exact` (a linear system) or `method exponential_euler`, or a smaller dt")
