"""Files and imports (LANGUAGE.md §6): read, parse and resolve every file a spec reaches.

`std/...` names the standard library shipped with the package; other paths are relative to the
importing file. Each file is parsed once; cycles and missing files are diagnostics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from . import ir
from .cache import cached
from .diagnostics import Diagnostics
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
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, ValueError) as err:  # ValueError: undecodable text, or a NUL in the path
            diags.error(f"cannot read '{root_name}': {getattr(err, 'strerror', None) or err}", None)
            return program
    _load(program, root_name, text, [], diags)
    if STD_SURROGATES not in program.modules:
        _load_file(program, std_dir() / "surrogates.snn", [], diags, None)
    return program


def _load(program: Program, name: str, text: str, stack: list[str], diags: Diagnostics) -> None:
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some editors write: not part of the spec
    program.sources[name] = text
    module = cached("parsed", ir.Module, (name, text), partial(_parse, text, name), diags)
    if module is None:
        return
    program.modules[name] = module
    program.imports[name] = []
    for imp in module.imports:
        target = resolve(imp.path, name)
        target_name = display_name(target)
        if target_name in stack or target_name == name:
            chain = stack[stack.index(target_name):] if target_name in stack else []
            cycle = " -> ".join([*chain, name, target_name])
            diags.error(f"import cycle: {cycle}", imp.span, "move the shared declarations into a third file")
            continue
        program.imports[name].append((imp, target_name))
        if target_name not in program.modules and target_name not in program.sources:
            _load_file(program, target, [*stack, name], diags, imp)


def _parse(text: str, name: str, diags: Diagnostics) -> ir.Module | None:
    from .parse import parse  # imports lark: only when the cache misses

    return parse(text, name, diags)


def _load_file(program: Program, path: Path, stack: list[str], diags: Diagnostics, imp: ir.Import | None) -> None:
    name = display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as err:  # ValueError: undecodable text, or a NUL in the path
        what = "no such file" if isinstance(err, FileNotFoundError) else (getattr(err, "strerror", None) or str(err))
        hint = "paths are relative to the importing file; `std/...` names the standard library"
        diags.error(f"cannot import '{imp.path if imp else name}': {what}", imp.span if imp else None, hint)
        program.sources[name] = ""
        return
    _load(program, name, text, stack, diags)
