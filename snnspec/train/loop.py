"""`snnspec train`: the training loop, checkpoints, metrics, resume and data parallelism.

One epoch: the training set in an order fixed by (seed, epoch), in batches of `batch`; forward,
the loss of the first output (losses.py), backward, optimiser step; then the test set. After
every epoch the process of rank 0 writes `checkpoint.pt`, then `metrics.json` (checkpoint.py:
each atomically, the checkpoint checksummed), unless the weights are no longer finite: a run
that diverged stops with an error and keeps the last good checkpoint.

The output folder belongs to one run: a new run refuses a folder that holds one unless told
`--resume` (continue it) or `--force` (replace it), and removes the temporaries a killed run left.

Determinism and resume: the global RNG is reseeded from (seed, epoch, rank) at the start of
every epoch and of every evaluation (it drives `rate` encoding and dropout), and the batch order
comes from its own generator seeded by (seed, epoch). A checkpoint holds the parameter-table
tensors, the optimiser state, the epoch, the RNG states (torch, numpy, python), the settings and
the spec's fingerprint (fingerprint.py), so `--resume` continues from the last completed epoch
and ends with the same weights as an uninterrupted run; it refuses, saying what differs, when
the spec or a setting other than the number of epochs changed. `metrics.json` is rewritten from
the checkpoint on resume (the checkpoint is the record of what was trained).

Data parallelism: under `torchrun --nproc_per_node=N -m snnspec train ...` (or any launcher
that sets WORLD_SIZE, RANK and MASTER_ADDR/PORT) each process joins a process group (gloo on
CPU, NCCL on GPU) and the model is wrapped in DistributedDataParallel. Every global batch of
`batch` samples is split across the processes; each weighs its loss by its share, so the
averaged gradient is the gradient of the whole batch and N processes follow the same path as
one, up to float rounding (and `rate` encoding, whose random draws differ per process).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import ir
from .checkpoint import (
    CHECKPOINT,
    METRICS,
    CheckpointError,
    clean_temporaries,
    load_checkpoint,
    load_table,
    non_finite,
    rng_state,
    save_checkpoint,
    save_json,
    set_rng_state,
    table_state,
)
from .data import TRANSFORMS, DataError, Layout, RawData, Tensors, data_digest, fit, load_source, prepare
from .fingerprint import differences, fingerprint, table
from .health import GradRecorder, HealthReport
from .health_show import merge
from .health_show import plot as plot_health
from .health_show import table as health_table
from .kernels import kernel_line
from .losses import Objective, make_objective
from .model import SetupError, select_network, single_input

# settings a resumed run must share with the run that wrote the checkpoint (epochs may change; the
# data may move, its content may not)
RESUME_KEYS = ("network", "data_sha256", "train_limit", "test_limit", "seed", "batch", "loss", "loss_args",
               "optimizer", "optimizer_args", "schedule")
# what a checkpoint written before a setting existed was trained with
_RESUME_DEFAULTS = {"schedule": "constant"}
SCHEDULES = ("constant", "cosine")


class DivergedError(SetupError):
    """Training produced weights that are not finite (a learning rate too high, most often)."""


@dataclass
class TrainConfig:
    """What `snnspec train` takes; `None` means the spec's `train` block (or its default)."""

    spec: Path
    network: str | None = None
    data: str | None = None
    epochs: int | None = None
    batch: int | None = None
    lr: float | None = None
    loss: str | None = None
    seed: int = 0
    out: Path | None = None
    resume: bool = False
    force: bool = False             # replace the run in `out` (without it, a folder holding one is refused)
    device: str = "auto"
    quiet: bool = False
    progress: bool = True
    train_limit: int | None = None   # use only the first N training / test samples (smoke tests)
    test_limit: int | None = None
    grad_report: int = 0             # record the gradient-health report (health.py) on the first N batches of an epoch
    plot: Path | None = None         # with grad_report: its figure
    schedule: str = "constant"       # the learning rate over the run: constant, or cosine annealing to 0


