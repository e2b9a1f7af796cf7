"""The on-disk cache (`SNNSPEC_CACHE_DIR`, default `~/.cache/snnspec`): generated modules, the
parser's tables, and IR derived from a file or a declaration (parsed files, lowered neurons and
rules), so that checking a spec seen before needs neither lark's parsing nor sympy.

A derived entry is keyed by everything its derivation reads and by a fingerprint of the compiler's
own code, so that an edit of either never serves a stale result. Its file holds the result's JSON on
the first line and, one per line after it, the diagnostics (warnings) the derivation gave, which a
hit replays. A derivation that gave an error is not stored. Everything is best effort: an entry that
cannot be read or validated is derived again and rewritten, and an unwritable folder only costs time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import TypeVar

from . import files, ir
from .diagnostics import Diagnostic, Diagnostics

M = TypeVar("M", bound=ir.Model)


def cache_dir() -> Path:
    """The cache folder, read from the environment on every call (tests point it elsewhere)."""
    return Path(os.environ.get("SNNSPEC_CACHE_DIR") or Path.home() / ".cache" / "snnspec")


def write_atomic(file: Path, data: str | bytes) -> bool:
    """Write `data` (text as UTF-8) to `file` through `files.write_atomic` (a process reading it at the same
    time sees the old file or the new one, never part of one). False where it cannot be written: the
    cache is best effort."""
    try:
        files.write_atomic(file, data)
    except files.FileProblem:
        return False
    return True


@cache
def code_fingerprint() -> str:
    """A hash of the compiler's source, every .py file of the package and the grammar (once per process:
    a few ms)."""
    from .grammar import grammar_text

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        try:
            data = file.read_bytes()
        except OSError:  # e.g. an editor's lock file: a dangling link named like a module
            data = b"<unreadable>"
        digest.update(f"{file.relative_to(package).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    digest.update(grammar_text().encode())
    return digest.hexdigest()


def cached(folder: str, kind: type[M], inputs: Iterable[str | ir.Model], work: Callable[[Diagnostics], M | None],
           diags: Diagnostics, holds: Callable[[M], bool] | None = None) -> M | None:
    """`work(diags)`, which derives a `kind` from `inputs` alone, or what an earlier run of it stored in
    `<cache>/<folder>/`. With `holds`, a stored result is served only where `holds(result)`: for work
    that also reads what `inputs` cannot name in advance (the files a spec imports)."""
    file = entry_file(folder, kind, inputs)
    hit = _read(file, kind) if file is not None else None
    if hit is not None and (holds is None or holds(hit[0])):
        diags.items.extend(hit[1])
        return hit[0]
    fresh = Diagnostics()
    try:
        value = work(fresh)
    finally:  # a RecursionError (which the caller reports) keeps what was said before it
        diags.items.extend(fresh.items)
    if file is not None and value is not None and not fresh.errors:
        _write(file, value, fresh.items)
    return value


def entry_file(folder: str, kind: type[ir.Model], inputs: Iterable[str | ir.Model]) -> Path | None:
    """Where the entry for deriving a `kind` from `inputs` lives; None for IR too deep for JSON or text
    that is not Unicode."""
    digest = hashlib.sha256(f"{code_fingerprint()}\0{kind.__name__}".encode())
    for part in inputs:
        try:
            text = part if isinstance(part, str) else part.model_dump_json()
            data = text.encode()
        except ValueError:  # pydantic's serialization depth limit, or a lone surrogate in a str (UnicodeError)
            return None
        digest.update(f"\0{type(part).__name__}\0{len(data)}\0".encode())
        digest.update(data)
    return cache_dir() / folder / f"{digest.hexdigest()[:32]}.jsonl"


def _read(file: Path, kind: type[M]) -> tuple[M, list[Diagnostic]] | None:
    try:
        first, *rest = files.read_regular(file).decode("utf-8").split("\n")
        return kind.model_validate_json(first), [Diagnostic.model_validate_json(line) for line in rest if line]
    except (files.FileProblem, ValueError):  # missing, not a file, truncated or invalid (ValidationError too)
        return None


def _write(file: Path, value: ir.Model, said: list[Diagnostic]) -> None:
    try:
        text = "".join(m.model_dump_json() + "\n" for m in (value, *said))
    except ValueError:  # deeper than pydantic serializes
        return
    write_atomic(file, text)
