"""The gradient-health warning, in words: input-current gradient norms that grow or shrink by more
than `FACTOR` per layer along the depth of the network, and hidden layers that never spike.

The per-layer factor is g(l) / g(l + 1), the norm at layer l over the norm at the layer after it
(the way the gradient flows, from the output back to the input), estimated robustly over all the
layers (`trend`). `FACTOR` comes from measurement on specs/examples/deep_resnet.snn at
initialisation (docs/training.md, "Gradient health"): 1.13 and 0.83 per layer for the surrogate
widths that keep the gradient within 1000x over the 22 layers, 1.5 (growing) and 0.57 or less
(falling) for those that change it by 500x to 10^13.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

FACTOR = 1.4  # per layer; 1.4 ** 20 ~ 800x across a 20-layer stack
MIN_LAYERS = 4  # layers with a gradient
# the std surrogates' width: the hyper-parameter, and +1 where a larger value is wider, -1 narrower
WIDTH = {"atan": ("alpha", -1), "fast_sigmoid": ("slope", -1), "sigmoid": ("slope", -1), "triangular": ("width", 1),
         "gaussian": ("sigma", 1), "spike_rate_escape": ("beta", -1)}


@dataclass(frozen=True)
class Hints:
    """What the advice may name: each layer's surrogate, and the layers whose weighted input paths all
    pass through batchnorm."""

    surrogates: dict[str, str] = field(default_factory=dict)
    normalised: frozenset[str] = frozenset()
    outputs: frozenset[str] = frozenset()  # the layers the outputs read (silent at first, often, and fine)


class _Layer(Protocol):
    @property
    def layer(self) -> str: ...
    @property
    def depth(self) -> int: ...
    @property
    def current_grad(self) -> float | None: ...
    @property
    def silent(self) -> float | None: ...


def trend(grads: list[tuple[int, float]]) -> float:
    """The per-layer factor g(l) / g(l + 1) that the norms follow, robustly: the median over every
    pair of layers i < j of (g(i) / g(j)) ** (1 / (j - i)) (a Theil-Sen slope of log g against
    depth), which neither a one-off step nor the zig-zag of residual blocks moves much."""
    return statistics.median(math.exp((math.log(g) - math.log(g2)) / (d2 - d))
                             for k, (d, g) in enumerate(grads) for d2, g2 in grads[k + 1:])


def _advice(widen: bool, layers: list[str], hints: Hints) -> str:
    """What to change, for the layers of the stretch: the surrogate's width (by its hyper-parameter,
    for the std surrogates) and batchnorm on the currents, unless they have it already."""
    names = sorted({hints.surrogates[la] for la in layers if la in hints.surrogates})
    knobs = []
    for name in names:
        if name in WIDTH:
            param, sign = WIDTH[name]
            knobs.append(f"{name}: a {'larger' if (sign > 0) == widen else 'smaller'} {param}")
        else:
            knobs.append(name)
    how = f" ({'; '.join(knobs)})" if knobs else ""
    text = f"{'widen' if widen else 'narrow'} the surrogate{how}"
    missing = [la for la in layers if la not in hints.normalised]
    if not missing:
        return text + "; their input currents already pass through batchnorm"
    if len(missing) <= 3:
        return text + f" or add batchnorm on the input current (of {', '.join(missing)})"
    return text + " or add batchnorm on the input current"


def gradient_warning(layers: Sequence[_Layer], hints: Hints | None = None) -> str | None:
    """Sentences when the gradient explodes or vanishes with depth or hidden layers never spike,
    else None."""
    hints = hints or Hints()
    said = [s for s in (_gradient(layers, hints), _silent(layers, hints)) if s]
    return ". ".join(said) or None


def _silent(layers: Sequence[_Layer], hints: Hints) -> str | None:
    quiet = [la.layer for la in layers if la.silent == 1 and la.layer not in hints.outputs]
    if not quiet:
        return None
    shown = ", ".join(quiet[:6]) + (", ..." if len(quiet) > 6 else "")
    return (f"{len(quiet)} hidden layer(s) never spike on these samples ({shown}): nothing passes through "
            "them but the surrogate's tail; add batchnorm on their input current or start from larger weights")


def _gradient(layers: Sequence[_Layer], hints: Hints) -> str | None:
    names = {la.depth: la.layer for la in layers}
    grads = [(la.depth, la.current_grad) for la in layers if la.current_grad is not None]
    for (d, g), (d2, g2) in zip(grads, grads[1:]):
        if g == 0 and g2 > 0:
            return (f"the input-current gradient is exactly 0 at layer {d} ({names[d]}) though layer {d2} "
                    f"({names[d2]}) has one: no gradient reaches it (a silent layer above, or a surrogate "
                    "that is 0 at every membrane value it meets)")
    positive = [(d, g) for d, g in grads if g > 0]
    if len(positive) < MIN_LAYERS:
        return None
    f = trend(positive)
    if 1 / FACTOR <= f <= FACTOR:
        return None
    low, high = positive[0][0], positive[-1][0]
    where = f"from layer {high} ({names[high]}) back to layer {low} ({names[low]})"
    advice = _advice(f < 1, [names[d] for d in range(low, high + 1) if d in names], hints)
    if f < 1:
        return f"gradient norm falls {1 / f:.1f}x per layer {where}: {advice}"
    return f"gradient norm grows {f:.1f}x per layer {where}: {advice}"