@dataclass
class TrainResult:
    test_accuracy: float
    metrics: dict[str, Any]
    model: nn.Module
    out: Path


@dataclass
class _Setup:
    lowered: ir.LoweredSpec
    net_ir: ir.LNetwork
    cls: type[nn.Module]
    objective: Objective
    raw: RawData
    layout: Layout
    train: Tensors
    test: Tensors
    settings: dict[str, Any]
    steps: int | None          # fixed number of steps, or None (sequence inputs: from the data)
    classes: int


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    owned: bool = False         # we created the process group (and destroy it)

    @classmethod
    def from_env(cls, device: torch.device) -> _Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        owned = False
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            owned = True
        return cls(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), owned)

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


def setup(config: TrainConfig) -> _Setup:
    """Load the spec, choose the network, bind the loss, read and fit the data, build the class.
    Raises `SpecError`/`BackendError` (diagnostics) or `SetupError`/`DataError`/`LossError`."""
    from .. import compile_lowered, load_lowered
    from ..names import class_name

    lowered = load_lowered(config.spec)
    net_ir = select_network(lowered, config.network)
    inp = single_input(net_ir, "train")
    first = net_ir.outputs[0]
    layer = next(la for la in net_ir.layers if la.name == first.layer)
    neuron = lowered.neurons.get(layer.neuron)
    spiking = neuron is None or neuron.spike is not None
    t = net_ir.train
    loss = config.loss or t.loss
    loss_args = dict(t.loss_args) if loss == t.loss else {}
    objective = make_objective(loss, loss_args, first.readout, first.var, f"the first output '{first.name}'", spiking)
    optimizer_args = dict(t.optimizer_args)
    if config.lr is not None:
        optimizer_args["lr"] = config.lr
    settings: dict[str, Any] = {
        "network": net_ir.name, "data": _source_name(config.data), "train_limit": config.train_limit,
        "test_limit": config.test_limit, "seed": config.seed,
        "batch": config.batch or t.batch, "epochs": config.epochs or t.epochs,
        "loss": loss, "loss_args": dict(objective.args), "optimizer": t.optimizer, "optimizer_args": optimizer_args,
        "schedule": config.schedule,
    }
    if config.schedule not in SCHEDULES:
        raise SetupError(f"unknown --schedule '{config.schedule}'; use {' or '.join(SCHEDULES)}")
    for key in ("batch", "epochs"):
        if settings[key] < 1:
            raise SetupError(f"--{key} must be at least 1")
    raw = load_source(config.data)
    if config.train_limit is not None or config.test_limit is not None:
        raw = replace(raw, x_train=raw.x_train[:config.train_limit], y_train=raw.y_train[:config.train_limit],
                      x_test=raw.x_test[:config.test_limit], y_test=raw.y_test[:config.test_limit])
    settings["data_sha256"] = data_digest(raw)
    layout = fit(raw, inp.name, inp.shape, inp.encoding, net_ir.name)
    classes = math.prod(layer.shape)
    top = int(max(raw.y_train.max(initial=0), raw.y_test.max(initial=0)))
    if top >= classes:
        raise DataError(f"{raw.name} has labels up to {top} but the first output '{first.name}' "
                        f"({first.layer}.{first.var}) has {classes} neuron(s); it needs one per class")
    module = compile_lowered(lowered)
    cls = getattr(module, class_name(net_ir.name))
    train_t, test_t = prepare(raw, layout)
    steps = None if layout.sequence else net_ir.steps
    return _Setup(lowered, net_ir, cls, objective, raw, layout, train_t, test_t, settings, steps, classes)


def _source_name(data: str | None) -> str:
    if data is None or data == "digits":
        return "digits"
    for prefix in TRANSFORMS:
        if data.startswith(prefix):
            return prefix + _source_name(data[len(prefix):])
    return ",".join(str(Path(p.strip()).resolve()) for p in data.split(",") if p.strip())


