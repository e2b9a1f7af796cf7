"""Unsupervised STDP on the 8x8 digits: `specs/examples/stdp_digits.snn`, trained without labels.

Trains the STDP layer on the training split (the digits shown one after another in one stream, see
the spec), saves its receptive fields as a PNG grid, then fits the same linear readout (logistic
regression on the layer's spike counts) twice: on the trained layer, and on the same layer with its
initial random weights. Prints both test accuracies, and a third, stricter baseline: the random
weights rescaled so that each neuron's total weight equals the trained one's (the same drive, no
learned structure). About a minute on two cores.

    python benchmarks/stdp_digits.py [--epochs 2] [--seed 0] [--png stdp_digits_fields.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

import snnspec

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "examples" / "stdp_digits.snn"


@dataclass
class Config:
    epochs: int = 2  # passes over the training split
    n_train: int | None = None  # use only the first N training digits (a quick run)
    t_on: int = 40  # steps (ms) a training digit is shown
    t_off: int = 10  # silent steps after it
    rate: float = 0.3  # spike probability per step of a white pixel (pixel / 16 * rate)
    w0: float = 0.2  # initial weights: uniform in [0, w0]
    t_eval: int = 200  # steps a test digit is shown (weights frozen, each digit on its own)
    eval_batch: int = 600  # digits per forward call when testing (memory)
    matched_baseline: bool = True  # also test random weights with the trained layer's drive
    seed: int = 0


@dataclass
class Result:
    accuracy_stdp: float
    accuracy_random: float
    accuracy_random_matched: float | None
    spikes_per_digit_stdp: float
    spikes_per_digit_random: float
    train_seconds: float
    total_seconds: float
    config: dict = field(default_factory=dict)


def load_data(seed: int):
    """The 1797 sklearn digits in [0, 1], split 70/30, stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = digits.target
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=y)
    return x, y, train, test


def spike_stream(images: torch.Tensor, t_on: int, t_off: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Digits [batch, K, 64] as one spike stream [K * (t_on + t_off), batch, 64]: each digit for t_on
    steps (Bernoulli, p = rate * pixel), then t_off silent steps."""
    batch, k, n = images.shape
    p = (images * rate).transpose(0, 1)[:, None].expand(k, t_on, batch, n)
    x = torch.zeros(k, t_on + t_off, batch, n)
    x[:, :t_on] = torch.bernoulli(p, generator=gen)
    return x.reshape(k * (t_on + t_off), batch, n)


def train(net: torch.nn.Module, images: torch.Tensor, cfg: Config, gen: torch.Generator) -> None:
    """Unsupervised: every pass shows the digits in a new order, in one forward call (one stream)."""
    net.train()
    with torch.no_grad():
        for _ in range(cfg.epochs):
            order = torch.randperm(len(images), generator=gen)
            net(spike_stream(images[order][None], cfg.t_on, cfg.t_off, cfg.rate, gen))


def spike_counts(net: torch.nn.Module, images: torch.Tensor, cfg: Config, gen: torch.Generator) -> np.ndarray:
    """Spike counts [digits, neurons], each digit shown on its own for t_eval steps, weights frozen."""
    net.eval()
    out = []
    with torch.no_grad():
        for chunk in images.split(cfg.eval_batch):
            out.append(net(spike_stream(chunk[:, None], cfg.t_eval, 0, cfg.rate, gen)).exc_spike)
    return torch.cat(out).numpy()


def readout_accuracy(features: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Test accuracy of a logistic regression on standardised spike counts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(features[train], y[train])
    return float(clf.score(features[test], y[test]))


def save_fields(before: np.ndarray, after: np.ndarray, path: Path, title: str) -> None:
    """Each neuron's 64 weights as an 8x8 image (dark = strong): before and after learning on one
    scale from 0 to the largest weight, then after learning with each field on its own scale (its
    median to its maximum): STDP raises every pixel digits ever cover, and this view shows what
    tells the fields apart above that common part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = after.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    top = float(max(before.max(), after.max()))
    low, high = np.median(after, 1, keepdims=True), after.max(1, keepdims=True)
    own = np.clip(after - low, 0, None) / np.where(high > low, high - low, 1.0) * top
    fig, panels = plt.subplots(1, 3, figsize=(3 * cols * 0.6 + 0.9, rows * 0.6 + 0.8))
    for panel, w, name in ((panels[0], before, "initial random weights"), (panels[1], after, title),
                           (panels[2], own, "the same, each field from its median to its maximum")):
        grid = np.ones((rows * 9 - 1, cols * 9 - 1)) * np.nan
        for i in range(n):
            r, c = divmod(i, cols)
            grid[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = w[i].reshape(8, 8)
        panel.imshow(np.ma.masked_invalid(grid), cmap="gray_r", vmin=0, vmax=top)
        panel.set_title(name, fontsize=9)
        panel.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(cfg: Config, png: Path | None = None) -> Result:
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y, train_idx, test_idx = load_data(cfg.seed)
    net = snnspec.compile(SPEC).STDPDigits()
    w0 = torch.rand(net.x_exc.weight.shape, generator=gen) * cfg.w0  # nn.Linear's ±1/8 would be half clipped
    net.x_exc.weight = w0.clone()

    t0 = time.perf_counter()
    train(net, x[train_idx[: cfg.n_train]], cfg, gen)
    train_seconds = time.perf_counter() - t0
    w = net.x_exc.weight.clone()
    if png is not None:
        save_fields(w0.numpy(), w.numpy(), png, f"after STDP, {cfg.epochs} pass(es), no labels")

    # the same readout on the same layer: trained, initial random, random with the trained drive
    matched = w0 * (w.sum(1, keepdim=True) / w0.sum(1, keepdim=True))
    acc, rates = {}, {}
    layers = [("stdp", w), ("random", w0)] + [("random_matched", matched)] * cfg.matched_baseline
    for name, weights in layers:
        net.x_exc.weight = weights.clone()
        counts = spike_counts(net, x, cfg, gen)
        acc[name] = readout_accuracy(counts, y, train_idx, test_idx)
        rates[name] = float(counts.sum(1).mean())
    net.x_exc.weight = w
    return Result(acc["stdp"], acc["random"], acc.get("random_matched"), rates["stdp"], rates["random"],
                  train_seconds, time.perf_counter() - start, asdict(cfg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=Config.epochs)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--png", type=Path, default=Path("stdp_digits_fields.png"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster than two fighting over small ops
    cfg = Config(epochs=args.epochs, n_train=args.n_train, seed=args.seed)
    r = run(cfg, args.png)
    print(f"trained on {cfg.n_train or 'all'} training digits x {cfg.epochs} pass(es) in {r.train_seconds:.1f} s")
    print(f"readout on the STDP layer:           {r.accuracy_stdp:.1%}  ({r.spikes_per_digit_stdp:.0f} spikes/digit)")
    print(f"readout on the initial random layer: {r.accuracy_random:.1%}  "
          f"({r.spikes_per_digit_random:.0f} spikes/digit)")
    if r.accuracy_random_matched is not None:
        print(f"random weights, trained drive:       {r.accuracy_random_matched:.1%}")
    print(f"receptive fields: {args.png}   (total {r.total_seconds:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(asdict(r), indent=2))


if __name__ == "__main__":
    main()
