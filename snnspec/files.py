"""Files in and out, as a careful Unix tool handles them: the one door for reading a file and the one
for writing any file (generated code, cache entries, metrics, checkpoints, figures).

Reading takes regular files only and never blocks (a FIFO or a device is refused before it is
read); a spec is also a `.snn` file of UTF-8 text, at most `SPEC_LIMIT` bytes. Writing goes through
a temporary file beside the target and `os.replace`, so a reader sees the old file or the new one,
never part of one; a target that exists and is not a regular file (a device such as /dev/null, a
directory, a FIFO, a symlink) is refused, never replaced or written through. Problems are
`FileProblem`s: one sentence, for a diagnostic or a one-line error. This module imports nothing of
snnspec, so every stage may use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

SPEC_SUFFIX = ".snn"
SPEC_LIMIT = 1_000_000  # bytes: a spec is text a person writes; the largest example is ~5 kB


class FileProblem(Exception):
    """Why a file cannot be read or written: `message` completes "cannot write 'PATH': ..." (`path`, where
    the writer knows it); `line` and `column` say where in the file, when the problem has a place."""

    def __init__(self, message: str, hint: str | None = None, *, path: Path | None = None, line: int | None = None,
                 column: int | None = None):
        super().__init__(f"cannot write '{path}': {message}" if path is not None else message)
        self.message, self.hint, self.path, self.line, self.column = message, hint, path, line, column


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _os_problem(err: OSError | ValueError, path: Path | None = None) -> FileProblem:
    """An OSError in words; `path`: the file being written."""
    if isinstance(err, ValueError):  # a NUL in the path
        return FileProblem("the path contains a NUL character", path=path)
    if isinstance(err, (NotADirectoryError, FileExistsError)) and path is not None:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return FileProblem(f"'{blocker}' is a file, not a folder", path=path)
    if isinstance(err, FileNotFoundError) and path is None:
        return FileProblem("no such file")
    return FileProblem(err.strerror.lower() if err.strerror else str(err), path=path)


def check_spec_name(path: Path) -> None:
    """Only `.snn` files are specs, also where a symlink leads: nothing else is ever read (or quoted in a
    diagnostic)."""
    if "\x00" in str(path):  # no file system names one; os.path would raise ValueError
        raise FileProblem("the path holds a NUL character", "write the file's name without control characters")
    if not path.name.endswith(SPEC_SUFFIX):
        what = "a directory, not a .snn file" if os.path.isdir(path) else "not a .snn file"
        raise FileProblem(what, f"snnspec reads only spec files named *{SPEC_SUFFIX}")
    real = os.path.realpath(path)
    if not real.endswith(SPEC_SUFFIX):
        raise FileProblem(f"it links to '{real}', which is not a .snn file",
                          f"snnspec reads only spec files named *{SPEC_SUFFIX}")


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of the regular file `path` (at most `limit` of them, if given), never blocking: a FIFO or
    a device is refused before it is opened, and again if the path changed before it was."""
    try:
        if not stat.S_ISREG(mode := os.stat(path).st_mode):  # before opening: opening a device may act
            raise FileProblem(f"{_kind(mode)}, not a regular file", "a spec is a regular .snn file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as err:
        raise _os_problem(err) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())  # what was opened, should the path have changed since the stat
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem(f"{_kind(info.st_mode)}, not a regular file", "a spec is a regular .snn file")
        if limit is None:
            return f.read()
        data = f.read(limit + 1) if info.st_size <= limit else b""
    if info.st_size > limit or len(data) > limit:
        raise FileProblem(f"larger than the limit of {limit:,} bytes for a spec file ({max(info.st_size, len(data)):,}"
                          " bytes)", "split it into files that import each other")
    return data


def read_spec(path: Path, limit: int = SPEC_LIMIT) -> str:
    """The text of the spec file `path`: a regular `.snn` file of UTF-8 text, at most `limit` bytes."""
    check_spec_name(path)
    data = read_regular(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise FileProblem(f"not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}, column {column})",
                          "save the file as UTF-8", line=line, column=column) from None


def check_target(path: Path) -> None:
    """Refuse to write `path` where it exists and is not a regular file, or is a symlink (which would be
    replaced by a file, or written through)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as err:  # e.g. a regular file where a folder of the path should be
        raise _os_problem(err, path) from None
    if stat.S_ISLNK(info.st_mode):
        raise FileProblem("it is a symbolic link (snnspec neither replaces a link nor writes through one; name the "
                          "file it links to)", path=path)
    if not stat.S_ISREG(info.st_mode):
        raise FileProblem(f"it is {_kind(info.st_mode)}, not a regular file", path=path)


def write_atomic(path: Path, data: str | bytes | Callable[[BinaryIO], None], *, durable: bool = False) -> None:
    """Write `data` (text as UTF-8, or what a function writes to a binary file) to `path`: a temporary
    file beside it, then `os.replace`. Its folders are made; an existing file keeps its permissions.
    `durable`: fsync the file and its folder, so that the write survives a power cut (checkpoints)."""
    check_target(path)
    folder = path.parent
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except (OSError, ValueError) as err:
        raise _os_problem(err, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        check_target(path)  # once more, just before the rename: the narrowest window for a swap
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise _os_problem(err, path) from None
        raise
    if durable:
        _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
