"""Ledinauskas et al. 2020 ("Training Deep Spiking Neural Networks", arXiv 2006.04436) at this
machine's scale, on Fashion-MNIST: a 22-layer residual SNN (`--network`: DeepResNet of
specs/examples/deep_resnet.snn, one width; StagedResNet of deep_resnet_staged.snn, three stages of
widths and a leaky readout) with a sweep of surrogate widths (fast_sigmoid `slope`, a narrower
surrogate the larger it is), with and without batchnorm on the input currents.

Two parts, each one table and one figure:

1. `gradients`: per-layer norms of d loss / d input current at initialisation against depth, for
   each setting (the paper's diagnostic), on one batch of real training images, averaged over
   `--seeds` weight initialisations (geometric mean); with the per-layer factor `health_warn.trend`
   reads from them and the warning `snnspec train --grad-report` would print.
2. `training`: test accuracy after the same short training for each setting (one epoch on the
   first `--train-limit` training images, tested on the first `--test-limit` test images).

`--full E` then trains the spec's own setting (slope 1, batchnorm) for E epochs on all 60,000
images (`--schedule cosine`: the learning rate annealed to 0) and reports the test accuracy on all
10,000 after each epoch.

The variants are the example's text with `param slope = 1` changed and, without batchnorm, every
`-> batchnorm` removed. Runs on one CPU thread (the figures in docs/papers.md were measured so).

    python benchmarks/ledinauskas2020.py [--network DeepResNet|StagedResNet] [--data-dir ../shared/data]
        [--out runs/ledinauskas2020] [--slopes 0.5 1 2 5 10 25] [--seeds 0 1 2] [--train-limit 6000]
        [--test-limit 2000] [--full E] [--schedule constant|cosine] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import snnspec
from snnspec.train.health import grad_report
from snnspec.train.health_warn import trend
from snnspec.train.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"
# the networks: the 22-layer one of the sweep at one width, and the same depth in three stages of widths
SPECS = {"DeepResNet": EXAMPLES / "deep_resnet.snn", "StagedResNet": EXAMPLES / "deep_resnet_staged.snn"}
DEFAULT_DATA = ROOT.parent / "shared" / "data"
FILES = ("fashion_mnist_train_0.npz", "fashion_mnist_train_1.npz", "fashion_mnist_test.npz")


def variant(network: str, slope: float, batchnorm: bool) -> str:
    """The example's text with another surrogate width and, without `batchnorm`, no batchnorm."""
    text = SPECS[network].read_text()
    assert "param slope = 1 " in text and text.count(" -> batchnorm") >= 21, f"{SPECS[network].name} changed"
    text = text.replace("param slope = 1 ", f"param slope = {slope:g} ")
    return text if batchnorm else text.replace(" -> batchnorm", "")


def setting(slope: float, batchnorm: bool) -> str:
    return f"slope {slope:g}, {'batchnorm' if batchnorm else 'no batchnorm'}"


def gradients(network: str, slope: float, batchnorm: bool, x: torch.Tensor, y: torch.Tensor, seeds: list[int]
              ) -> dict[str, Any]:
    """Per-layer input-current gradient norms at initialisation (geometric mean over `seeds`), the
    loss the cross-entropy of the network's one output (spike counts, or the readout's peak)."""
    lowered = snnspec.load_lowered(text=variant(network, slope, batchnorm), name=SPECS[network].name)
    module = snnspec.compile_lowered(lowered)
    logs: list[list[float]] = []
    warnings = []
    for seed in seeds:
        torch.manual_seed(seed)
        net = getattr(module, network)()
        report = grad_report(net, lowered, x, lambda out: torch.nn.functional.cross_entropy(out[0], y))
        logs.append([math.log(la.current_grad or 1e-300) for la in report.layers])
        warnings.append(report.warning)
    norms = [math.exp(sum(column) / len(column)) for column in zip(*logs, strict=True)]
    factor = trend([(d + 1, g) for d, g in enumerate(norms) if g > 0])
    return {"slope": slope, "batchnorm": batchnorm, "current_grad": norms, "factor_per_layer": factor,
            "warning": warnings[0]}


