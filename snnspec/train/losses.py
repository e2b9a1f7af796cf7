"""The losses of LANGUAGE.md §5 and accuracy, each equal to snnTorch's function of the same name.

A loss reads the network's first output; what that output holds decides what the loss accepts:

| loss | snnTorch | accepts (first output) |
| --- | --- | --- |
| `ce_rate` | `SF.ce_rate_loss()` | `trace` (cross-entropy at every step, averaged over steps) |
| `ce_count` | `SF.ce_count_loss()` | `count`, `rate` (times T), `trace` (summed over time) |
| `mse_count(correct, incorrect)` | `SF.mse_count_loss(correct_rate, incorrect_rate)` | as `ce_count` |
| `ce_max_mem` | `SF.ce_max_membrane_loss()` | `max`, `trace` (its maximum over time) |
| `first_spike` | `SF.ce_temporal_loss()` (inverse "negate") | `trace` of `spike` |

Accuracy classifies by the same scores the loss uses: spike count (snnTorch's
`SF.accuracy_rate`) for the three count losses, the maximum over time for `ce_max_mem`, and the
first spike time (earliest wins, snnTorch's `SF.accuracy_temporal`) for `first_spike`.
Outputs with more than one dimension per sample (`[batch, 2, 5]`) are flattened to classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

LOSSES: dict[str, tuple[str, ...]] = {
    "ce_rate": ("trace",),
    "ce_count": ("count", "rate", "trace"),
    "mse_count": ("count", "rate", "trace"),
    "ce_max_mem": ("max", "trace"),
    "first_spike": ("trace",),
}
DEFAULT_ARGS: dict[str, dict[str, float]] = {"mse_count": {"correct": 0.8, "incorrect": 0.2}}


class LossError(ValueError):
    """A loss that cannot read the network's first output."""


# ---- the five losses on plain tensors (time first, classes last) -----------------------------------


def ce_rate(trace: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the output at every step, averaged over steps (`SF.ce_rate_loss`)."""
    steps = trace.shape[0]
    return F.cross_entropy(trace.reshape(-1, trace.shape[-1]), targets.repeat(steps))


def ce_count(counts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the spike counts (`SF.ce_count_loss`)."""
    return F.cross_entropy(counts, targets)


def mse_count(counts: torch.Tensor, targets: torch.Tensor, steps: int, correct: float = 1.0,
              incorrect: float = 0.0) -> torch.Tensor:
    """Mean squared error of the counts against `int(T * correct)` for the right class and
    `int(T * incorrect)` for the others, divided by T (`SF.mse_count_loss`)."""
    on, off = int(steps * correct), int(steps * incorrect)
    target = torch.full_like(counts, float(off))
    target.scatter_(1, targets.unsqueeze(1), float(on))
    return F.mse_loss(counts, target) / steps


def ce_max_mem(max_values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each output neuron's maximum over time (`SF.ce_max_membrane_loss`)."""
    return F.cross_entropy(max_values, targets)


class _FirstSpikeTime(torch.autograd.Function):
    """[T, B, C] spikes -> [B, C] first spike step (T - 1 where none). Backward as snnTorch's
    `SpikeTime.FirstSpike`: the gradient reaches only the spike at the first spike step (or the
    last step), with sign -1."""

    @staticmethod
    def forward(ctx, spikes):  # type: ignore[no-untyped-def]
        steps = spikes.shape[0]
        t = torch.arange(steps, device=spikes.device, dtype=spikes.dtype).view(steps, *([1] * (spikes.dim() - 1)))
        first = torch.where(spikes != 0, t, torch.full_like(spikes, steps)).amin(0)
        first = torch.where(first >= steps, torch.full_like(first, steps - 1), first)
        ctx.save_for_backward(first)
        ctx.shape = spikes.shape
        return first

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[no-untyped-def]
        (first,) = ctx.saved_tensors
        grad = torch.zeros(ctx.shape, dtype=grad_output.dtype, device=grad_output.device)
        grad.scatter_(0, first.long().unsqueeze(0), -grad_output.unsqueeze(0))
        return grad


def first_spike_time(spikes: torch.Tensor) -> torch.Tensor:
    """The first step at which each neuron spikes ([T, B, C] -> [B, C]); T - 1 if it never does."""
    return _FirstSpikeTime.apply(spikes)


def first_spike(spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the negated first spike times (`SF.ce_temporal_loss()`)."""
    return F.cross_entropy(-first_spike_time(spikes), targets)


def accuracy(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The fraction of samples whose highest score is their label (first index on ties)."""
    return (scores.argmax(1) == targets).float().mean()


# ---- a loss bound to a network output -----------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """A loss bound to the network's first output (its readout and variable)."""

    loss: str
    readout: str
    var: str
    args: Mapping[str, float] = field(default_factory=dict)

    def _classes(self, out: torch.Tensor) -> torch.Tensor:
        """Flatten per-sample dims into classes: [B, ...] -> [B, C], [T, B, ...] -> [T, B, C]."""
        keep = 2 if self.readout == "trace" else 1
        return out.flatten(keep) if out.dim() > keep + 1 else out

    def _counts(self, out: torch.Tensor, steps: int) -> torch.Tensor:
        if self.readout == "trace":
            return out.sum(0)
        if self.readout == "rate":
            return out * steps
        return out

    def num_classes(self, out: torch.Tensor) -> int:
        return int(self._classes(out).shape[-1])

    def __call__(self, out: torch.Tensor, targets: torch.Tensor, steps: int) -> torch.Tensor:
        """The loss of a batch: `out` is the first output, `steps` the number of steps run."""
        out = self._classes(out)
        if self.loss == "ce_rate":
            return ce_rate(out, targets)
        if self.loss == "ce_count":
            return ce_count(self._counts(out, steps), targets)
        if self.loss == "mse_count":
            return mse_count(self._counts(out, steps), targets, steps, self.args.get("correct", 1.0),
                             self.args.get("incorrect", 0.0))
        if self.loss == "ce_max_mem":
            return ce_max_mem(out.max(0).values if self.readout == "trace" else out, targets)
        if self.loss == "first_spike":
            return first_spike(out, targets)
        raise AssertionError(self.loss)  # make_objective checked the name

    def scores(self, out: torch.Tensor, steps: int) -> torch.Tensor:
        """[B, C] scores whose argmax is the predicted class."""
        out = self._classes(out.detach())
        if self.loss == "ce_max_mem":
            return out.amax(0) if self.readout == "trace" else out
        if self.loss == "first_spike":
            return -first_spike_time(out)
        return self._counts(out, steps)


def make_objective(loss: str, args: Mapping[str, float], readout: str, var: str, output: str = "the first output",
                   spiking: bool = True) -> Objective:
    """Bind a loss to an output; raise `LossError` if the output cannot feed it."""
    if loss not in LOSSES:
        raise LossError(f"unknown loss '{loss}'; use one of {', '.join(LOSSES)}")
    accepted = LOSSES[loss]
    if readout not in accepted:
        want = " or ".join(f"`{r}`" for r in accepted)
        example = "spike" if loss != "ce_max_mem" else "mem"
        raise LossError(f"loss {loss} cannot read {output} ({var} {readout}): it needs {want}, e.g. "
                        f"`output out.{example} {accepted[0]}` first")
    if loss == "first_spike" and (var != "spike" or not spiking):
        raise LossError(f"loss first_spike needs spikes, but {output} is '{var}'; use `output out.spike trace`")
    merged = {**DEFAULT_ARGS.get(loss, {}), **dict(args)}
    return Objective(loss, readout, var, merged)
