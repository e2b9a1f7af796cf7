"""`snnspec simulate`: run a network on one sample, count spikes per layer, and plot them.

The network is rebuilt with one extra output pair per layer (`LAYER.spike trace` and the trace
of its first state, its "membrane"), so every layer is recorded whatever the spec declares; the
weights are the spec's initialisation (seeded) or a `snnspec train` checkpoint's learnable (and
plastic, statistic) tensors, while the fixed params keep the spec's values: a spec edited since
training is simulated as written, with a note of what differs. The figure has
one row per layer: a spike raster (time against neuron; a heat map of the state for
non-spiking layers) and the membrane traces of the few neurons that spiked most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import ir
from ..files import write_atomic
from .data import BUILTIN, DataError, fit, load_source, not_finite
from .fingerprint import differences, fingerprint, table
from .kernels import kernel_line
from .model import SetupError, select_network, single_input, with_network

RANDOM = "random"


@dataclass
class LayerRecord:
    name: str
    neurons: int
    var: str                              # the recorded state ("mem", "v", ...)
    spikes: np.ndarray | None             # [T, neurons], None for a non-spiking layer
    state: np.ndarray | None              # [T, neurons]

    @property
    def count(self) -> int:
        return int(self.spikes.sum()) if self.spikes is not None else 0


@dataclass
class Simulation:
    network: str
    steps: int
    input_desc: str
    layers: list[LayerRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # how the spec differs from the checkpoint's
    kernels: str = ""  # which fused kernels ran (`kernel_line`)


def _membrane(neuron: ir.LNeuron | None) -> str | None:
    if neuron is None or not neuron.states:
        return None
    names = [s.var for s in neuron.states if s.var != "spiked"]
    for preferred in ("mem", "v", "u", "V"):
        if preferred in names:
            return preferred
    return names[0] if names else None


def _sample(source: str | None, index: int, inp: ir.LInput, net: ir.LNetwork, steps: int | None, seed: int
            ) -> tuple[torch.Tensor, str]:
    """One input sample shaped for the network: [1, *shape], or [T, 1, *shape] for sequences."""
    sequence = inp.encoding in ("none", "delta")
    if source is None:
        source = BUILTIN if _fits_digits(inp) else RANDOM
    gen = torch.Generator().manual_seed(seed)
    if source == RANDOM:
        if sequence:
            t = steps or net.steps or 100
            x = (torch.rand((t, 1, *inp.shape), generator=gen) < 0.05).float()
            return x, f"random spikes (p = 0.05, {t} steps)"
        return torch.rand((1, *inp.shape), generator=gen), "random values in [0, 1)"
    path = Path(source)
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"cannot read {path} as a .npy sample ({type(e).__name__}: {e})") from None
        if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number) or arr.size == 0:
            raise DataError(f"{path} must hold one numeric array (a sample), not a .npz archive or an empty array")
        not_finite(str(path), "the sample", arr.reshape(1, -1))
        x = torch.as_tensor(arr, dtype=torch.get_default_dtype())
        want = math.prod(inp.shape)
        if sequence:
            if x.numel() % want:
                raise DataError(f"{path} holds {x.numel()} values, not a whole number of steps of "
                                f"[{', '.join(map(str, inp.shape))}]")
            return x.reshape(-1, 1, *inp.shape), str(path)
        if x.numel() != want:
            raise DataError(f"{path} holds {x.numel()} values but input '{inp.name}' is "
                            f"[{', '.join(map(str, inp.shape))}] ({want} values)")
        return x.reshape(1, *inp.shape), str(path)
    raw = load_source(source)
    layout = fit(raw, inp.name, inp.shape, inp.encoding, net.name)
    from .data import Tensors

    test = Tensors(raw.x_test, raw.y_test, layout)
    if not 0 <= index < len(test):
        raise DataError(f"--index {index} is out of range: {raw.name} has {len(test)} test samples")
    x, y = test.batch(torch.tensor([index]))
    return x, f"{raw.name} test sample {index} (label {int(y[0])})"


def _fits_digits(inp: ir.LInput) -> bool:
    return inp.encoding not in ("none", "delta") and math.prod(inp.shape) == 64


def simulate(spec: Path, network: str | None = None, steps: int | None = None, source: str | None = None,
             index: int = 0, checkpoint: Path | None = None, seed: int = 0) -> Simulation:
    """Run the network on one sample and record every layer's spikes and membrane."""
    from .. import compile_lowered, load_lowered
    from ..names import class_name

    lowered = load_lowered(spec)
    net = select_network(lowered, network)
    inp = single_input(net, "simulate")
    if steps is not None and steps < 1:
        raise SetupError("--steps must be at least 1")
    outputs: list[ir.LOutput] = []
    plan: list[tuple[str, int, str | None, int | None, int | None]] = []  # layer, size, var, spike idx, state idx
    for i, layer in enumerate(net.layers):
        neuron = lowered.neurons.get(layer.neuron)
        var = _membrane(neuron)
        spike_at = state_at = None
        if neuron is not None and neuron.spike is not None:
            spike_at = len(outputs)
            outputs.append(ir.LOutput(name=f"sim{i}_spike", layer=layer.name, var="spike", readout="trace"))
        if var is not None:
            state_at = len(outputs)
            outputs.append(ir.LOutput(name=f"sim{i}_state", layer=layer.name, var=var, readout="trace"))
        plan.append((layer.name, math.prod(layer.shape), var, spike_at, state_at))
    sequence = inp.encoding in ("none", "delta")
    update: dict[str, object] = {"outputs": tuple(outputs)}
    if steps is not None and not sequence:
        update["steps"] = steps
    recording = net.model_copy(update=update)
    module = compile_lowered(with_network(lowered, recording), tag="_simulate")
    torch.manual_seed(seed)
    model = getattr(module, class_name(net.name))()
    notes: list[str] = []
    if checkpoint is not None:
        from .checkpoint import CheckpointError, load_checkpoint, load_table

        saved = load_checkpoint(checkpoint)
        notes = differences(saved["fingerprint"], fingerprint(lowered, net, model), limit=6)
        where = f"{checkpoint} does not fit network '{net.name}'"
        try:
            load_table(model, [t.key for t in table(net)], saved["model"], where)
        except CheckpointError:
            if not notes:
                raise
            raise CheckpointError(f"{where}: {'; '.join(notes)}") from None
    x, desc = _sample(source, index, inp, net, steps, seed)
    if sequence and steps is not None:
        x = x[:steps]
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        result = model(x)
    sim = Simulation(net.name, int(result[0].shape[0]) if outputs else 0, desc, kernels=kernel_line(model, "cpu"))
    if notes:
        sim.notes.append(f"the spec differs from the one {checkpoint} was trained with ({'; '.join(notes)}); "
                         "simulated with the spec's values")
    for name, size, var, spike_at, state_at in plan:
        spikes = result[spike_at][:, 0].reshape(-1, size).numpy() if spike_at is not None else None
        state = result[state_at][:, 0].reshape(-1, size).numpy() if state_at is not None else None
        sim.layers.append(LayerRecord(name, size, var or "", spikes, state))
    return sim