def make_optimizer(name: str, args: dict[str, float], params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if not params:
        raise SetupError("the network has no trainable parameters (every path is frozen or plastic)")
    if name == "adam":
        return torch.optim.Adam(params, lr=args.get("lr", 5e-4), weight_decay=args.get("weight_decay", 0.0))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=args.get("lr", 5e-4), weight_decay=args.get("weight_decay", 0.01))
    if name == "sgd":
        return torch.optim.SGD(params, lr=args.get("lr", 0.01), momentum=args.get("momentum", 0.0),
                               weight_decay=args.get("weight_decay", 0.0))
    raise SetupError(f"unknown optimizer '{name}'; use adam, adamw or sgd")


def set_cosine_lr(opt: torch.optim.Optimizer, args: dict[str, float], progress: float) -> None:
    """Cosine annealing (as torch's CosineAnnealingLR to 0 over the run), from where the run is (0 to 1), so a
    resumed run continues on the same curve without a scheduler's state."""
    base = args.get("lr", opt.defaults["lr"])
    for group in opt.param_groups:
        group["lr"] = base * (1 + math.cos(math.pi * progress)) / 2


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SetupError(f"unknown device '{name}' (use auto, cpu or cuda)") from None


# ---- the loop ---------------------------------------------------------------------------------


def _seed(seed: int, *parts: int) -> int:
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


def _unused_parameters(net: nn.Module, data: Tensors, objective: Objective, steps: int | None,
                       device: torch.device) -> bool:
    """Whether some trainable parameter gets no gradient from the loss (DDP must then look for
    unused parameters every step). One small forward/backward in eval mode; no state changes."""
    was_training = net.training
    net.eval()
    x, y = data.batch(torch.arange(min(2, len(data))), device)
    out = net(x)[0]
    objective(out, y, steps or x.shape[0]).backward()
    unused = any(p.grad is None for p in net.parameters() if p.requires_grad)
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    return unused


class _Reporter:
    """Console output of rank 0: a header, a progress bar per epoch, a line per epoch."""

    def __init__(self, enabled: bool, progress: bool):
        from rich.console import Console

        self.console = Console(highlight=False, soft_wrap=True)
        self.enabled = enabled
        self.progress_enabled = enabled and progress and self.console.is_terminal

    def line(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, markup=False)

    def show(self, renderable: Any) -> None:
        if self.enabled:
            self.console.print(renderable)

    def bar(self, epoch: int, epochs: int, total: int):  # type: ignore[no-untyped-def]
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(
            TextColumn(f"epoch {epoch:>{len(str(epochs))}}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.2%}  "
                       "{task.fields[rate]:>7,.0f} samples/s"),
            TimeElapsedColumn(), console=self.console, transient=True, disable=not self.progress_enabled,
        ), total


def train(config: TrainConfig) -> TrainResult:
    """Train a spec's network; see the module docstring. Returns the final metrics and model."""
    device = pick_device(config.device)
    dist = _Dist.from_env(device)
    try:
        return _train(config, device, dist)
    finally:
        dist.close()


