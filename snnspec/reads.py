"""The files a check read, so that its cached result (`snnspec.check`) is served only while every one of
them holds the text it held then: a result keyed by the root file alone would miss an edit of a file
it imports."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .ir import Model
from .loader import STD_SURROGATES, Program, display_name, resolve
from .stdlib import std_dir


class FileRead(Model):
    """A file as the loader opened it (`path`), the name diagnostics call it by (None: the caller named it),
    and a hash of its text."""

    path: str
    name: str | None
    sha256: str


class FilesRead(Model):
    """What a cached check is checked against before it is served."""

    files: tuple[FileRead, ...]

    def unchanged(self) -> bool:
        """Every file still reads as it did and is still named as it was (so the loader, given the same
        texts, would open the same paths and say the same things)."""
        return all(_file_digest(Path(f.path)) == f.sha256 and f.name in (None, display_name(Path(f.path)))
                   for f in self.files)


def files_read(program: Program, path: str | Path | None) -> FilesRead | None:
    """Every path the loader opened for `program` (the root `path`: None where the caller gave its text;
    each import; the standard surrogates), each with the text the program holds for it; None if one has
    none."""
    opened: list[tuple[Path, str, bool]] = []  # (path, name, whether the name is derived from the path)
    if path is not None:
        opened.append((Path(path), program.root, program.root == display_name(Path(path))))
    opened += [(resolve(imp.path, importer), target, True) for importer, imports in program.imports.items()
               for imp, target in imports]
    opened.append((std_dir() / "surrogates.snn", STD_SURROGATES, True))  # as `load_program` opens it
    files = []
    for file, name, derived in dict.fromkeys(opened):  # a file imported twice the same way is compared once
        text = program.sources.get(name)
        if text is None:
            return None
        files.append(FileRead(path=str(file), name=name if derived else None, sha256=_digest(text)))
    return FilesRead(files=tuple(files))


def _file_digest(file: Path) -> str | None:
    """The hash of a file's text as the loader reads it (UTF-8, universal newlines); None if unreadable."""
    try:
        return _digest(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
