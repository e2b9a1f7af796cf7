"""MNIST training: `snnspec train` on specs/examples/mnist_mlp.snn against snnTorch's tutorial-5 loop.

Both train the same network (784-1000-10, Leaky beta 0.95, 25 steps, batch 128) in this one
process, on the same machine, epoch after epoch in turn (snnspec epoch 1, snnTorch epoch 1,
snnspec epoch 2, ...; snnspec continues each time with `--resume`, which is exact), so that
both see the same load. Reported per epoch: test accuracy on all 10,000 test images, wall
seconds of the training pass (evaluation excluded), process CPU seconds, samples/s.

snnTorch's tutorial 5, as published: direct input (the image as a current on every step),
cross-entropy on the output membrane summed over the 25 steps, Adam lr 5e-4 (betas 0.9, 0.999),
shuffled batches of 128 with the last partial batch dropped, and after *every* training batch a
forward pass on one test batch (its printout); measured both as published ("tutorial") and
without that per-batch test pass ("train only", the stricter comparison).

Epoch times on a shared machine swing with its load, so the script first times single training
steps of both, interleaved (`--step-repeats` each, medians): the fairer speed comparison, from
which it also estimates an epoch (469 steps for snnspec, 468 for the tutorial's drop_last).

Optionally (`--csnn`) also specs/examples/csnn.snn for one epoch (target >= 98.5%).

    python benchmarks/train_mnist.py [--data ../shared/data/mnist.npz] [--epochs 3] [--csnn]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from snnspec.train.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist.npz"


class TutorialNet(nn.Module):
    """snnTorch tutorial 5's network, verbatim."""

    def __init__(self, num_steps: int = 25, beta: float = 0.95):
        super().__init__()
        import snntorch as snn

        self.num_steps = num_steps
        self.fc1 = nn.Linear(784, 1000)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(1000, 10)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):  # type: ignore[no-untyped-def]
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for _ in range(self.num_steps):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


class Tutorial:
    """Tutorial 5's training loop, one epoch per call."""

    def __init__(self, x_train, y_train, x_test, y_test, test_batch_each_step: bool, seed: int = 0):  # type: ignore[no-untyped-def]
        torch.manual_seed(seed)
        self.net = TutorialNet()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=5e-4, betas=(0.9, 0.999))
        self.loss = nn.CrossEntropyLoss()
        self.data = (x_train, y_train, x_test, y_test)
        self.test_each = test_batch_each_step
        self.gen = torch.Generator().manual_seed(seed)

    def epoch(self) -> tuple[float, float, int]:
        x_train, y_train, x_test, y_test = self.data
        order = torch.randperm(len(x_train), generator=self.gen)
        batches = [b for b in order.split(128) if len(b) == 128]  # drop_last=True
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches:
            self.net.train()
            spk_rec, mem_rec = self.net(x_train[b])
            loss_val = torch.zeros((1,))
            for step in range(self.net.num_steps):
                loss_val += self.loss(mem_rec[step], y_train[b])
            self.opt.zero_grad()
            loss_val.backward()
            self.opt.step()
            if self.test_each:  # the tutorial's per-iteration test-batch printout
                with torch.no_grad():
                    self.net.eval()
                    tb = torch.randint(0, len(x_test), (128,), generator=self.gen)
                    _, test_mem = self.net(x_test[tb])
                    test_loss = torch.zeros((1,))
                    for step in range(self.net.num_steps):
                        test_loss += self.loss(test_mem[step], y_test[tb])
                    test_loss.item()
        return time.perf_counter() - t0, time.process_time() - c0, len(batches) * 128

    @torch.no_grad()
    def accuracy(self) -> float:
        _, _, x_test, y_test = self.data
        self.net.eval()
        correct = 0
        for b in torch.arange(len(x_test)).split(1000):
            spk, _ = self.net(x_test[b])
            correct += int((spk.sum(0).argmax(1) == y_test[b]).sum())
        return correct / len(x_test)


