"""Files and imports (LANGUAGE.md §6): read, parse and resolve every file a spec reaches.

`std/...` names the standard library shipped with the package; other paths are relative to the
importing file. Each file is parsed once; cycles, missing files and files that are not regular
`.snn` files of UTF-8 text (`files.read_spec`) are diagnostics.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from . import ir
from .cache import cached
from .diagnostics import Diagnostics
from .files import FileProblem, read_spec
from .stdlib import std_dir, std_file

STD_SURROGATES = "std/surrogates.snn"


def display_name(path: Path) -> str:
    """How a file is named in diagnostics: `std/x.snn` for the library, else as given."""
    try:
        return "std/" + path.resolve().relative_to(std_dir().resolve()).as_posix()
    except ValueError:
        return os.path.normpath(path)


@dataclass
class Program:
    """Every parsed file a spec reaches, keyed by display name, and the root's name."""

    root: str
    modules: dict[str, ir.Module] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    imports: dict[str, list[tuple[ir.Import, str]]] = field(default_factory=dict)  # file -> (import, target)


def resolve(import_path: str, importer: str) -> Path:
    base = Path(importer).parent if not importer.startswith("std/") else std_dir()
    return std_file(import_path) or base / import_path


def load_program(path: str | Path | None, diags: Diagnostics, text: str | None = None,
                 name: str | None = None) -> Program:
    """Parse `path` (or `text`, shown as `name`) and every file it imports, transitively."""
    root_name = name or (display_name(Path(path)) if path is not None else "<string>")
    program = Program(root=root_name)
    if text is None:
        assert path is not None
        text = _read(Path(path), root_name, None, diags)
        if text is None:
            return program
    _load_all(program, root_name, text, None, diags)
    if STD_SURROGATES not in program.sources:
        text = _read(std_dir() / "surrogates.snn", STD_SURROGATES, None, diags)
        if text is not None:
            _load_all(program, STD_SURROGATES, text, None, diags)
    return program


def _load_all(program: Program, name: str, text: str, imp: ir.Import | None, diags: Diagnostics) -> None:
    """Load the file `name` and, depth first, every file it reaches. The path from `name` down is an
    explicit stack, not Python's: a chain of imports however long needs no recursion, and a file
    that imports one on the path closes a cycle."""
    path: list[tuple[str, Iterator[ir.Import]]] = []
    _enter(program, path, name, text, imp, diags)
    while path:
        importer, pending = path[-1]
        imp = next(pending, None)
        if imp is None:
            path.pop()
            continue
        target = resolve(imp.path, importer)
        target_name = display_name(target)
        on_path = [file for file, _ in path]
        if target_name in on_path:
            cycle = " -> ".join([*on_path[on_path.index(target_name):], target_name])
            diags.error(f"import cycle: {cycle}", imp.span, "move the shared declarations into a third file")
            continue
        program.imports[importer].append((imp, target_name))
        if target_name not in program.sources:  # each file is read and parsed once
            target_text = _read(target, target_name, imp, diags)
            program.sources[target_name] = ""
            if target_text is not None:
                _enter(program, path, target_name, target_text, imp, diags)


def _enter(program: Program, path: list[tuple[str, Iterator[ir.Import]]], name: str, text: str,
           imp: ir.Import | None, diags: Diagnostics) -> None:
    """Parse the file `name` and push it on the import path (a file that declares nothing is an error)."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some editors write: not part of the spec
    program.sources[name] = text
    module = cached("parsed", ir.Module, (name, text), partial(_parse, text, name), diags)
    if module is None:
        return
    if not module.imports and not module.declarations:
        what = "is empty" if not text.strip() else "declares nothing (only comments)"
        hint = "a spec declares neurons, surrogates, rules or networks, or imports files that do"
        here = imp.span if imp else ir.Span(file=name, line=1, column=1, end_line=1, end_column=2)
        diags.error(f"'{imp.path if imp else name}' {what}", here, hint)
    program.modules[name] = module
    program.imports[name] = []
    path.append((name, iter(module.imports)))


def _parse(text: str, name: str, diags: Diagnostics) -> ir.Module | None:
    from .parse import parse  # imports lark: only when the cache misses

    return parse(text, name, diags)


def _read(path: Path, name: str, imp: ir.Import | None, diags: Diagnostics) -> str | None:
    """The text of a spec file (`files.read_spec`: regular .snn files, size-limited), or None and a
    diagnostic: at the import that names the file, or on the root file itself."""
    try:
        return read_spec(path)
    except FileProblem as problem:
        if imp is not None:
            hint = problem.hint or "paths are relative to the importing file; `std/...` names the standard library"
            diags.error(f"cannot import '{imp.path}': {problem.message}", imp.span, hint)
            return None
        span = None
        if problem.line is not None and problem.column is not None:
            span = ir.Span(file=name, line=problem.line, column=problem.column, end_line=problem.line,
                           end_column=problem.column + 1)
        diags.error(f"cannot read '{name}': {problem.message}", span, problem.hint)
        return None
