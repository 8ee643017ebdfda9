"""Writing files so that a reader, or a crash, never sees half of one.

Shared by the sylink.xml writer and the reference client's state directory: a new
file is written beside the old one and renamed over it (``os.replace`` is atomic on
POSIX), optionally with ``fsync`` of the file and of its directory.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

__all__ = ["TMP_SUFFIX", "atomic_write", "fsync_dir", "write_tmp"]

#: The suffix of a temporary file not yet renamed (a crash can leave one behind).
TMP_SUFFIX: Final = ".tmp"


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (creations, renames, deletions) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tmp(directory: Path, name: str, data: bytes, fsync: bool) -> Path:
    """Write ``data`` to a fresh hidden temporary file; return its path."""
    tmp = directory / f".{name}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: readers and crashes see the old file or the new
    one, never a mix. With ``fsync`` the new content survives a power cut too."""
    tmp = write_tmp(path.parent, path.name, data, fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)
