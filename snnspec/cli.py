"""The command line: `snnspec check | show | schema | build | train | simulate` (typer, rich for output)."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from . import ir
from .diagnostics import Diagnostic, SpecError, render, to_json
from .files import FileProblem, check_target, write_atomic

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


def _one_of(value: str, choices: tuple[str, ...]) -> str:
    """A choice option's value, or a usage error listing the choices."""
    if value not in choices:
        raise typer.BadParameter(f"'{value}' is not one of: {', '.join(choices)}")
    return value


def _file_error(problem: FileProblem) -> NoReturn:
    """A file that cannot be written: one line, exit 1."""
    err.print(f"error: {problem}", markup=False)
    raise typer.Exit(1)


def _writable(path: Path | None) -> Path | None:
    """Refuse an output that exists and is not a regular file before doing the work that fills it."""
    if path is not None and str(path) != "-":
        try:
            check_target(path)
        except FileProblem as problem:
            _file_error(problem)
    return path


def _lowered_or_exit(path: Path) -> ir.LoweredSpec:
    from . import load_lowered

    try:
        return load_lowered(path)
    except SpecError as e:
        _print_diagnostics(e.diagnostics)
        raise typer.Exit(1) from None


@app.command()
def check(files: Annotated[list[Path], typer.Argument(help="Spec files to check.", show_default=False)],
          format: Annotated[str, typer.Option("--format", help="text or json",
                                              callback=lambda value: _one_of(value, ("text", "json")))] = "text",
          ) -> None:
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


def _backend(value: str) -> str:
    from .emit import BACKENDS  # here: a cached `check` imports no stage

    return _one_of(value, BACKENDS)


@app.command()
def build(file: FileArg,
          target: Annotated[str, typer.Option("--target", "-t", callback=_backend,
                                              help="torch, jax, or summary (a table of each network)")] = "torch",
          output: Annotated[Path | None, typer.Option("--output", "-o", callback=_writable,
                                                      help="Write the code to this file (`-`, or "
                                                      "none: stdout).")] = None,
          ) -> None:
    """Generate code for a spec: a self-contained Python module."""
    from .emit import BackendError, generate

    lowered = _lowered_or_exit(file)
    try:
        source = generate(lowered, target)
    except BackendError as e:
        _print_diagnostics(e.diagnostics)
        raise typer.Exit(1) from None
    if output is None or str(output) == "-":
        sys.stdout.write(source)
        return
    try:
        write_atomic(output, source)
    except FileProblem as problem:
        _file_error(problem)
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


def _learning_rate(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a learning rate: use a positive finite number")
    return value


def _loss(value: str | None) -> str | None:
    if value is not None:
        from .train.losses import LOSSES

        return _one_of(value, tuple(LOSSES))
    return value


def _device(value: str) -> str:
    """auto, cpu, or a CUDA device this machine has."""
    if value in ("auto", "cpu"):
        return value
    if re.fullmatch(r"cuda(:\d+)?", value) is None:
        raise typer.BadParameter(f"'{value}' is not a device: use auto, cpu, cuda or cuda:N")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise typer.BadParameter(f"'{value}': CUDA is not available on this machine (torch {torch.__version__}); "
                                 "use --device cpu or auto")
    index = int(value.partition(":")[2] or 0)
    if index >= count:
        raise typer.BadParameter(f"'{value}': this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return value


def _figure(value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise typer.BadParameter(f"'{value}': name a .png, .svg or .pdf file")
    return _writable(value)


SEED_MAX = 2**63 - 1  # torch.manual_seed takes a 64-bit integer
GRAD_BATCHES = 3  # `--grad-report` without a number


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
    batch: Annotated[int | None, typer.Option("--batch", "--batch-size", help="Batch size over all processes "
                                              "(default: the spec's).", min=1, show_default=False)] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the spec's).", callback=_learning_rate,
                                             show_default=False)] = None,
    loss: Annotated[str | None, typer.Option(help="ce_rate, ce_count, mse_count, ce_max_mem or first_spike "
                                             "(default: the spec's).", callback=_loss, show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the weights, the data order and the encodings.", min=0,
                                      max=SEED_MAX)] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for metrics.json and "
                                                 "checkpoint.pt (default: runs/NETWORK).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint in --out.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the run already in --out (without it, a folder "
                                        "holding a run is refused).")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", callback=_device)] = "auto",
    grad_report: Annotated[int, typer.Option("--grad-report", help="Record the gradient-health report (per "
                                             f"layer) on the first N batches of every epoch (N = {GRAD_BATCHES} "
                                             "when the flag has no number); 0: off.", min=0)] = 0,
    plot: Annotated[Path | None, typer.Option("--plot", "-p", help="With --grad-report: save its figure "
                                              "(PNG, SVG, PDF) here.", callback=_figure, show_default=False)] = None,
    schedule: Annotated[str, typer.Option(help="The learning rate over the run: constant, or cosine (annealed "
                                          "from --lr to 0 over all --epochs, batch by batch).")] = "constant",
) -> None:
    """Train a spec's network on real data: progress, metrics.json and checkpoints in --out.

    Data parallel: torchrun --nproc_per_node=2 -m snnspec train FILE ... (one data shard per process).
    """
    from .train.loop import TrainConfig
    from .train.loop import train as run_training

    config = TrainConfig(spec=file, network=network, data=data, epochs=epochs, batch=batch, lr=lr, loss=loss,
                         seed=seed, out=out_dir, resume=resume, force=force, device=device, grad_report=grad_report,
                         plot=plot, schedule=schedule)
    if plot is not None and not grad_report:
        err.print("error: --plot draws the gradient-health report: give --grad-report too", markup=False)
        raise typer.Exit(2)
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
    except FileProblem as problem:  # metrics.json or checkpoint.pt
        _file_error(problem)
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
                                              callback=_figure, show_default=False)] = None,
    neurons: Annotated[int, typer.Option(help="Membrane traces per layer in the figure.", min=1)] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the weights and the encodings.", min=0, max=SEED_MAX)] = 0,
) -> None:
    """Run a network on one sample: print spike counts per layer, plot rasters and membranes."""
    from .train.simulate import format_counts
    from .train.simulate import plot as save_plot
    from .train.simulate import simulate as run_simulation

    try:
        sim = run_simulation(file, network=network, steps=steps, source=input, index=index,
                             checkpoint=checkpoint, seed=seed)
        for note in sim.notes:
            err.print(f"note: {note}", markup=False)
        out.print(format_counts(sim), markup=False)
        if plot is not None:
            save_plot(sim, plot, neurons=neurons)
            err.print(f"wrote {plot}", markup=False)
    except FileProblem as problem:
        _file_error(problem)
    except SpecError as e:
        _print_diagnostics(e.diagnostics)
        raise typer.Exit(1) from None
    except _user_errors() as e:
        if hasattr(e, "diagnostics"):
            _print_diagnostics(e.diagnostics)
        else:
            err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None


def optional_values(argv: list[str]) -> list[str]:
    """`--grad-report` may come without its number (typer has no optional option values): give it
    the default where the next word is not a number."""
    out = []
    for k, word in enumerate(argv):
        out.append(word)
        if word == "--grad-report" and (k + 1 == len(argv) or not argv[k + 1].isdigit()):
            out.append(str(GRAD_BATCHES))
    return out


def main() -> None:
    try:
        app(args=optional_values(sys.argv[1:]))
    except SpecError as e:  # defensive: commands print their own diagnostics
        _print_diagnostics(e.diagnostics)
        sys.exit(1)

