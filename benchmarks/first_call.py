"""First-call latency: how long a user waits before the first training step of a generated SNN.

Each case runs in a fresh Python process with its own `SNNSPEC_CACHE_DIR`, twice: first with an
empty cache (the generated module is written and numba compiles its kernels), then again with the
cache that run left behind (numba loads the compiled kernels from disk). Timed separately:

  import      `import torch, snnspec`
  compile     `snnspec.compile(spec)`: parse, check, lower, generate, import the module
  1st step    the first forward + backward + Adam step (numba compiles or loads kernels here)
  2nd step    the next step, for comparison (steady state)

    python benchmarks/first_call.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
import snnspec
t1 = time.perf_counter()
spec = sys.argv[1]
from snnspec.train.kernels import kernel_line
mod = snnspec.compile(spec)
t2 = time.perf_counter()
net = getattr(mod, sys.argv[2])()
torch.manual_seed(0)
x = (torch.rand(25, 128, 784) < 0.1).float()
y = torch.randint(0, 10, (128,))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
def step():
    opt.zero_grad()
    out = net(x)[0]
    torch.nn.functional.cross_entropy(out, y).backward()
    opt.step()
step()
t3 = time.perf_counter()
step()
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "compile": t2 - t1, "1st step": t3 - t2, "2nd step": t4 - t3,
                  "kernels": kernel_line(net, "cpu")}))
"""

SPEC = """
from "std/neurons.snn" import {name}
network Net {{
    input x[784] encode none
    layer hidden = {neuron}[1000]
    layer out    = {neuron}[10]
    x      -> dense -> hidden
    hidden -> dense -> out
    output out.spike count
}}
"""

CASES = {"Leaky (1 state)": "Leaky(beta = 0.95)", "Synaptic (2 states)": "Synaptic(alpha = 0.9, beta = 0.8)",
         "ALIF (adaptive threshold, 2 states)": "ALIF"}


def run(spec_path: str, cache: str) -> dict:
    env = {**os.environ, "SNNSPEC_CACHE_DIR": cache}
    proc = subprocess.run([sys.executable, "-c", CHILD, spec_path, "Net"], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    print("seconds; 784-1000-10, T=25, B=128, one process per row")
    print(f"  {'neuron':<38}{'cache':<7}{'import':>8}{'compile':>9}{'1st step':>10}{'2nd step':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, neuron) in enumerate(CASES.items()):
            spec = os.path.join(tmp, f"net{k}.snn")
            with open(spec, "w") as f:
                f.write(SPEC.format(name=neuron.split("(")[0], neuron=neuron))
            cache = os.path.join(tmp, f"cache{k}")
            for state in ("cold", "warm"):
                start = time.perf_counter()
                r = run(spec, cache)
                total = time.perf_counter() - start
                print(f"  {label:<38}{state:<7}{r['import']:8.2f}{r['compile']:9.2f}{r['1st step']:10.2f}"
                      f"{r['2nd step']:10.2f}   (process {total:.1f} s, {r['kernels']})")


if __name__ == "__main__":
    main()
