"""The code that generated modules carry with them.

Each backend's helpers are a real Python file here (`torch_helpers.py`, `jax_helpers.py`), linted and
typed with the package and importable by tests, but never imported by snnspec itself: a backend reads
the file's text and copies into a generated module the definitions its code calls, so the module
stays self-contained.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from importlib.resources import files


@cache
def helpers(backend: str) -> dict[str, str]:
    """The top-level definitions of `{backend}_helpers.py` by name, as source text, in file order.

    A definition's text runs from the end of the one before it, so the statements between (its
    constants, a guarded import) and its comments travel with it; the module's docstring and
    imports at the top stay behind."""
    source = (files(__package__) / f"{backend}_helpers.py").read_text()
    lines = source.splitlines()
    body = ast.parse(source).body
    header = 0
    while isinstance(body[header], ast.Import | ast.ImportFrom | ast.Expr):
        header += 1
    start = body[header - 1].end_lineno or 0
    out: dict[str, str] = {}
    for node in body[header:]:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            end = node.end_lineno or node.lineno
            out[node.name] = "\n".join(lines[start:end]).strip("\n")
            start = end
    return out


def called(available: dict[str, str], code: str) -> list[str]:
    """The helpers that `code` calls, with the helpers they call, in the order `available` gives."""
    used = {name for name in available if re.search(rf"\b{name}\(", code)}
    while more := {name for name in available if name not in used
                   and any(re.search(rf"\b{name}\(", available[u]) for u in used)}:
        used |= more
    return [text for name, text in available.items() if name in used]
