"""`snnspec check` latency: the whole process, as a user waits for it, with a cold and a warm cache.

The cold run has an empty `SNNSPEC_CACHE_DIR` (it parses, lowers with sympy and fills the cache);
the warm runs reuse what it left (parsed files, lark's tables and the lowered neurons). Then one
more warm run under `-X importtime` lists the imports that cost most. Other processes on the
machine change these figures: the load average is printed with them.

    python benchmarks/check_latency.py [SPEC] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check(spec: str, env: dict[str, str], *flags: str) -> tuple[float, str]:
    """Seconds for one `python -m snnspec check SPEC` process, and its stderr."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *flags, "-m", "snnspec", "check", spec], env=env, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return elapsed, proc.stderr


def top_imports(importtime: str, n: int) -> list[tuple[float, str]]:
    """The `n` imports with the largest cumulative time (ms) in `-X importtime` output."""
    rows = re.findall(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", importtime)
    return sorted(((int(us) / 1000, name) for us, name in rows), reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "examples" / "mnist_mlp.snn"))
    parser.add_argument("--runs", type=int, default=5, help="warm runs (the median is reported)")
    parser.add_argument("--imports", type=int, default=12, help="how many of the costliest imports to list")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SNNSPEC_CACHE_DIR": cache}
        cold, _ = check(args.spec, env)
        warm = [check(args.spec, env)[0] for _ in range(args.runs)]
        _, importtime = check(args.spec, env, "-X", "importtime")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"snnspec check {os.path.relpath(args.spec)}; load average {load}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("  (PYTHONDONTWRITEBYTECODE is set: a module without a .pyc is compiled again in every run)")
    print(f"  cold (empty cache): {cold:.3f} s")
    print(f"  warm: median {statistics.median(warm):.3f} s of {args.runs} "
          f"({', '.join(f'{t:.3f}' for t in warm)})")
    print("  costliest imports of a warm run (cumulative ms, -X importtime):")
    for ms, name in top_imports(importtime, args.imports):
        print(f"    {ms:7.1f}  {name}")


if __name__ == "__main__":
    main()
