"""Where a command writes: checked before its work starts, and one line when a write fails anyway.

A command checks its output location first (:func:`check_output_folder`, :func:`check_output_file`), so a path
that is a file or a read-only folder fails at once rather than after minutes of work. :func:`write_error` turns
an ``OSError`` raised while writing (full disk, read-only folder, a file where a folder should be) into one
:class:`~ganslim.errors.GanslimError`; :mod:`ganslim.atomic` raises it for every file it writes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ganslim.errors import GanslimError, first_line

__all__ = ["check_output_file", "check_output_folder", "make_folder", "write_error"]

_NO_SPACE = "free some disk space or write elsewhere"
_READ_ONLY = "pass a location you can write to"
_NOT_A_FOLDER = "part of the path is a file, not a folder: pass another path"
_FIXES = {errno.ENOSPC: _NO_SPACE, errno.EDQUOT: _NO_SPACE, errno.EFBIG: _NO_SPACE,
          errno.EACCES: _READ_ONLY, errno.EPERM: _READ_ONLY, errno.EROFS: _READ_ONLY,
          errno.ENOTDIR: _NOT_A_FOLDER, errno.EEXIST: _NOT_A_FOLDER,
          errno.EISDIR: "it is a folder: pass a file name"}


def write_error(path: str | os.PathLike, error: OSError) -> GanslimError:
    """The one-line error for ``error``, raised while writing ``path``: what failed and what to do."""
    reason = error.strerror or first_line(error)
    return GanslimError(f"cannot write '{path}' ({reason}): {_FIXES.get(error.errno, 'check the path')}")


def make_folder(folder: str | os.PathLike) -> Path:
    """``mkdir -p folder``, with a one-line :class:`GanslimError` when it cannot be created."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(folder, error) from None
    return folder


def check_output_folder(folder: str | os.PathLike, flag: str) -> Path:
    """``folder`` as a Path, once it is known to be a writable folder or creatable as one (nothing is created).

    ``flag`` names the option in messages, e.g. ``--output``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GanslimError(f"{flag} '{folder}' is a file, not a folder: pass a folder")
    _check_writable(folder, flag, folder)
    return folder


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a Path, once it is known that a file can be written there (nothing is created)."""
    path = Path(path)
    if path.is_dir():
        raise GanslimError(f"{flag} '{path}' is a folder: pass a file name")
    _check_writable(path.parent, flag, path)
    return path


def _check_writable(folder: Path, flag: str, target: Path) -> None:
    """Raise unless ``folder`` exists writable, or its nearest existing ancestor is a writable folder."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise GanslimError(f"{flag} '{target}' cannot be created: '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GanslimError(f"{flag} '{target}' cannot be written: '{existing}' is read-only: {_READ_ONLY}")
