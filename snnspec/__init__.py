"""snnspec: a compiler for spiking neural network specs.

    spec = snnspec.load("model.snn")                    # the checked IR (raises SpecError)
    src = snnspec.generate("model.snn", backend="torch")  # Python source text
    mod = snnspec.compile("model.snn", backend="torch")   # a module object holding that code
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import linecache
import os
import sys
import types
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from . import ir
from ._version import __version__
from .cache import cache_dir, cached, write_atomic
from .depth import recursion_room
from .diagnostics import Diagnostic, Diagnostics, SpecError
from .files import FileProblem, read_regular

if TYPE_CHECKING:
    from .loader import Program
    from .reads import FilesRead

__all__ = ["Diagnostic", "SpecError", "__version__", "check", "compile", "compile_lowered", "generate", "load",
           "load_lowered", "ir"]

# The stages are imported where they are first needed: `snnspec check` of a spec checked before is
# answered from the cache without them, or the IR's models they build (docs/performance.md).


@recursion_room()  # the parser's depth limits, through the recursive checks
def _front(path: str | Path | None, text: str | None, name: str | None, diags: Diagnostics
           ) -> tuple[Program, ir.Spec]:
    """The files a spec reaches, and its checked IR."""
    from .check import check_program
    from .loader import load_program

    program = load_program(path, diags, text=text, name=name)
    return program, check_program(program, diags)


def _lower(spec: ir.Spec, diags: Diagnostics) -> ir.LoweredSpec:
    from .lower import lower

    return lower(spec, diags)


def load(path: str | Path | None = None, *, text: str | None = None, name: str | None = None) -> ir.Spec:
    """Parse and check a spec file (or `text`); raise `SpecError` listing every error."""
    diags = Diagnostics()
    _, spec = _front(path, text, name, diags)
    diags.raise_if_errors()
    return spec


def load_lowered(path: str | Path | None = None, *, text: str | None = None, name: str | None = None
                 ) -> ir.LoweredSpec:
    """Parse, check and lower a spec; raise `SpecError` listing every error."""
    diags = Diagnostics()
    _, spec = _front(path, text, name, diags)
    diags.raise_if_errors()
    lowered = _lower(spec, diags)
    diags.raise_if_errors()
    return lowered


def check(path: str | Path | None = None, *, text: str | None = None, name: str | None = None) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) for a spec, from parsing through lowering.

    A check without errors is stored in the cache with the files it read; while every one of them
    reads the same and is named the same, checking the same path (or text and name) again replays its
    warnings without parsing, checking or lowering anything: the loader would read the same texts,
    so the checks would say the same."""
    from .reads import FilesRead

    diags = Diagnostics()
    key: list[str] = []
    for given in (path, text, name):
        key += ["-"] if given is None else ["=", os.fspath(given)]
    cached("checked", FilesRead, key, partial(_check, path, text, name), diags, holds=FilesRead.unchanged)
    return diags.items


def _check(path: str | Path | None, text: str | None, name: str | None, diags: Diagnostics) -> FilesRead | None:
    """A fresh check: its diagnostics in `diags`, and the files it read (None where it could not say)."""
    from .reads import files_read

    program, spec = _front(path, text, name, diags)
    if not diags.errors:
        _lower(spec, diags)
    return files_read(program, path if text is None else None)


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
    return _import_source(source, Path(name or path or "spec").stem, backend)


def compile_lowered(lowered: ir.LoweredSpec, backend: str = "torch", *, tag: str = "") -> types.ModuleType:
    """`compile` for a spec already lowered (and perhaps adjusted, as `snnspec simulate` records more
    variables); `tag` goes into the module's name. Raises `snnspec.emit.BackendError` for what the
    backend cannot build."""
    from .emit import generate as emit

    return _import_source(emit(lowered, backend), Path(lowered.file).stem + tag, backend)


def _import_source(source: str, stem: str, backend: str) -> types.ModuleType:
    """Import generated source as a module, from the cache folder where it is writable (see `compile`)."""
    stem = "".join(c if c.isalnum() else "_" for c in stem)
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
    # tracebacks, and Triton's compiler (which reads a kernel's source), find the lines here
    linecache.cache[module.__file__] = (len(source), None, source.splitlines(True), module.__file__)
    exec(builtins.compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _cache_file(module_name: str, source: str) -> Path | None:
    file = cache_dir() / f"{module_name}.py"
    try:
        if read_regular(file) == source.encode():
            return file
    except FileProblem:  # not there yet, or not a regular file: write it (write_atomic refuses the latter)
        pass
    return file if write_atomic(file, source) else None


class _Package(types.ModuleType):
    """This package, whose `check` is the function above and must stay so. Importing the submodule
    `snnspec.check` (the checker) binds the package's attribute of that name to the module; the stages
    are imported on first use (see `_front`), so that would happen after the function is defined."""

    def __setattr__(self, name: str, value: object) -> None:
        if not (name == "check" and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
