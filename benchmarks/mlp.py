"""Training-step speed of a generated spiking MLP against snnTorch and the GEMM floor.

Workloads (DESIGN.md): W1 = 784-1000-10, T=25, B=128; W2 = 700-128-20, T=500, B=32.
Each training step is forward + backward + Adam on the same random input spikes [T, B, in],
with cross-entropy on output spike counts. The "GEMM floor" runs the same matmuls with no
neuron dynamics. All peers run in this one process, interleaved, and we report the median.

    python benchmarks/mlp.py [--workloads W1 W2] [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import snnspec

WORKLOADS = {"W1": (784, 1000, 10, 25, 128), "W2": (700, 128, 20, 500, 32)}

SPEC = """
from "std/neurons.snn" import Leaky
network MLP {{
    input x[{n_in}] encode none
    layer hidden = Leaky(beta = 0.95)[{n_hidden}]
    layer out    = Leaky(beta = 0.95)[{n_out}]
    x      -> dense -> hidden
    hidden -> dense -> out
    output out.spike count
}}
"""


def snnspec_model(n_in: int, n_hidden: int, n_out: int) -> nn.Module:
    module = snnspec.compile(text=SPEC.format(n_in=n_in, n_hidden=n_hidden, n_out=n_out), name="bench_mlp.snn")
    net = module.MLP()
    return _Wrap(net)


class _Wrap(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).out_spike


class SnnTorchMLP(nn.Module):
    """snnTorch tutorial-5 style: Linear + Leaky per step, step-major."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        import snntorch as snn

        self.fc1, self.fc2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)
        self.lif1, self.lif2 = snn.Leaky(beta=0.95), snn.Leaky(beta=0.95)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spikes = []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spikes.append(spk2)
        return torch.stack(spikes).sum(0)


class GemmFloor(nn.Module):
    """The same two matmuls over all T steps, with no neuron dynamics."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x)).sum(0)


def trainer(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def measure(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 3) -> dict[str, float]:
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():  # interleaved, so drift hits every peer alike
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median ms per training step")
    for name in args.workloads:
        n_in, n_hidden, n_out, T, B = WORKLOADS[name]
        x = (torch.rand(T, B, n_in) < 0.1).float()
        y = torch.randint(0, n_out, (B,))
        peers = {
            "GEMM floor": trainer(GemmFloor(n_in, n_hidden, n_out), x, y),
            "snnspec": trainer(snnspec_model(n_in, n_hidden, n_out), x, y),
            "snnTorch": trainer(SnnTorchMLP(n_in, n_hidden, n_out), x, y),
        }
        result = measure(peers, args.repeats)
        floor = result["GEMM floor"]
        print(f"\n{name}: {n_in}-{n_hidden}-{n_out}, T={T}, B={B}")
        for peer, ms in result.items():
            print(f"  {peer:<12} {ms:8.1f} ms   x{ms / floor:5.2f} floor")
        print(f"  snnspec / snnTorch = {result['snnspec'] / result['snnTorch']:.2f}")


if __name__ == "__main__":
    main()
