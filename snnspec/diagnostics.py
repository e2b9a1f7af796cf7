"""Diagnostics: what is wrong with a spec, where, and how to fix it.

Checks collect `Diagnostic`s instead of raising at the first problem; the public API raises one
`SpecError` carrying all of them. `render` prints them rustc-style: a header, `--> file:line:col`,
the source line, carets under the culprit, and a hint.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from .files import FileProblem, read_spec
from .ir import Model, Span
from .stdlib import std_file

Severity = Literal["error", "warning"]


class Diagnostic(Model):
    severity: Severity = "error"
    message: str
    span: Span | None = None
    hint: str | None = None


class SpecError(Exception):
    """Raised by the public API when a spec has errors; `.diagnostics` lists all of them."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(render(self.diagnostics))


class Diagnostics:
    """An append-only collector passed through the checks."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.items.append(Diagnostic(message=message, span=span, hint=hint))

    def warning(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.items.append(Diagnostic(severity="warning", message=message, span=span, hint=hint))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise SpecError(self.items)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for the closest known name, if one is close enough."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _source_line(span: Span, sources: Mapping[str, str]) -> str | None:
    text = sources.get(span.file)
    if text is None:  # read as the loader reads: a regular .snn file or nothing, so no other file is ever quoted
        try:
            text = read_spec(std_file(span.file) or Path(span.file))
        except FileProblem:
            return None
    lines = text.split("\n")  # as the lexer counts lines: not at form feeds or other breaks splitlines knows
    return lines[span.line - 1].rstrip("\r") if 0 < span.line <= len(lines) else None


def render(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str] | None = None) -> str:
    """Render diagnostics rustc-style. `sources` maps file names to text not on disk."""
    blocks = []
    for d in diagnostics:
        lines = [f"{d.severity}: {d.message}"]
        if d.span is not None:
            s = d.span
            lines.append(f"  --> {s.file}:{s.line}:{s.column}")
            source = _source_line(s, sources or {})
            if source is not None:
                gutter = " " * len(str(s.line))
                width = max(1, (s.end_column - s.column) if s.end_line == s.line else len(source) - s.column + 1)
                lines.append(f"{gutter} |")
                lines.append(f"{s.line} | {source}")
                pad = "".join(c if c == "\t" else " " for c in source[:s.column - 1])  # tabs line up as in the source
                lines.append(f"{gutter} | {pad}{'^' * width}")
        if d.hint:
            lines.append(f"  = hint: {d.hint}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_json(diagnostics: Iterable[Diagnostic]) -> str:
    """Diagnostics as a JSON list, for editors (`snnspec check --format json`)."""
    return json.dumps([d.model_dump(mode="json") for d in diagnostics], indent=2)
