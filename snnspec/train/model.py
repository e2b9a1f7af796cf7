"""A spec's network as an `nn.Module` class, for training and simulation."""

from __future__ import annotations

from pathlib import Path

from .. import ir
from ..diagnostics import Diagnostics
from ..lower.program import build_program


class SetupError(ValueError):
    """A spec, network or option that `snnspec train`/`simulate` cannot use (a user error)."""


def select_network(lowered: ir.LoweredSpec, name: str | None) -> ir.LNetwork:
    """The network called `name`; without one, the only network declared in the spec's file."""
    nets = lowered.networks
    if name is not None:
        if name not in nets:
            known = ", ".join(nets) or "none"
            raise SetupError(f"no network '{name}' in {lowered.file} (its networks: {known})")
        return nets[name]
    own = [n for n in nets.values() if Path(n.file).resolve() == Path(lowered.file).resolve()] or list(nets.values())
    if not own:
        raise SetupError(f"{lowered.file} declares no network")
    if len(own) > 1:
        raise SetupError(f"{lowered.file} declares several networks ({', '.join(n.name for n in own)}); "
                         "choose one with --network NAME")
    return own[0]


def with_network(lowered: ir.LoweredSpec, net: ir.LNetwork) -> ir.LoweredSpec:
    """The lowered spec with `net` (a lowered network with other outputs or steps) in place of the
    network of the same name, its program planned anew for them."""
    program = build_program(net, lowered.neurons, lowered.rules, Diagnostics())
    net = net.model_copy(update={"program": program})
    return lowered.model_copy(update={"networks": {**lowered.networks, net.name: net}})


def single_input(net: ir.LNetwork, command: str) -> ir.LInput:
    if len(net.inputs) != 1:
        names = ", ".join(i.name for i in net.inputs)
        raise SetupError(f"snnspec {command} feeds one input, but network '{net.name}' has {len(net.inputs)} ({names})")
    return net.inputs[0]
