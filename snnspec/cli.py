"""The command line: `snnspec check | show | schema | build | train | simulate` (typer, rich for output)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import ir
from .diagnostics import Diagnostic, SpecError, render, to_json

app = typer.Typer(help="snnspec: compile spiking neural network specs to PyTorch and JAX.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

FileArg = Annotated[Path, typer.Argument(help="A .snn spec file.", show_default=False)]


def _print_diagnostics(items: list[Diagnostic]) -> None:
    if items:
        err.print(render(items), markup=False)
        n_err = sum(d.severity == "error" for d in items)
        n_warn = len(items) - n_err
        err.print(f"{n_err} error(s), {n_warn} warning(s)", markup=False)


def _lowered_or_exit(path: Path) -> ir.LoweredSpec:
    from . import load_lowered

    try:
        return load_lowered(path)
    except SpecError as e:
        _print_diagnostics(e.diagnostics)
        raise typer.Exit(1) from None


@app.command()
def check(files: Annotated[list[Path], typer.Argument(help="Spec files to check.", show_default=False)],
          format: Annotated[str, typer.Option("--format", help="text or json")] = "text") -> None:
    """Check spec files; exit 1 if any has an error."""
    from . import check as check_spec

    items: list[Diagnostic] = []
    for f in files:
        items += check_spec(f)
    if format == "json":
        out.print(to_json(items), markup=False)
    else:
        _print_diagnostics(items)
        if not any(d.severity == "error" for d in items):
            err.print(f"ok: {len(files)} file(s) checked", markup=False)
    raise typer.Exit(1 if any(d.severity == "error" for d in items) else 0)


@app.command()
def show(file: FileArg) -> None:
    """Show each neuron's integration method, lowered updates and surrogate gradient."""
    lowered = _lowered_or_exit(file)
    out.print(format_lowered(lowered), markup=False)


