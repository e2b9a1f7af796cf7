"""The long profile of the whole-pipeline fuzzer: random valid specs (and mutations and token soups of
every spec in specs/) through load -> generate -> compile -> forward and backward on the fused, plain
and JAX paths, with every construct switched on (also those in KNOWN_OPEN), counting outcomes.

    python scripts/fuzz_pipeline.py --seed 1 --cases 200 --out fuzz-failures/
    python scripts/fuzz_pipeline.py --seed 1 --minutes 15 --known-open-off   # only what CI generates

Prints a count per outcome (tests/pipeline_harness.py KINDS) and writes, for the first failure of each
distinct signature, a minimal reproduction (lines deleted while it fails the same way) to --out.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import pipeline_harness as h  # noqa: E402

SPECS = sorted((ROOT / "specs").glob("*/*.snn"))


def draw_case(c: h.Chooser, enabled: frozenset[str]) -> tuple[str, h.Case]:
    """Mostly generated valid specs; some mutations of real specs and token soups."""
    roll = c.between(0, 9)
    if roll < 8:
        return "generated", h.SpecGen(c, enabled).case()
    if roll == 8:
        spec = c.pick(SPECS)
        return "mutated", h.Case({f"{h.CANARY}_spec.snn": h.mutated(spec.read_text(encoding="utf-8"), c)})
    return "soup", h.Case({f"{h.CANARY}_spec.snn": h.token_soup(c)})


def write_reproduction(out: Path, k: int, case: h.Case, outcome: h.Outcome) -> Path:
    folder = out / f"{k:03d}-{outcome.kind}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "OUTCOME.txt").write_text(f"{outcome.signature}\n\n{outcome.detail}\n\nroot folder: {case.folder!r}\n"
                                        f"root file: {case.root!r}\n", encoding="utf-8")
    (folder / "case.txt").write_text(case.text(), encoding="utf-8")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this long (0: no limit)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--known-open-off", action="store_true", help="leave out KNOWN_OPEN, as CI does")
    parser.add_argument("--no-fused", action="store_true", help="leave out the numba path (its compiles are slow)")
    parser.add_argument("--minimize-s", type=float, default=40.0, help="time to shrink each distinct failure")
    args = parser.parse_args()
    enabled = h.EVERYTHING - h.KNOWN_OPEN if args.known_open_off else h.EVERYTHING
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="snnspec-fuzz-"))
    counts: collections.Counter[str] = collections.Counter()
    first: dict[str, tuple[h.Case, h.Outcome]] = {}
    seen: collections.Counter[str] = collections.Counter()
    start = time.monotonic()
    for k in range(args.cases):
        if args.minutes and time.monotonic() - start > args.minutes * 60:
            break
        source, case = draw_case(h.RandomChooser(rng), enabled)
        outcome = h.run_case(case, work / f"c{k}", fused=not args.no_fused, runtime=source == "generated")
        counts[outcome.kind] += 1
        if outcome.kind in h.FAULTS:
            seen[outcome.signature] += 1
            first.setdefault(outcome.signature, (case, outcome))
        print(f"{k:4d} {source:9s} {outcome.kind:20s} {outcome.stage:14s} {outcome.detail[:90]}", flush=True)
    elapsed = time.monotonic() - start
    print(f"\n{sum(counts.values())} cases in {elapsed:.0f} s (seed {args.seed})")
    for kind in h.KINDS:
        print(f"  {kind:22s} {counts[kind]}")
    print(f"\n{len(first)} distinct failures:")
    args.out.mkdir(parents=True, exist_ok=True)
    for k, (signature, (case, outcome)) in enumerate(sorted(first.items())):
        small = h.minimize(case, outcome, work / f"m{k}", args.minimize_s, fused=not args.no_fused)
        folder = write_reproduction(args.out, k, small, outcome)
        print(f"  [{seen[signature]}x] {signature}\n      -> {folder}")
    return 1 if first else 0


if __name__ == "__main__":
    sys.exit(main())
