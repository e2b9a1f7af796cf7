"""The gradient-health warning, in words: input-current gradient norms that grow or shrink by more
than `FACTOR` per layer along the depth of the network.

The per-layer factor is g(l) / g(l + 1), the norm at layer l over the norm at the layer after it
(the way the gradient flows, from the output back to the input). One-off steps (a readout behind a
pooling, a shortcut) are no trend, so the test is on the median factor over the longest stretch of
consecutive layers whose factors lie on the same side of 1 (at least `MIN_LAYERS` factors).
`FACTOR` comes from measurement on specs/examples/deep_resnet.snn at initialisation
(docs/training.md, "Gradient health"): the median factor is 1.1 to 1.2 per layer for surrogate widths
that train, 1.5 or more for those that explode or vanish.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

FACTOR = 1.4  # per layer; 1.4 ** 20 ~ 800x across a 20-layer stack
MIN_LAYERS = 3
# the std surrogates' width: the hyper-parameter, and +1 where a larger value is wider, -1 narrower
WIDTH = {"atan": ("alpha", -1), "fast_sigmoid": ("slope", -1), "sigmoid": ("slope", -1), "triangular": ("width", 1),
         "gaussian": ("sigma", 1), "spike_rate_escape": ("beta", -1)}


@dataclass(frozen=True)
class Hints:
    """What the advice may name: each layer's surrogate, and the layers whose weighted input paths all
    pass through batchnorm."""

    surrogates: dict[str, str] = field(default_factory=dict)
    normalised: frozenset[str] = frozenset()


class _Layer(Protocol):
    @property
    def layer(self) -> str: ...
    @property
    def depth(self) -> int: ...
    @property
    def current_grad(self) -> float | None: ...


def _stretch(factors: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The longest run of consecutive factors on one side of 1 (ties: the deepest)."""
    best: list[tuple[int, float]] = []
    run: list[tuple[int, float]] = []
    for item in factors:
        if run and (item[0] != run[-1][0] + 1 or (item[1] > 1) != (run[-1][1] > 1)):
            run = []
        run.append(item)
        if len(run) >= len(best):
            best = list(run)
    return best


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
    """A sentence when the gradient explodes or vanishes with depth, else None."""
    hints = hints or Hints()
    names = {la.depth: la.layer for la in layers}
    grads = [(la.depth, la.current_grad) for la in layers if la.current_grad is not None]
    for (d, g), (d2, g2) in zip(grads, grads[1:]):
        if g == 0 and g2 > 0:
            return (f"the input-current gradient is exactly 0 at layer {d} ({names[d]}) though layer {d2} "
                    f"({names[d2]}) has one: no gradient reaches it (a silent layer above, or a surrogate "
                    "that is 0 at every membrane value it meets)")
    factors = [(d, g / g2) for (d, g), (_, g2) in zip(grads, grads[1:]) if g > 0 and g2 > 0]
    run = _stretch(factors)
    if len(run) < MIN_LAYERS:
        return None
    f = statistics.median(v for _, v in run)
    if 1 / FACTOR <= f <= FACTOR:
        return None
    low, high = run[0][0], run[-1][0] + 1
    where = f"from layer {high} ({names[high]}) back to layer {low} ({names[low]})"
    advice = _advice(f < 1, [names[d] for d in range(low, high + 1) if d in names], hints)
    if f < 1:
        return f"gradient norm falls {1 / f:.1f}x per layer {where}: {advice}"
    return f"gradient norm grows {f:.1f}x per layer {where}: {advice}"
