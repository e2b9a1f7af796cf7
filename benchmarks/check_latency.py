"""`snnspec check` latency: the whole process, as a user waits for it, with a cold and a warm cache.

The cold run has an empty `SNNSPEC_CACHE_DIR` (it parses, lowers with sympy and fills the cache);
the warm runs reuse what it left (the check's own result, parsed files, lark's tables and the lowered
neurons). Then one more warm run under `-X importtime` lists the imports that cost most. Other
processes on the machine change these figures: the load average is printed with them, and the CPU
time (user + sys) of each process, which a loaded machine changes less than the wall time.

    python benchmarks/check_latency.py [SPEC] [--runs 5] [--command build]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check(command: list[str], env: dict[str, str], *flags: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of one `python -m snnspec COMMAND...` process, and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *flags, "-m", "snnspec", *command], env=env, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu, proc.stderr


def top_imports(importtime: str, n: int) -> list[tuple[float, str]]:
    """The `n` imports with the largest cumulative time (ms) in `-X importtime` output."""
    rows = re.findall(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", importtime)
    return sorted(((int(us) / 1000, name) for us, name in rows), reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "examples" / "mnist_mlp.snn"))
    parser.add_argument("--runs", type=int, default=5, help="warm runs (the median is reported)")
    parser.add_argument("--imports", type=int, default=12, help="how many of the costliest imports to list")
    parser.add_argument("--command", choices=["check", "build"], default="check",
                        help="build: `snnspec build SPEC -o FILE` (torch) instead of `snnspec check SPEC`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SNNSPEC_CACHE_DIR": cache}
        command = [args.command, args.spec] + (["-o", str(Path(cache) / "out.py")] if args.command == "build" else [])
        cold = check(command, env)
        warm = [check(command, env) for _ in range(args.runs)]
        *_, importtime = check(command, env, "-X", "importtime")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"snnspec {args.command} {os.path.relpath(args.spec)}; load average {load}")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("  (PYTHONDONTWRITEBYTECODE is set: a module without a .pyc is compiled again in every run)")
    print(f"  cold (empty cache): {cold[0]:.3f} s, CPU {cold[1]:.3f} s")
    for i, what in ((0, "wall"), (1, "CPU ")):
        times = [run[i] for run in warm]
        print(f"  warm {what}: median {statistics.median(times):.3f} s, min {min(times):.3f} of {args.runs} "
              f"({', '.join(f'{t:.3f}' for t in times)})")
    print("  costliest imports of a warm run (cumulative ms, -X importtime):")
    for ms, name in top_imports(importtime, args.imports):
        print(f"    {ms:7.1f}  {name}")


if __name__ == "__main__":
    main()
