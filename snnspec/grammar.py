"""Where the grammar's text lives; apart from `parse` so that reading it does not import lark."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def grammar_text() -> str:
    """The grammar: shipped in the wheel as `snnspec/_data/snn.lark`, else the source tree's."""
    packaged = resources.files("snnspec") / "_data" / "snn.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "grammar" / "snn.lark").read_text(encoding="utf-8")