def short_training(network: str, slope: float, batchnorm: bool, data: str, out: Path, train_limit: int,
                   test_limit: int) -> dict[str, Any]:
    spec = out / f"{SPECS[network].stem}_slope{slope:g}_{'bn' if batchnorm else 'nobn'}.snn"
    spec.write_text(variant(network, slope, batchnorm))
    start = time.perf_counter()
    result = train(TrainConfig(spec=spec, data=data, epochs=1, out=out / spec.stem, force=True, quiet=True,
                               progress=False, train_limit=train_limit, test_limit=test_limit, device="cpu"))
    return {"slope": slope, "batchnorm": batchnorm, "test_accuracy": result.test_accuracy,
            "seconds": time.perf_counter() - start}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, batchnorm in zip(axes, (True, False), strict=True):
        for row in (r for r in rows if r["batchnorm"] == batchnorm):
            depth = range(1, len(row["current_grad"]) + 1)
            ax.semilogy(depth, row["current_grad"], marker=".",
                        label=f"slope {row['slope']:g} ({row['factor_per_layer']:.2f}x / layer)")
        ax.set_title("batchnorm on the input currents" if batchnorm else "no batchnorm")
        ax.set_xlabel("layer (depth)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("|d loss / d input current| at initialisation")
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", choices=sorted(SPECS), default="DeepResNet")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "ledinauskas2020")
    ap.add_argument("--slopes", type=float, nargs="*", default=[0.5, 1, 2, 5, 10, 25])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--train-limit", type=int, default=6000)
    ap.add_argument("--test-limit", type=int, default=2000)
    ap.add_argument("--full", type=int, default=0, metavar="EPOCHS")
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant", help="of --full")
    ap.add_argument("--skip-sweep", action="store_true", help="only the --full training")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    data = ",".join(str(args.data_dir / f) for f in FILES)
    settings = [(s, bn) for bn in (True, False) for s in args.slopes]
    results: dict[str, Any] = {}
    if not args.skip_sweep:
        first = np.load(args.data_dir / FILES[0])
        x = torch.tensor(first["x_train"][:64], dtype=torch.float32).div(255).reshape(64, 1, 28, 28)
        y = torch.tensor(first["y_train"][:64], dtype=torch.long)
        print("1. gradients at initialisation (first 64 training images; geometric mean over seeds "
              f"{args.seeds})")
        print(f"{'setting':28} {'layer 1':>9} {'layer 11':>9} {'layer 22':>9} {'x / layer':>9}  warning")
        rows = []
        for slope, bn in settings:
            row = gradients(args.network, slope, bn, x, y, args.seeds)
            g = row["current_grad"]
            print(f"{setting(slope, bn):28} {g[0]:9.2e} {g[len(g) // 2 - 1]:9.2e} {g[-1]:9.2e} "
                  f"{row['factor_per_layer']:9.2f}  {(row['warning'] or '-').split(':')[0]}")
            rows.append(row)
        plot(rows, args.out / "gradients.png")
        results["gradients"] = rows
        print(f"\n2. one epoch on {args.train_limit} training images, tested on {args.test_limit}")
        results["training"] = []
        for slope, bn in settings:
            row = short_training(args.network, slope, bn, data, args.out, args.train_limit, args.test_limit)
            print(f"{setting(slope, bn):28} test {100 * row['test_accuracy']:6.2f}%  ({row['seconds']:.0f} s)")
            results["training"].append(row)
    if args.full:
        print(f"\n3. the spec's setting (slope 1, batchnorm), {args.full} epochs on all 60,000 images, "
              f"{args.schedule} learning rate")
        result = train(TrainConfig(spec=SPECS[args.network], data=data, epochs=args.full, out=args.out / "full",
                                   force=True, device="cpu", schedule=args.schedule))
        results["full"] = result.metrics
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out / 'results.json'}" + ("" if args.skip_sweep else f" and {args.out / 'gradients.png'}"))


if __name__ == "__main__":
    main()