def format_counts(sim: Simulation) -> str:
    """A table of spike counts per layer."""
    width = max([len("layer"), *(len(la.name) for la in sim.layers)])
    lines = [f"{sim.network}: {sim.steps} steps, input {sim.input_desc}", *([sim.kernels] if sim.kernels else []),
             f"{'layer':<{width}}  {'neurons':>8}  {'spikes':>8}  {'spikes/neuron/step':>18}"]
    for la in sim.layers:
        if la.spikes is None:
            lines.append(f"{la.name:<{width}}  {la.neurons:>8}  {'-':>8}  {'(no spikes: ' + la.var + ')':>18}")
            continue
        rate = la.count / max(1, la.neurons * sim.steps)
        lines.append(f"{la.name:<{width}}  {la.neurons:>8}  {la.count:>8}  {rate:>18.4f}")
    return "\n".join(lines)


def plot(sim: Simulation, path: Path, neurons: int = 5) -> Path:
    """Save a figure: per layer a spike raster and the membrane traces of a few neurons."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SetupError("plots need matplotlib: pip install 'snnspec[plot]'") from e
    rows = max(1, len(sim.layers))
    fig = Figure(figsize=(11, 2.4 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 2, squeeze=False, width_ratios=[3, 2])
    t_axis = np.arange(sim.steps)
    for row, la in zip(axes, sim.layers, strict=False):
        raster, traces = row
        if la.spikes is not None:
            t, n = np.nonzero(la.spikes)
            raster.scatter(t, n, s=max(2.0, 40.0 / math.sqrt(la.neurons)), marker="|", color="black", linewidths=0.8)
            raster.set_title(f"{la.name}: {la.count} spikes, {la.neurons} neurons", fontsize=10, loc="left")
            # the neurons that spiked most; if none did, those whose membrane moved most
            score = la.spikes.sum(0) if la.count or la.state is None else np.ptp(la.state, axis=0)
            pick = np.argsort(-score, kind="stable")[:neurons]
        else:
            assert la.state is not None
            raster.imshow(la.state.T, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                          extent=(-0.5, sim.steps - 0.5, -0.5, la.neurons - 0.5))
            raster.set_title(f"{la.name}.{la.var} (non-spiking), {la.neurons} neurons", fontsize=10, loc="left")
            pick = np.argsort(-np.ptp(la.state, axis=0), kind="stable")[:neurons]
        raster.set_xlim(-0.5, sim.steps - 0.5)
        raster.set_ylim(-0.5, la.neurons - 0.5)
        raster.set_ylabel("neuron")
        if la.state is not None:
            for k in sorted(pick.tolist()):
                traces.plot(t_axis, la.state[:, k], linewidth=1.0, label=f"#{k}")
            traces.set_title(f"{la.name}.{la.var}", fontsize=10, loc="left")
            traces.legend(fontsize=7, loc="upper right", ncols=min(len(pick), 5), frameon=False)
        else:
            traces.set_axis_off()
        traces.set_xlim(-0.5, sim.steps - 0.5)
    axes[-1][0].set_xlabel("step")
    axes[-1][1].set_xlabel("step")
    fig.suptitle(f"{sim.network}: {sim.input_desc}", fontsize=11)
    write_atomic(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".").lower() or "png", dpi=110))
    return path
