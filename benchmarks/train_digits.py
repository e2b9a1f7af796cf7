"""The README main job: `snnspec train specs/examples/digits_mlp.snn` on the built-in 8x8 digits.

Target: at least 95% test accuracy in under 60 s on 2 cores. Runs the command itself once (wall
time from the shell, start-up included), then the same training in this process for a few
seeds (the spread of the accuracy), and prints every figure.

    python benchmarks/train_digits.py [--seeds 0 1 2 3 4] [--spec specs/examples/digits_mlp.snn]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from snnspec.train.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "specs" / "examples" / "digits_mlp.snn"))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as tmp:
        exe = shutil.which("snnspec")
        cmd = [exe] if exe else [sys.executable, "-m", "snnspec"]
        cmd += ["train", args.spec, "--out", str(Path(tmp) / "cli"), "--device", "cpu"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        print(proc.stdout, end="")
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(proc.returncode)
        m = re.search(r"test accuracy: ([0-9.]+)%", proc.stdout)
        print(f"command: {m.group(1) if m else '?'}% in {wall:.1f} s wall, start-up included "
              f"(target: >= 95% in < 60 s)\n")

        accs, totals, epoch_s, rates = [], [], [], []
        for seed in args.seeds:
            start = time.perf_counter()
            r = train(TrainConfig(Path(args.spec), seed=seed, out=Path(tmp) / f"s{seed}", quiet=True, device="cpu"))
            total = time.perf_counter() - start
            ep = r.metrics["epochs"]
            accs.append(r.test_accuracy)
            totals.append(total)
            epoch_s.append(statistics.median(e["train_seconds"] for e in ep))
            rates.append(statistics.median(e["samples_per_second"] for e in ep))
            print(f"seed {seed}: test accuracy {r.test_accuracy:.2%}  ({len(ep)} epochs, {total:.1f} s in process, "
                  f"median {epoch_s[-1]:.2f} s/epoch, {rates[-1]:,.0f} samples/s)", flush=True)
    print(f"\nover {len(accs)} seeds: accuracy min {min(accs):.2%} / median {statistics.median(accs):.2%} / "
          f"max {max(accs):.2%}; seconds in process median {statistics.median(totals):.1f}, "
          f"max {max(totals):.1f}; median {statistics.median(rates):,.0f} samples/s")


if __name__ == "__main__":
    main()
