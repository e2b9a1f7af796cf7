"""The generated source of every example, every std-library file and a fixed set of fuzzer specs, for both
backends, saved as one JSON of texts; `--compare OLD.json` says whether a change to the emitters kept
the output the same, letter for letter (and shows the first differences).

    python scripts/generated_snapshot.py before.json              # on the old tree
    python scripts/generated_snapshot.py after.json --compare before.json

A spec that does not generate is recorded by its error's first line, so a change that turns code into a
diagnostic (or back) shows too. The fuzzer's specs come from `tests/pipeline_harness.py` with seeded
`random.Random` choosers (`--fuzz N`, default 200), every construct of the CI profile switched on except
those diagnosed by design.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import sys
import tempfile
from pathlib import Path

import snnspec
from snnspec.diagnostics import SpecError

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("torch", "jax")


def sources(fuzz: int, work: Path) -> dict[str, Path]:
    """Spec files by a stable name: specs/**, then the fuzzer's seeded cases written under `work`."""
    sys.path.insert(0, str(ROOT / "tests"))
    import pipeline_harness as h

    specs = {str(p.relative_to(ROOT)): p for p in sorted((ROOT / "specs").glob("*/*.snn"))}
    enabled = h.EVERYTHING - h.KNOWN_OPEN - h.DIAGNOSED
    for seed in range(fuzz):
        case = h.SpecGen(h.RandomChooser(random.Random(seed)), enabled).case()
        specs[f"fuzz/{seed}"] = case.write(work / str(seed))
    return specs


def generate(path: Path, backend: str) -> str:
    try:
        return snnspec.generate(path, backend)
    except SpecError as err:
        return f"SpecError: {str(err).splitlines()[0] if str(err) else ''}"


def snapshot(fuzz: int) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as work:
        return {f"{name} [{backend}]": generate(path, backend)
                for name, path in sources(fuzz, Path(work)).items() for backend in BACKENDS}


def compare(new: dict[str, str], old: dict[str, str], show: int) -> int:
    differing = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    for key in differing[:show]:
        diff = difflib.unified_diff((old.get(key) or "").splitlines(), (new.get(key) or "").splitlines(),
                                    f"old {key}", f"new {key}", lineterm="", n=1)
        print("\n".join(list(diff)[:60]))
    print(f"{len(new)} generated files, {len(differing)} differ" + (f": {', '.join(differing[:20])}"
                                                                   if differing else " (identical)"))
    return 1 if differing else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path, help="a snapshot taken before the change")
    parser.add_argument("--fuzz", type=int, default=200, help="how many seeded fuzzer specs")
    parser.add_argument("--show", type=int, default=3, help="how many differing files to diff")
    args = parser.parse_args()
    new = snapshot(args.fuzz)
    args.out.write_text(json.dumps(new, indent=0, sort_keys=True), encoding="utf-8")
    if args.compare:
        sys.exit(compare(new, json.loads(args.compare.read_text(encoding="utf-8")), args.show))
    print(f"{len(new)} generated files written to {args.out}")


if __name__ == "__main__":
    main()
