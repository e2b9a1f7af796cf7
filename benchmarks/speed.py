"""Speed and memory of generated SNNs against hand-written SNN libraries (issue: fused recurrences).

Training step = forward + backward + Adam, cross-entropy on output spike counts, on the same
random input spikes [T, B, in]. Peers, all run in this process (memory: one subprocess each):

  GEMM floor     the same matmuls with no neuron dynamics
  snnspec        the generated module (KERNELS = "auto": numba kernels on CPU, Triton kernels on CUDA)
  snnspec plain  the same module stepping under autograd (KERNELS = "plain")
  snnTorch       Linear + snn.Leaky per step (tutorial style)
  SpikingJelly   multi-step LIFNode, layer.Linear in multi-step mode (its torch code on CPU, its
                 cupy kernels on CUDA where cupy is installed)
  Norse          LIFBoxCell per step (current-based LIF without synaptic current)
  Norse compiled the same under torch.compile

Workloads (DESIGN.md): W1 784-1000-10 T=25 B=128; W2 700-128-20 T=500 B=32;
memory on W3m 700-512-20 T=1000 B=64. `--open-neuromorphic`: Open Neuromorphic's framework
benchmark, one Linear(n, n) + LIF layer, batch 16, T=500, n = 4096 and 16384, forward and backward
of `out.sum()`, time and peak memory. Peers that are not installed are skipped
(`pip install snntorch` / `pip install --no-deps spikingjelly norse`).

    python benchmarks/speed.py                 # W1, W2 at T and 2T, then W3m memory
    python benchmarks/speed.py --quick         # W1, W2 only
    python benchmarks/speed.py --device cuda   # on a GPU: memory is torch's peak allocation there
    python benchmarks/speed.py --device cuda --dtype bfloat16 --open-neuromorphic
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import snnspec

WORKLOADS = {"W1": (784, 1000, 10, 25, 128), "W2": (700, 128, 20, 500, 32), "W3m": (700, 512, 20, 1000, 64)}
SPEC = """
from "std/neurons.snn" import Leaky
network MLP {{
    input x[{0}] encode none
    layer hidden = Leaky(beta = 0.95)[{1}]
    layer out    = Leaky(beta = 0.95)[{2}]
    x      -> dense -> hidden
    hidden -> dense -> out
    output out.spike count
}}
"""


class GemmFloor(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x)).sum(0)


class Snnspec(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int, kernels: str = "auto"):
        super().__init__()
        module = snnspec.compile(text=SPEC.format(n_in, n_hidden, n_out), name="bench_mlp.snn")
        module.KERNELS = kernels
        self.net = module.MLP()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).out_spike


class SnnTorch(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        import snntorch as snn

        self.fc1, self.fc2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)
        self.lif1, self.lif2 = snn.Leaky(beta=0.95), snn.Leaky(beta=0.95)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out).sum(0)


class SpikingJelly(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron

        self.functional = functional
        backend = "cupy" if torch.cuda.is_available() and _has("cupy") else "torch"
        self.net = nn.Sequential(layer.Linear(n_in, n_hidden), neuron.LIFNode(step_mode="m", backend=backend),
                                 layer.Linear(n_hidden, n_out), neuron.LIFNode(step_mode="m", backend=backend))
        functional.set_step_mode(self.net, "m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.functional.reset_net(self.net)
        return self.net(x).sum(0)


class Norse(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        import norse.torch as norse

        self.fc1, self.fc2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)
        self.lif1, self.lif2 = norse.LIFBoxCell(), norse.LIFBoxCell()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = s2 = None
        out = []
        for t in range(x.shape[0]):
            z1, s1 = self.lif1(self.fc1(x[t]), s1)
            z2, s2 = self.lif2(self.fc2(z1), s2)
            out.append(z2)
        return torch.stack(out).sum(0)


def _has(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def _compiled_norse(a: int, b: int, c: int) -> nn.Module:
    return torch.compile(Norse(a, b, c))  # type: ignore[return-value]


PEERS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "GEMM floor": GemmFloor,
    "snnspec": Snnspec,
    "snnspec plain": lambda a, b, c: Snnspec(a, b, c, kernels="plain"),
    "snnTorch": SnnTorch,
    "SpikingJelly": SpikingJelly,
    "Norse": Norse,
    "Norse compiled": _compiled_norse,
}
# Open Neuromorphic's setup: one Linear(n, n) + LIF layer, batch 16, T = 500
OPEN_NEUROMORPHIC = {"ON4k": 4096, "ON16k": 16384}


class OneLayer(nn.Module):
    """A peer's first Linear + LIF layer alone (the peers above are built as n-n-n; the second
    layer is dropped), for the Open Neuromorphic setup; returns the spikes [T, B, n]."""

    def __init__(self, peer: str, n: int):
        super().__init__()
        self.peer = peer
        if peer.startswith("snnspec"):
            text = SPEC.replace("layer out", "# layer out").replace("hidden -> dense -> out", "")
            text = text.replace("output out.spike count", "output hidden.spike trace")
            module = snnspec.compile(text=text.format(n, n, n), name="bench_one_layer.snn")
            module.KERNELS = "plain" if peer == "snnspec plain" else "auto"
            self.net = module.MLP()
        else:
            self.net = PEERS[peer](n, n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.peer.startswith("snnspec"):
            return self.net(x).hidden_spike
        net = getattr(self.net, "_orig_mod", self.net)
        if self.peer == "GEMM floor":
            return net.fc1(x)
        if self.peer == "SpikingJelly":
            net.functional.reset_net(net.net)
            return net.net[1](net.net[0](x))
        lif, state, out = net.lif1, None, []
        for t in range(x.shape[0]):
            if self.peer == "snnTorch":
                spk, state = lif(net.fc1(x[t]), lif.init_leaky() if state is None else state)
            else:
                spk, state = lif(net.fc1(x[t]), state)
            out.append(spk)
        return torch.stack(out)


def trainer(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One training step of `model` on (x, y), on the device x is on (waiting for it to finish)."""
    model.to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        sync()

    return step


