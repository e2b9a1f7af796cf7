"""snnspec: a compiler for spiking neural network specs.

    spec = snnspec.load("model.snn")                    # the checked IR (raises SpecError)
    src = snnspec.generate("model.snn", backend="torch")  # Python source text
    mod = snnspec.compile("model.snn", backend="torch")   # a module object holding that code
"""

from __future__ import annotations

import builtins
import sys
import types
from pathlib import Path

from . import ir
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
    """Generate a spec's code and execute it as a module (named after the spec file)."""
    source = generate(path, backend, text=text, name=name)
    stem = Path(name or path or "spec").stem
    module = types.ModuleType(f"snnspec_generated_{stem}")
    module.__file__ = f"<snnspec {stem}.py>"
    sys.modules[module.__name__] = module  # dataclasses and pickling look the module up
    exec(builtins.compile(source, module.__file__, "exec"), module.__dict__)
    return module