def _train(config: TrainConfig, device: torch.device, dist: _Dist) -> TrainResult:
    if device.type == "cuda" and dist.world > 1:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    s = setup(config)
    settings = s.settings
    epochs, batch, seed = settings["epochs"], settings["batch"], config.seed
    report = _Reporter(enabled=dist.rank == 0 and not config.quiet, progress=config.progress)
    out_dir = config.out or Path("runs") / s.net_ir.name
    ckpt_path, metrics_path = out_dir / CHECKPOINT, out_dir / METRICS

    _claim(out_dir, config, dist.rank == 0, report)

    torch.manual_seed(seed)
    net = s.cls().to(device)
    keys = [t.key for t in table(s.net_ir)]
    spec_print = fingerprint(s.lowered, s.net_ir, net)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(settings["optimizer"], settings["optimizer_args"], params)
    model: nn.Module = net
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        unused = _unused_parameters(net, s.train, s.objective, s.steps, device)
        model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=unused)

    history: list[dict[str, Any]] = []
    start = 0
    if config.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        changed = resume_differences(state, settings, spec_print)
        if changed:
            raise CheckpointError(f"cannot resume from {ckpt_path}: {'; '.join(changed)}. Resume with the same spec "
                                  "and options (only --epochs and --device may change), start over with --force, "
                                  "or choose another --out")
        load_table(net, keys, state["model"], f"{ckpt_path} does not fit network '{s.net_ir.name}'")
        try:
            opt.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{ckpt_path}: its optimiser or RNG state does not load "
                                  f"({type(e).__name__}: {e})") from None
        start = state["epoch"]
        history = list(state["metrics"]["epochs"])
    elif config.resume:
        report.line(f"no checkpoint in {out_dir}; starting from scratch")

    n_params = sum(p.numel() for p in params)
    opt_args = ", ".join(f"{k}={v:g}" for k, v in settings["optimizer_args"].items() if v or k == "lr")
    shape = "x".join(map(str, s.layout.input_shape))
    report.line(f"{s.net_ir.name} ({config.spec}): {n_params:,} trainable parameters, input [{shape}] "
                f"encode {s.net_ir.inputs[0].encoding}, "
                + (f"{s.steps} steps" if s.steps else f"{s.layout.steps} steps (from the data)"))
    report.line(f"data {s.raw.name}: {len(s.train):,} train / {len(s.test):,} test; loss {settings['loss']}, "
                f"{settings['optimizer']}({opt_args})"
                + (f", {settings['schedule']} schedule" if settings["schedule"] != "constant" else "")
                + f", batch {batch}, {epochs} epoch{'s' * (epochs != 1)}, seed {seed}"
                + (f", {dist.world} processes" if dist.world > 1 else "") + f", device {device}")
    report.line(kernel_line(net, device))
    if start:
        report.line(f"resuming from {ckpt_path} after epoch {start}")
    if start >= epochs and history:
        report.line(f"already trained for {start} epoch(s); nothing to do")

    metrics: dict[str, Any] = {"spec": str(config.spec), "network": s.net_ir.name, "world_size": dist.world,
                               "spec_sha256": spec_print["digest"], "settings": settings, "epochs": history}
    if history:
        metrics["test_accuracy"] = history[-1]["test_accuracy"]
    if start and dist.rank == 0:
        recorded = _recorded_epochs(metrics_path)
        if recorded != start:
            report.line(f"{metrics_path} recorded {recorded if recorded is not None else 'no readable'} epoch(s), "
                        f"the checkpoint {start}: rewritten from the checkpoint")
        save_json(metrics_path, metrics)
    t_run = time.perf_counter()
    for epoch in range(start, epochs):
        record = _epoch(epoch, epochs, model, net, opt, s, batch, seed, dist, device, report, config.grad_report)
        history.append(record)
        metrics["test_accuracy"] = record["test_accuracy"]
        report.line(f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  loss {record['train_loss']:.4f}  "
                    f"train {record['train_accuracy']:6.2%}  test {record['test_accuracy']:6.2%}  "
                    f"{record['samples_per_second']:>8,.0f} samples/s  {record['train_seconds']:.1f} s")
        _show_health(record, report)
        weights = table_state(net, keys)
        bad = non_finite(weights.items())
        if bad:
            kept = f"{ckpt_path} still holds epoch {epoch}" if ckpt_path.exists() else "no checkpoint was written"
            raise DivergedError(f"training diverged in epoch {epoch + 1}: {'; '.join(bad[:3])} (train loss "
                                f"{record['train_loss']:.4g}); {kept}. Try a lower --lr")
        if dist.rank == 0:  # the checkpoint first: metrics.json never records an epoch it does not hold
            save_checkpoint(ckpt_path, {
                "network": s.net_ir.name, "epoch": epoch + 1, "model": weights, "optimizer": opt.state_dict(),
                "rng": rng_state(), "metrics": metrics, "settings": settings, "fingerprint": spec_print,
            })
            save_json(metrics_path, metrics)
    if config.plot is not None and dist.rank == 0 and any("grad_report" in r for r in history):
        report.line(f"wrote {plot_health(history, s.net_ir.name, config.plot)}")
    ran = epochs - start
    if ran > 0:
        seconds = time.perf_counter() - t_run
        report.line(f"{ran} epoch{'s' * (ran != 1)} in {seconds:.1f} s; checkpoint and metrics in {out_dir}")
    accuracy = history[-1]["test_accuracy"] if history else float("nan")
    metrics["test_accuracy"] = accuracy
    report.line(f"test accuracy: {accuracy * 100:.2f}%")
    return TrainResult(accuracy, metrics, net, out_dir)