def format_lowered(lowered: ir.LoweredSpec) -> str:
    from .expr import format_expr  # here: a cached `check` needs no expressions

    lines: list[str] = []
    for n in lowered.neurons.values():
        lines.append(f"neuron {n.name}  ({n.file})")
        for eq in n.equations:
            lines.append(f"  | {eq}")
        lines.append(f"  method: {n.method or 'none (discrete updates only)'}")
        if n.method_note:
            lines.append(f"  note: {n.method_note}")
        for p in n.params:
            lines.append(f"  param {p.name} = {format_expr(p.default)}")
        for x in n.lets:
            lines.append(f"  let {x.var} = {format_expr(x.value)}")
        for u in n.updates:
            lines.append(f"  {u.var}[t+1] = {format_expr(u.value)}")
        if n.spike is not None:
            cmp = ">=" if n.spike.inclusive else ">"
            lines.append(f"  spike = heaviside({n.spike.grad_var} {cmp} 0) where {n.spike.grad_var} = "
                         f"{format_expr(n.spike.x)}")
            lines.append(f"  d spike / d {n.spike.grad_var} = {format_expr(n.spike.grad)}   [{n.spike.surrogate}]")
        if n.reset is not None:
            mode = "with gradient" if n.reset.with_gradient else "detached"
            for u in n.reset.updates:
                lines.append(f"  on spike ({mode}): {u.var} = {format_expr(u.value)}")
        if n.refractory is not None:
            lines.append(f"  refractory: {format_expr(n.refractory)}")
        lines.append("")
    for net in lowered.networks.values():
        lines.append(f"network {net.name}: dt = {net.dt:g}{' s' if net.dt_has_unit else ' (steps)'}, "
                     f"steps = {net.steps}")
        for group in net.groups:
            mode = "step-major" if len(group) > 1 or any(la.step_major for la in net.layers if la.name in group) \
                else "layer-major"
            shapes = ", ".join(f"{la.name}{list(la.shape)}" for la in net.layers if la.name in group)
            lines.append(f"  run {mode}: {shapes}")
        for path in net.paths:
            ops = " -> ".join(f"{o.name}{list(o.out_shape)}" for o in path.ops)
            recurrent = "  (recurrent)" if path.recurrent else ""
            lines.append(f"  path {path.src} -> {ops} -> {path.dst}.{path.dst_input}{recurrent}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


@app.command()
def build(file: FileArg,
          target: Annotated[str, typer.Option("--target", "-t",
                                              help="torch, jax, or summary (a table of each network)")] = "torch",
          output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
          ) -> None:
    """Generate code for a spec: a self-contained Python module."""
    from .emit import BackendError, generate

    lowered = _lowered_or_exit(file)
    try:
        source = generate(lowered, target)
    except BackendError as e:
        _print_diagnostics(e.diagnostics)
        raise typer.Exit(1) from None
    if output is None:
        sys.stdout.write(source)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(source, encoding="utf-8")
    tmp.replace(output)
    err.print(f"wrote {output}", markup=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the IR (the checked spec and the lowered spec)."""
    out.print(json.dumps(ir_schema(), indent=2), markup=False)


def ir_schema() -> dict[str, object]:
    from pydantic import TypeAdapter

    return TypeAdapter(ir.Spec | ir.LoweredSpec).json_schema()


def _user_errors() -> tuple[type[Exception], ...]:
    from .emit import BackendError
    from .train.data import DataError
    from .train.losses import LossError
    from .train.model import SetupError

    return DataError, LossError, SetupError, BackendError


@app.command()
def train(
    file: FileArg,
    network: Annotated[str | None, typer.Option("--network", "-n", help="The network to train (default: the "
                                                "only one in FILE).", show_default=False)] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="'digits' (scikit-learn's bundled 8x8 "
                                             "digits, the default), a Keras-layout .npz (several joined by "
                                             "commas) or a folder of IDX files.", show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the spec's train block).", min=1,
                                               show_default=False)] = None,
    batch: Annotated[int | None, typer.Option(help="Batch size over all processes (default: the spec's).",
                                              min=1, show_default=False)] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the spec's).", show_default=False)] = None,
    loss: Annotated[str | None, typer.Option(help="ce_rate, ce_count, mse_count, ce_max_mem or first_spike "
                                             "(default: the spec's).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the weights, the data order and the encodings.", min=0)] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for metrics.json and "
                                                 "checkpoint.pt (default: runs/NETWORK).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint in --out.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Train a spec's network on real data: progress, metrics.json and checkpoints in --out.

    Data parallel: torchrun --nproc_per_node=2 -m snnspec train FILE ... (one data shard per process).
    """
    from .train.loop import TrainConfig
    from .train.loop import train as run_training

    config = TrainConfig(spec=file, network=network, data=data, epochs=epochs, batch=batch, lr=lr, loss=loss,
                         seed=seed, out=out_dir, resume=resume, device=device)
    try:
        run_training(config)
    except SpecError as e:
        _print_diagnostics(e.diagnostics)
        raise typer.Exit(1) from None
    except _user_errors() as e:
        if hasattr(e, "diagnostics"):
            _print_diagnostics(e.diagnostics)
        else:
            err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted; the last checkpoint is intact: run again with --resume to continue", markup=False)
        raise typer.Exit(130) from None


@app.command()
def simulate(
    file: FileArg,
    network: Annotated[str | None, typer.Option("--network", "-n", help="The network (default: the only one).",
                                                show_default=False)] = None,
    steps: Annotated[int | None, typer.Option(help="Number of steps (default: the spec's).", min=1,
                                              show_default=False)] = None,
    input: Annotated[str | None, typer.Option("--input", "-i", help="'random', a .npy sample, or a data source "
                                              "as for train ('digits', .npz, IDX folder; --index picks the test "
                                              "sample). Default: digits if they fit the input, else random.",
                                              show_default=False)] = None,
    index: Annotated[int, typer.Option(help="Which test sample of a data source.", min=0)] = 0,
    checkpoint: Annotated[Path | None, typer.Option(help="Weights from a snnspec train checkpoint.pt "
                                                    "(default: the spec's initialisation).",
                                                    show_default=False)] = None,
    plot: Annotated[Path | None, typer.Option("--plot", "-p", help="Save a figure (PNG, SVG, PDF) here.",
                                              show_default=False)] = None,
    neurons: Annotated[int, typer.Option(help="Membrane traces per layer in the figure.", min=1)] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the weights and the encodings.", min=0)] = 0,
) -> None:
    """Run a network on one sample: print spike counts per layer, plot rasters and membranes."""
    from .train.simulate import format_counts
    from .train.simulate import plot as save_plot
    from .train.simulate import simulate as run_simulation

    try:
        sim = run_simulation(file, network=network, steps=steps, source=input, index=index,
                             checkpoint=checkpoint, seed=seed)
        out.print(format_counts(sim), markup=False)
        if plot is not None:
            save_plot(sim, plot, neurons=neurons)
            err.print(f"wrote {plot}", markup=False)
    except SpecError as e:
        _print_diagnostics(e.diagnostics)
        raise typer.Exit(1) from None
    except _user_errors() as e:
        if hasattr(e, "diagnostics"):
            _print_diagnostics(e.diagnostics)
        else:
            err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None


def main() -> None:
    try:
        app()
    except SpecError as e:  # defensive: commands print their own diagnostics
        _print_diagnostics(e.diagnostics)
        sys.exit(1)

