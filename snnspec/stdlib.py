"""Where the standard library lives, for the loader (imports) and the diagnostics (source lines).

Its own module so that diagnostics can show a line of a `std/...` file without importing the loader.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def std_dir() -> Path:
    """The standard library: `snnspec/_data/std` in the wheel, else the source tree's `specs/std`."""
    packaged = Path(str(resources.files("snnspec") / "_data" / "std"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "specs" / "std"


def std_file(name: str) -> Path | None:
    """The file a `std/...` name stands for; None for any other name."""
    return std_dir() / name.removeprefix("std/") if name.startswith("std/") else None
