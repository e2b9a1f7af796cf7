"""Lee, Delbruck & Pfeiffer 2016 ("Training Deep Spiking Neural Networks using Backpropagation",
arXiv 1608.08782) as written in specs/examples/lee2016.snn: the 784-800-10 network on
permutation-invariant MNIST (`permuted:` data source), and the same network on a synthetic
N-MNIST stand-in (`saccades:`, event streams made from MNIST the way N-MNIST was recorded).

Each run is `snnspec train` (through `TrainConfig`, as the CLI runs it) with the spec's own train
block, on all 60,000 training images, tested on all 10,000 after every epoch. The per-epoch test
accuracy comes from the run's metrics.json and is plotted into `--plot` (one line per run found in
`--out`, so runs made by separate invocations share one figure).
`--resume` continues runs in `--out` (an interrupted run keeps its completed epochs).

    python benchmarks/lee2016.py [--data ../shared/data/mnist.npz] [--out runs/lee2016]
        [--runs pimnist saccades] [--epochs E] [--lr X] [--schedule cosine] [--threads 1]
        [--plot docs/img/lee2016_curves.png]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from snnspec.train.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "examples" / "lee2016.snn"
RUNS = {"pimnist": ("LeePIMNIST", "permuted:"), "saccades": ("LeeSaccades", "saccades:")}
PAPER = {"pimnist": 98.77, "saccades": 98.66}  # the paper's PI-MNIST and N-MNIST (real recordings) figures


def curve(out: Path) -> list[float]:
    """Test accuracy (%) after each completed epoch of the run in `out`."""
    metrics = json.loads((out / "metrics.json").read_text())
    return [100 * epoch["test_accuracy"] for epoch in metrics["epochs"]]


def plot(curves: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, values), colour in zip(curves.items(), ("C0", "C1"), strict=False):
        ax.plot(range(1, len(values) + 1), values, "o-", color=colour, label=f"{RUNS[name][0]} ({name})")
        ax.axhline(PAPER[name], color=colour, linestyle=":", linewidth=1,
                   label=f"paper: {PAPER[name]}% ({'PI-MNIST' if name == 'pimnist' else 'real N-MNIST'})")
    ax.set_ylim(top=max(PAPER.values()) + 0.3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%), all 10,000 test images")
    ax.set_title("Lee et al. 2016 as specs/examples/lee2016.snn")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mnist.npz")
    parser.add_argument("--out", type=Path, default=Path("runs/lee2016"))
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=sorted(RUNS))
    parser.add_argument("--epochs", type=int, default=None, help="default: the spec's train block")
    parser.add_argument("--lr", type=float, default=None, help="default: the spec's train block")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    curves = {}
    for name in args.runs:
        network, prefix = RUNS[name]
        out = args.out / name
        start = time.perf_counter()
        result = train(TrainConfig(spec=SPEC, network=network, data=prefix + str(args.data), epochs=args.epochs,
                                   lr=args.lr, schedule=args.schedule, out=out, resume=args.resume,
                                   force=not args.resume, progress=False))
        curves[name] = curve(out)
        print(f"{name}: {network}, {len(curves[name])} epochs, test accuracy by epoch "
              f"{', '.join(f'{a:.2f}' for a in curves[name])}%; final {100 * result.test_accuracy:.2f}% "
              f"(paper {PAPER[name]}%), {time.perf_counter() - start:.0f} s")
    if args.plot is not None:  # every run in --out, also those of earlier invocations
        plot({name: curve(args.out / name) for name in RUNS if (args.out / name / "metrics.json").exists()}, args.plot)


if __name__ == "__main__":
    main()
