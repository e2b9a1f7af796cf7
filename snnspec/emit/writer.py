"""A line writer for generated code, in the manner of Jinja2's CodeGenerator: indentation,
blank-line discipline, `# file.snn:LINE` comments that map generated lines back to the spec, and
the doors through which spec content reaches the output (`literal` for numbers, `source_name` for
file names, names via `snnspec/names.py`)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePath

from .layout import LIMIT, layout, wrap_text

STATIC = ("@staticmethod",)  # the decorators of a generated static method


def literal(value: float | int | bool) -> str:
    """A number as Python source: `repr` of a finite float or int, never anything else."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot emit the non-finite number {value!r}")
    text = repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    assert text.replace(".", "").replace("e-", "").replace("e+", "").lstrip("-").isdigit(), text
    return text


def unpacked(names: list[str]) -> str:
    """The targets that unpack a tuple: `a, b`, or `a,` for one."""
    return f"{', '.join(names)}{',' if len(names) == 1 else ''}"


def source_name(file: str, root: str) -> str:
    """How generated code names a spec file: the only door for file names. Relative to the root
    spec's folder (the output does not depend on how its path was spelled; `std/...` stays), with
    every character that is not printable escaped, so a newline in a folder name cannot end the
    comment it is printed in."""
    if not file.startswith(("std/", "<")):
        folder = os.path.dirname(root) if not root.startswith("<") else ""
        file = PurePath(os.path.relpath(file, folder or os.curdir)).as_posix()
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in file)


class CodeWriter:
    """Lines of generated code for the module of the spec `root` (whose folder file names are relative to)."""

    def __init__(self, root: str = "<string>", indent: str = "    "):
        self.root = root
        self.lines: list[str] = []
        self.indent_unit = indent
        self.level = 0

    def child(self) -> CodeWriter:
        """A writer for a block to splice in later, at this writer's indentation."""
        child = CodeWriter(self.root, self.indent_unit)
        child.level = self.level
        return child

    def source(self, file: str) -> str:
        """The name of a spec file as this module prints it (in comments and docstrings)."""
        return source_name(file, self.root)

    def line(self, text: str = "", source: tuple[str, int | None] | None = None) -> None:
        if not text:
            self.lines.append("")
            return
        if source is not None and source[1] is not None:
            text = f"{text}  # {self.source(source[0])}:{source[1]}"
        self.lines.append(self.indent_unit * self.level + text)

    def assign(self, values: list[tuple[str, str, int | None]], file: str) -> None:
        """`a = x` for one (target, value, spec line), `a, b = (x, y)` (simultaneous) for several, each
        value traced to its line."""
        if len(values) == 1:
            target, value, line = values[0]
            self.line(f"{target} = {value}", (file, line))
        elif values:
            self.line(f"{', '.join(target for target, _v, _l in values)} = (")
            with self.indent():
                for _t, value, line in values:
                    self.line(f"{value},", (file, line))
            self.line(")")

    def named_tuple(self, name: str, doc: str, fields: list[str]) -> None:
        """`class NAME(NamedTuple)`: its docstring, then one `field: type` line each (`pass` for none)."""
        with self.block(f"class {name}(NamedTuple)", doc, after=2):
            for field in fields or ["pass"]:
                self.line(field)

    def blank(self, count: int = 1) -> None:
        """Blank lines, never more than `count` in a row and none at the start of a block."""
        if not self.lines or self.lines[-1].endswith(":"):
            return
        trailing = len(self.lines) - len(self.lines_rstrip_blank())
        self.lines.extend([""] * max(0, count - trailing))

    def lines_rstrip_blank(self) -> list[str]:
        out = list(self.lines)
        while out and out[-1] == "":
            out.pop()
        return out

    @contextmanager
    def indent(self) -> Iterator[None]:
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    @contextmanager
    def block(self, header: str, doc: str | None = None, *, decorators: Sequence[str] = (),
              after: int = 0) -> Iterator[None]:
        """`header:` with its decorators and the indented body (its docstring first), then `after`
        blank lines: the frame of every generated class, function and `if`."""
        for decorator in decorators:
            self.line(decorator)
        self.line(f"{header}:")
        with self.indent():
            if doc is not None:
                self.docstring(doc)
            yield
        self.blank(after)

    def docstring(self, text: str) -> None:
        """A docstring, its lines wrapped at spaces to the line limit."""
        body = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        width = LIMIT - len(self.indent_unit) * self.level
        lines = [part for line in body.splitlines() for part in (wrap_text(line, width) if line.strip() else [line])]
        if len(lines) == 1 and len(lines[0]) + 6 <= width:
            self.line(f'"""{lines[0]}"""')
            return
        lines = [*wrap_text(lines[0], width - 3), *lines[1:]]
        self.line(f'"""{lines[0]}')
        for extra in lines[1:]:
            self.line(extra) if extra.strip() else self.lines.append("")
        self.line('"""')

    def text(self) -> str:
        """The code, every statement within the line limit (`layout.py`)."""
        return layout("\n".join(self.lines_rstrip_blank())) + "\n"