def step_times(data: str, spec: str, repeats: int, seed: int) -> tuple[float, float]:
    """Median seconds of one training step (batch 128, forward, loss, backward, Adam): snnspec's
    generated network with the spec's loss, and the tutorial's loop body; interleaved."""
    import statistics

    import snnspec
    from snnspec.train.losses import make_objective

    with np.load(data) as f:
        x = torch.from_numpy(f["x_train"][:128 * 8]).float().div(255).reshape(-1, 784)
        y = torch.from_numpy(f["y_train"][:128 * 8]).long()
    lowered = snnspec.load_lowered(spec)
    net_ir = next(iter(lowered.networks.values()))
    first, t = net_ir.outputs[0], net_ir.train
    objective = make_objective(t.loss, t.loss_args, first.readout, first.var)
    torch.manual_seed(seed)
    net = getattr(snnspec.compile(spec), net_ir.name)()
    opt = torch.optim.Adam(net.parameters(), lr=t.optimizer_args["lr"])
    tut = TutorialNet()
    topt = torch.optim.Adam(tut.parameters(), lr=5e-4, betas=(0.9, 0.999))
    ce = nn.CrossEntropyLoss()

    def ours(i: int) -> None:
        b = slice(128 * (i % 8), 128 * (i % 8 + 1))
        loss = objective(net(x[b])[0], y[b], net_ir.steps or 25)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def theirs(i: int) -> None:
        b = slice(128 * (i % 8), 128 * (i % 8 + 1))
        _, mem = tut(x[b])
        loss = torch.zeros((1,))
        for step in range(tut.num_steps):
            loss += ce(mem[step], y[b])
        topt.zero_grad()
        loss.backward()
        topt.step()

    a: list[float] = []
    b_: list[float] = []
    for i in range(repeats + 3):
        for fn, acc in ((ours, a), (theirs, b_)):
            t0 = time.perf_counter()
            fn(i)
            if i >= 3:  # warm-up (numba compiles its kernels on first use)
                acc.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--spec", default=str(ROOT / "specs" / "examples" / "mnist_mlp.snn"))
    ap.add_argument("--lr", type=float, default=None, help="override the spec's learning rate")
    ap.add_argument("--loss", default=None, help="override the spec's loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-snntorch", action="store_true", help="skip snnTorch's loops")
    ap.add_argument("--tutorial-as-published", action="store_true",
                    help="also time the tutorial loop with its per-batch test pass")
    ap.add_argument("--csnn", action="store_true", help="also train specs/examples/csnn.snn for one epoch")
    ap.add_argument("--step-repeats", type=int, default=30, help="interleaved single steps to time (0: none)")
    ap.add_argument("--json", default=None, help="write all figures to this file")
    args = ap.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {args.data}")
    results: dict[str, Any] = {"snnspec": [], "snntorch_train_only": [], "snntorch_tutorial": []}
    if args.step_repeats and not args.no_snntorch:
        ours, theirs = step_times(args.data, args.spec, args.step_repeats, args.seed)
        results["step_ms"] = {"snnspec": ours * 1000, "snntorch_tutorial": theirs * 1000}
        print(f"one training step (median of {args.step_repeats}, interleaved): snnspec {ours * 1000:.0f} ms, "
              f"snnTorch tutorial {theirs * 1000:.0f} ms (ratio {ours / theirs:.2f}); per epoch about "
              f"{ours * 469:.0f} s vs {theirs * 468:.0f} s", flush=True)
    tutorials: dict[str, Tutorial] = {}
    if not args.no_snntorch:
        with np.load(args.data) as f:
            xs = [torch.from_numpy(f[k]).float().div(255).reshape(-1, 784) for k in ("x_train", "x_test")]
            ys = [torch.from_numpy(f[k]).long() for k in ("y_train", "y_test")]
        tutorials["snntorch_train_only"] = Tutorial(xs[0], ys[0], xs[1], ys[1], False, args.seed)
        if args.tutorial_as_published:
            tutorials["snntorch_tutorial"] = Tutorial(xs[0], ys[0], xs[1], ys[1], True, args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mnist"
        for epoch in range(1, args.epochs + 1):
            r = train(TrainConfig(Path(args.spec), data=args.data, epochs=epoch, lr=args.lr, loss=args.loss,
                                  seed=args.seed, out=out, resume=epoch > 1, quiet=True, device="cpu"))
            e = r.metrics["epochs"][-1]
            results["snnspec"].append({"epoch": epoch, "test_accuracy": e["test_accuracy"],
                                       "seconds": e["train_seconds"], "cpu_seconds": e["train_cpu_seconds"],
                                       "samples_per_second": e["samples_per_second"]})
            _print("snnspec", results["snnspec"][-1])
            for name, tut in tutorials.items():
                seconds, cpu, n = tut.epoch()
                row = {"epoch": epoch, "test_accuracy": tut.accuracy(), "seconds": seconds, "cpu_seconds": cpu,
                       "samples_per_second": n / seconds}
                results[name].append(row)
                _print(name, row)

    print()
    print(f"{'':22} " + "  ".join(f"epoch {e:<14}" for e in range(1, args.epochs + 1)))
    for name, rows in results.items():
        if rows and isinstance(rows, list):
            cells = "  ".join(f"{r['test_accuracy']:6.2%} {r['seconds']:6.1f} s  " for r in rows)
            print(f"{name:22} {cells}")
    base = results["snntorch_train_only"]
    if base and results["snnspec"]:
        ratio = [a["seconds"] / b["seconds"] for a, b in zip(results["snnspec"], base, strict=True)]
        cpu_ratio = [a["cpu_seconds"] / b["cpu_seconds"] for a, b in zip(results["snnspec"], base, strict=True)]
        print(f"snnspec / snnTorch (train only) epoch time: wall {', '.join(f'{x:.2f}' for x in ratio)}; "
              f"cpu {', '.join(f'{x:.2f}' for x in cpu_ratio)}")

    if args.csnn:
        with tempfile.TemporaryDirectory() as tmp:
            r = train(TrainConfig(ROOT / "specs" / "examples" / "csnn.snn", data=args.data, epochs=1, seed=args.seed,
                                  out=Path(tmp), quiet=True, device="cpu"))
            e = r.metrics["epochs"][-1]
            results["csnn"] = [{"epoch": 1, "test_accuracy": e["test_accuracy"], "seconds": e["train_seconds"],
                                "cpu_seconds": e["train_cpu_seconds"], "samples_per_second": e["samples_per_second"]}]
            _print("csnn", results["csnn"][0])
    target = results["snnspec"][-1]["test_accuracy"] if results["snnspec"] else 0.0
    print(f"mnist_mlp after {args.epochs} epoch(s): {target:.2%} (target >= 97.50% after 3)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def _print(name: str, row: dict[str, float]) -> None:
    print(f"{name:22} epoch {int(row['epoch'])}: test {row['test_accuracy']:6.2%}  {row['seconds']:6.1f} s "
          f"(cpu {row['cpu_seconds']:6.1f} s)  {row['samples_per_second']:7,.0f} samples/s", flush=True)


if __name__ == "__main__":
    main()
