"""snnspec: a compiler for spiking neural network specs.

    spec = snnspec.load("model.snn")                    # the checked IR (raises SpecError)
    src = snnspec.generate("model.snn", backend="torch")  # Python source text
    mod = snnspec.compile("model.snn", backend="torch")   # a module object holding that code
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import sys
import types
from pathlib import Path

from . import ir
from .cache import cache_dir, write_atomic
from .check import check_program
from .diagnostics import Diagnostic, Diagnostics, SpecError
from .loader import load_program
from .lower import lower as _lower

__all__ = ["Diagnostic", "SpecError", "check", "compile", "generate", "load", "load_lowered", "ir"]
__version__ = "0.1.0"


def _front(path: str | Path | None, text: str | None, name: str | None, diags: Diagnostics) -> ir.Spec:
    program = load_program(path, diags, text=text, name=name)
    return check_program(program, diags)


def load(path: str | Path | None = None, *, text: str | None = None, name: str | None = None) -> ir.Spec:
    """Parse and check a spec file (or `text`); raise `SpecError` listing every error."""
    diags = Diagnostics()
    spec = _front(path, text, name, diags)
    diags.raise_if_errors()
    return spec


def load_lowered(path: str | Path | None = None, *, text: str | None = None, name: str | None = None
                 ) -> ir.LoweredSpec:
    """Parse, check and lower a spec; raise `SpecError` listing every error."""
    diags = Diagnostics()
    spec = _front(path, text, name, diags)
    diags.raise_if_errors()
    lowered = _lower(spec, diags)
    diags.raise_if_errors()
    return lowered


def check(path: str | Path | None = None, *, text: str | None = None, name: str | None = None) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) for a spec, from parsing through lowering."""
    diags = Diagnostics()
    spec = _front(path, text, name, diags)
    if not diags.errors:
        _lower(spec, diags)
    return diags.items


def generate(path: str | Path | None = None, backend: str = "torch", *, text: str | None = None,
             name: str | None = None) -> str:
    """The generated source of a spec for `backend` ("torch")."""
    from .emit import generate as emit

    return emit(load_lowered(path, text=text, name=name), backend)


def compile(path: str | Path | None = None, backend: str = "torch", *, text: str | None = None,  # noqa: A001
            name: str | None = None) -> types.ModuleType:
    """Generate a spec's code and import it as a module.

    The source is written to a cache folder (`SNNSPEC_CACHE_DIR`, default `~/.cache/snnspec`),
    named by its hash, and imported from there, so tracebacks show real lines and numba can cache
    compiled kernels between runs. Where that folder is not writable the source runs from memory.
    """
    source = generate(path, backend, text=text, name=name)
    stem = "".join(c if c.isalnum() else "_" for c in Path(name or path or "spec").stem)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    module_name = f"snnspec_generated_{stem}_{backend}_{digest}"
    file = _cache_file(module_name, source)
    if file is not None:
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            return module
    module = types.ModuleType(module_name)
    module.__file__ = f"<snnspec {stem}.py>"
    sys.modules[module_name] = module  # dataclasses and pickling look the module up
    exec(builtins.compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _cache_file(module_name: str, source: str) -> Path | None:
    file = cache_dir() / f"{module_name}.py"
    try:
        if file.read_text(encoding="utf-8") == source:
            return file
    except (OSError, ValueError):  # not there yet, or unreadable: write it
        pass
    return file if write_atomic(file, source) else None