def _claim(out: Path, config: TrainConfig, writer: bool, report: _Reporter) -> None:
    """Make `out` this run's folder: refuse another run's without --resume or --force, remove the
    temporaries a killed run left, and under --force the old run's files."""
    if out.exists() and not out.is_dir():
        raise SetupError(f"--out {out} is a file, not a folder")
    if config.resume and config.force:
        raise SetupError("--resume continues the run in --out and --force replaces it: give one of them")
    held = [p.name for p in (out / CHECKPOINT, out / METRICS) if p.exists()]
    if held and not (config.resume or config.force):
        raise SetupError(f"{out} already holds a run ({', '.join(held)}); continue it with --resume, replace it "
                         "with --force, or choose another --out")
    if not writer:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        stale = clean_temporaries(out)
        if config.force or (config.resume and not (out / CHECKPOINT).exists()):
            for name in (CHECKPOINT, METRICS):
                (out / name).unlink(missing_ok=True)
    except OSError as e:
        raise SetupError(f"cannot use --out {out}: {e}") from None
    if stale:
        report.line(f"removed {len(stale)} temporary file(s) that an interrupted run left in {out}")


def resume_differences(state: dict[str, Any], settings: dict[str, Any], spec_print: dict[str, Any]) -> list[str]:
    """Why a checkpoint cannot be resumed by a run with these settings and this spec, in words."""
    old = state["settings"]
    out = []
    for key in RESUME_KEYS:
        was, now = old.get(key, _RESUME_DEFAULTS.get(key)), settings[key]
        if key == "data_sha256" and was != now:
            out.append(f"the checkpoint was trained on other data ({old.get('data')}, sha256 {str(was)[:12]}), "
                       f"this run reads {settings['data']} (sha256 {now[:12]})")
        elif isinstance(now, dict) and isinstance(was, dict):
            out += [f"the checkpoint was trained with {k}={_value(was.get(k))}, this run has {k}={_value(now.get(k))}"
                    for k in sorted(was.keys() | now.keys()) if was.get(k) != now.get(k)]
        elif was != now:
            out.append(f"the checkpoint was trained with {key}={_value(was)}, this run has {key}={_value(now)}")
    changed = differences(state["fingerprint"], spec_print)
    if changed:
        out.append("the spec changed since: " + ", ".join(changed))
    return out