def available(names: list[str], dims: tuple[int, int, int]) -> dict[str, nn.Module]:
    out = {}
    for name in names:
        try:
            out[name] = PEERS[name](*dims)
        except ImportError as err:
            print(f"  ({name} skipped: {err})")
    return out


def inputs(name: str, scale_t: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random input spikes [T, B, in] (10% density) and labels of a workload."""
    n_in, _n_hidden, n_out, T, B = WORKLOADS[name]
    torch.manual_seed(0)
    x = (torch.rand(T * scale_t, B, n_in) < 0.1).float()
    return x.to(device), torch.randint(0, n_out, (B,)).to(device)


def time_workload(name: str, scale_t: int, repeats: int, peers: list[str], device: str) -> dict[str, float]:
    n_in, n_hidden, n_out, _T, _B = WORKLOADS[name]
    x, y = inputs(name, scale_t, device)
    steps = {k: trainer(m, x, y) for k, m in available(peers, (n_in, n_hidden, n_out)).items()}
    for fn in steps.values():  # warm up (compiles numba kernels on the first call)
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, fn in steps.items():
            if k in ("snnTorch", "Norse", "snnspec plain", "SpikingJelly") and len(times[k]) >= max(3, repeats // 3):
                continue  # slow peers: fewer repeats
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def memory_child(peer: str, name: str, device: str) -> None:
    """Run in a subprocess: the peak memory a training step adds, in MiB."""
    n_in, n_hidden, n_out, _T, B = WORKLOADS[name]
    x, y = inputs(name, 1, device)
    step = trainer(PEERS[peer](n_in, n_hidden, n_out), x, y)
    if peer.startswith("snnspec"):  # compile the kernels on a small input first
        trainer(PEERS[peer](n_in, n_hidden, n_out), x[:2].clone(), y)()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        mib = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        mib = peak_added_mib(step)
    print(json.dumps({"peer": peer, "mib": mib}))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_added_mib(fn: Callable[[], object]) -> float:
    """The peak resident memory `fn` adds to what the process holds when it starts, in MiB.

    On Linux the high-water mark is reset first (writing 5 to /proc/self/clear_refs), so memory
    the process touched earlier (building inputs, compiling kernels) does not hide the step's
    peak; elsewhere it falls back to the growth of ru_maxrss, which can only under-report.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        fn()
        return (_status_kib("VmHWM") - before) / 1024
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def memory(name: str, peers: list[str], device: str) -> dict[str, float]:
    out = {}
    for peer in peers:
        proc = subprocess.run([sys.executable, __file__, "--memory-child", peer, name, device],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
            print(f"  ({peer} failed: {why})")
            continue
        out[peer] = json.loads(proc.stdout.strip().splitlines()[-1])["mib"]
    return out


def open_neuromorphic(peers: list[str], device: str, dtype: torch.dtype, repeats: int, size: int | None) -> None:
    """Time and peak memory of forward + backward of `out.sum()` on Open Neuromorphic's setup."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for name, n in OPEN_NEUROMORPHIC.items():
        n = size or n
        torch.manual_seed(0)
        x = (torch.rand(500, 16, n, device=device) < 0.1).to(dtype)
        print(f"\n{name}: Linear({n}, {n}) + LIF, B=16, T=500, {dtype}; forward + backward of out.sum()")
        floor = None
        for peer in [p for p in peers if p in PEERS]:
            try:
                model = OneLayer(peer, n).to(device, dtype)
            except ImportError as err:
                print(f"  ({peer} skipped: {err})")
                continue

            def step(model: nn.Module = model, x: torch.Tensor = x) -> None:
                model(x).sum().backward()
                sync()

            step()
            step()  # warm up: kernels compile
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            ms = statistics.median(times) * 1e3
            floor = floor or ms
            peak = f", peak {torch.cuda.max_memory_allocated() / 2**20:8.0f} MiB" if device.startswith("cuda") else ""
            print(f"  {peer:<14} {ms:9.1f} ms  x{ms / floor:6.2f} floor{peak}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="W1 and W2 at T only, no memory")
    parser.add_argument("--memory-only", action="store_true", help="only the W3m memory figures")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--peers", nargs="+", default=list(PEERS))
    parser.add_argument("--device", default="cpu", help="cpu (the bars) or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="of the --open-neuromorphic runs")
    parser.add_argument("--open-neuromorphic", action="store_true", help="only Open Neuromorphic's setup")
    parser.add_argument("--size", type=int, help="--open-neuromorphic with n neurons instead (a quick check)")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {args.device}: {where}; median ms per training step")
    if args.open_neuromorphic:
        open_neuromorphic(args.peers, args.device, getattr(torch, args.dtype), args.repeats, args.size)
        return
    for name in () if args.memory_only else ("W1", "W2"):
        results = {1: time_workload(name, 1, args.repeats, args.peers, args.device)}
        if not args.quick:
            results[2] = time_workload(name, 2, max(3, args.repeats // 2), args.peers, args.device)
        n_in, n_hidden, n_out, T, B = WORKLOADS[name]
        print(f"\n{name}: {n_in}-{n_hidden}-{n_out}, T={T}, B={B}")
        floor = results[1]["GEMM floor"]
        for peer, ms in results[1].items():
            line = f"  {peer:<14} {ms:9.1f} ms  x{ms / floor:6.2f} floor"
            if 2 in results and peer in results[2]:
                ms2 = results[2][peer]
                floor2 = results[2]["GEMM floor"]
                line += f"   | T={2 * T}: {ms2:9.1f} ms  x{ms2 / floor2:6.2f} floor, x{ms2 / ms:4.2f} time"
            print(line)
    if not args.quick:
        mem = memory("W3m", args.peers, args.device)
        n_in, n_hidden, n_out, T, B = WORKLOADS["W3m"]
        what = "peak allocation" if args.device.startswith("cuda") else "peak RSS"
        print(f"\nW3m memory: {n_in}-{n_hidden}-{n_out}, T={T}, B={B}; {what} added by one training step")
        floor = mem.get("GEMM floor")
        for peer, mib in mem.items():
            ratio = f"x{mib / floor:5.2f} floor" if floor else ""
            print(f"  {peer:<14} {mib:8.0f} MiB  {ratio}")


if __name__ == "__main__":
    main()
