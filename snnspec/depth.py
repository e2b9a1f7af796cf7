"""How deep the recursive stages may walk an expression tree.

The parser enforces the limits (a diagnostic past them); every later stage walks expressions
recursively, a few Python frames per level, so the public entry points run with a recursion
limit that lets a tree at those limits through all of them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

MAX_NESTING = 200  # brackets, calls, signs, powers: what nests (a chain like `a + b + c` is one level)
MAX_DEPTH = 1000  # the tree as the recursive stages walk it, where each `+` of a chain is one level more
_FRAMES = 3 * MAX_DEPTH  # the deepest stages (dimensions, hoisting) take 2 frames a level; and the callers'


@contextmanager
def recursion_room() -> Iterator[None]:
    """Run with a recursion limit of at least `_FRAMES` (as a `with` block or a decorator)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _FRAMES))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
