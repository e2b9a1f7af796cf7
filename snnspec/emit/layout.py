"""Generated lines kept under the line limit, as a careful person would break them.

A statement longer than the limit is broken inside brackets (Python's implicit continuation): at
the outermost commas first, else before the outermost `+`, `-`, `*`, `/`, `if` or `else`, else after an
opening bracket (the arguments on the next line); an assignment whose
value has no bracket around it gets one. Continuation lines hang four spaces deeper than the
statement, and a `# file.snn:LINE` comment stays at the end of the statement's last line.
Docstrings are wrapped at spaces (`wrap_text`).
"""

from __future__ import annotations

import io
import textwrap
import tokenize
from collections.abc import Iterator

LIMIT = 120
_OPEN, _CLOSE = "([{", ")]}"
_OPERATORS = (" + ", " - ", " * ", " / ", " if ", " else ")


def wrap_text(line: str, limit: int = LIMIT) -> list[str]:
    """A line of prose broken at spaces, its continuation lines indented like it."""
    if len(line) <= limit:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    return textwrap.wrap(line.strip(), limit, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [line]


def layout(source: str, limit: int = LIMIT) -> str:
    """`source` with every statement line over `limit` broken (lines inside strings untouched)."""
    lines = source.split("\n")
    depth, in_string = _line_states(source, len(lines))
    out: list[str] = []
    for k, line in enumerate(lines):
        if len(line) <= limit or in_string[k]:
            out.append(line)
        elif line.lstrip().startswith("# "):  # a comment of its own: wrapped as prose
            indent = line[: len(line) - len(line.lstrip())] + "# "
            out.extend(indent + piece.lstrip() for piece in wrap_text(" " * len(indent) + line.lstrip()[2:], limit))
        else:
            out.extend(wrap_statement(line, depth[k], limit))
    return "\n".join(out)


def _line_states(source: str, n: int) -> tuple[list[int], list[bool]]:
    """For each line: the bracket depth at its start, and whether it starts inside a string."""
    depth, in_string = [0] * (n + 1), [False] * (n + 1)
    level = 0
    seen = 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        row = tok.start[0] - 1
        while seen < row:  # lines that start before this token keep the depth reached so far
            seen += 1
            depth[seen] = level
        if tok.type == tokenize.STRING:
            for r in range(tok.start[0], tok.end[0]):
                in_string[r] = True  # the lines a multi-line string continues onto
        elif tok.type == tokenize.OP and tok.string in _OPEN:
            level += 1
        elif tok.type == tokenize.OP and tok.string in _CLOSE:
            level -= 1
    return depth, in_string


def _split_comment(line: str) -> tuple[str, str]:
    """The code of a generated line and its trailing `  # ...` comment (generated code puts `#` in
    no string it prints on a statement line that has a comment)."""
    code, sep, comment = line.partition("  # ")
    return (code, sep + comment) if sep else (line, "")


def _scan(code: str, depth: int) -> Iterator[tuple[int, int]]:
    """(position, bracket depth after it) of each character of `code` outside strings."""
    quote = ""
    for i, c in enumerate(code):
        if quote:
            if c == quote and code[i - 1] != "\\":
                quote = ""
            continue
        if c in "\"'":
            quote = c
            continue
        depth += (c in _OPEN) - (c in _CLOSE)
        yield i, depth


COMMA, OPERATOR, HANGING = 0, 1, 2  # the kinds of break, the preferred first


def _breaks(code: str, start_depth: int) -> list[tuple[int, int, int]]:
    """Where `code` may break: (position, bracket depth there, kind), outside strings."""
    out = []
    for i, depth in _scan(code, start_depth):
        if depth > 0 and code[i] == "," and code[i + 1:i + 2] == " ":
            out.append((i + 2, depth, COMMA))
        elif depth > 0 and code[i] == " " and any(code.startswith(op, i) for op in _OPERATORS):
            out.append((i + 1, depth, OPERATOR))
        elif depth > 0 and code[i:i + 2] == ": ":  # a dict's value (or an annotation) on the next line
            out.append((i + 2, depth, HANGING))
        elif code[i] in "({" and code[i + 1:i + 2] not in ("", ")", "}"):  # a hanging break: `f(` then the arguments
            out.append((i + 1, depth, HANGING))
    return out


def _closed(code: str) -> bool:
    """Whether every bracket `code` opens it also closes (a statement on one line, not `x = (`)."""
    return [0, *(depth for _i, depth in _scan(code, 0))][-1] == 0


def wrap_statement(line: str, start_depth: int, limit: int = LIMIT) -> list[str]:
    """One long physical line as several, each within `limit` where a break allows it."""
    code, comment = _split_comment(line)
    indent = code[: len(code) - len(code.lstrip())]
    if comment and len(code) <= limit and ".snn:" not in comment:  # a note, not a source map: the line above
        return [*(indent + "# " + piece.lstrip() for piece in wrap_text(indent + comment.strip()[2:], limit - 2)),
                code]
    if start_depth == 0 and " = " in code and not _breaks(code, 0):
        target, _, value = code.partition(" = ")
        if ", " in target:  # `a, b = ...`: bracket the targets to break between them
            code = f"{indent}({target.strip()}) = {value}"
        elif _closed(value):  # `x = a * b`: bracket the value to break inside it (not `x = (`, open already)
            code = f"{target} = ({value})"
    pieces = _broken(code, comment, indent, start_depth, limit)
    value = code.strip().removeprefix("return ")
    if start_depth == 0 and code.strip().startswith("return ") and any(len(p) > limit for p in pieces) \
            and _closed(value):  # `return a, b`: bracketed, to break between them
        return _broken(f"{indent}return ({value})", comment, indent, 0, limit)
    if start_depth == 0 and " = " in code and any(len(p) > limit for p in pieces):
        target, _, value = code.partition(" = ")
        if _closed(value) and not value.startswith("("):  # `x = a - g * (a - b)`: break outside the brackets too
            return min(pieces, _broken(f"{target} = ({value})", comment, indent, 0, limit),
                       key=lambda lines: sum(len(p) > limit for p in lines))
    return pieces


def _broken(code: str, comment: str, indent: str, start_depth: int, limit: int) -> list[str]:
    """`code` broken at the best places its brackets allow, each piece within `limit` where one can be."""
    pieces: list[str] = []
    rest, hang = code, indent + "    "
    depth = start_depth
    while len(rest) + len(comment) > limit:
        head = len(indent) if not pieces else len(hang)
        options = [(d, -pos, pos, kind) for pos, d, kind in _breaks(rest, depth)
                   if head < pos <= limit and rest[:pos].strip()]
        if not options:
            break
        # hanging breaks only where no other fits; then the outermost level; commas before operators;
        # the latest break that fits
        plain = [o for o in options if o[3] != HANGING] or options
        top = min(d for d, *_ in plain)
        best = min((o for o in plain if o[0] == top), key=lambda o: (o[3], o[1]))
        depth, pos = best[0], best[2]
        pieces.append(rest[:pos].rstrip())
        rest = hang + rest[pos:].lstrip()
    return [*pieces, rest + comment]