def _value(v: Any) -> str:
    return "(unset)" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _recorded_epochs(path: Path) -> int | None:
    try:
        return len(json.loads(path.read_text())["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _show_health(record: dict[str, Any], report: _Reporter) -> None:
    health = record.get("grad_report")
    if health is None:
        return
    report.show(health_table(HealthReport.from_json(health), f"gradient health, epoch {record['epoch']} "
                             f"(mean of its first {health['batches']} batch(es))"))
    if health["warning"]:
        report.line(f"warning: {health['warning']}")


def _epoch(epoch: int, epochs: int, model: nn.Module, net: nn.Module, opt: torch.optim.Optimizer, s: _Setup,
           batch: int, seed: int, dist: _Dist, device: torch.device, report: _Reporter,
           grad_batches: int = 0) -> dict[str, Any]:
    world, rank = dist.world, dist.rank
    order = torch.randperm(len(s.train), generator=torch.Generator().manual_seed(_seed(seed, epoch, 0)))
    batches = [b for b in order.split(batch) if world == 1 or len(b) >= world]
    torch.manual_seed(_seed(seed, epoch, 1, rank))
    model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    health: list[HealthReport] = []
    progress, total = report.bar(epoch + 1, epochs, len(batches))
    t0 = last = time.perf_counter()
    cpu0 = time.process_time()
    with progress:
        task = progress.add_task("train", total=total, loss=0.0, acc=0.0, rate=0.0)
        for i, b in enumerate(batches):
            local = b.tensor_split(world)[rank] if world > 1 else b
            x, y = s.train.batch(local, device)
            recorder = GradRecorder(net, s.lowered, s.net_ir.name) if i < grad_batches else None
            with recorder or nullcontext():
                out = model(x)[0]
                steps = s.steps or x.shape[0]
                loss = s.objective(out, y, steps)
                opt.zero_grad(set_to_none=True)
                (loss * (len(local) * world / len(b)) if world > 1 else loss).backward()
            if recorder is not None:
                health.append(recorder.report())
            if s.settings["schedule"] == "cosine":
                set_cosine_lr(opt, s.settings["optimizer_args"], (epoch * len(batches) + i) / (epochs * len(batches)))
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(local)
                correct += (s.objective.scores(out, steps).argmax(1) == y).sum()
            seen += len(local)
            now = time.perf_counter()
            if progress.live.is_started and (now - last > 0.25 or i == total - 1):
                last = now
                progress.update(task, completed=i + 1, loss=loss_sum.item() / seen, acc=correct.item() / seen,
                                rate=seen * world / (now - t0))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t0
    train_cpu = time.process_time() - cpu0
    tl, tc, tn = dist.all_sum([loss_sum.item(), float(correct.item()), float(seen)])
    t1 = time.perf_counter()
    el, ec, en = evaluate(net, s, seed, epoch, dist, device, max(batch, 256))
    record: dict[str, Any] = {
        "epoch": epoch + 1, "train_loss": tl / tn, "train_accuracy": tc / tn, "test_loss": el / max(en, 1),
        "test_accuracy": ec / max(en, 1), "train_seconds": train_seconds, "train_cpu_seconds": train_cpu,
        "eval_seconds": time.perf_counter() - t1,
        "samples_per_second": tn / train_seconds, "train_samples": int(tn), "test_samples": int(en),
    }
    if health:
        record["grad_report"] = {**merge(health).to_json(), "batches": len(health)}
    return record


@torch.no_grad()
def evaluate(net: nn.Module, s: _Setup, seed: int, epoch: int, dist: _Dist, device: torch.device, batch: int
             ) -> tuple[float, float, float]:
    """Summed loss, number correct and number of test samples (over all processes)."""
    net.eval()
    torch.manual_seed(_seed(seed, epoch, 2, dist.rank))
    index = torch.arange(len(s.test)).tensor_split(dist.world)[dist.rank]
    loss_sum, correct = 0.0, 0
    for b in index.split(batch):
        x, y = s.test.batch(b, device)
        out = net(x)[0]
        steps = s.steps or x.shape[0]
        loss_sum += float(s.objective(out, y, steps)) * len(b)
        correct += int((s.objective.scores(out, steps).argmax(1) == y).sum())
    net.train()
    a, c, n = dist.all_sum([loss_sum, float(correct), float(len(index))])
    return a, c, n
