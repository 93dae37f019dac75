"""Atomic file writes: a file either appears complete or not at all, even if the process is killed.

A write that fails with an ``OSError`` (full disk, read-only folder, ...) raises one
:class:`~ganslim.errors.GanslimError` naming the file, and leaves no temporary file behind.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

from ganslim.outputs import write_error


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the file the usual permissions
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        raise write_error(path, error) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save`` that never leaves a half-written file behind."""
    # Serialised in memory first: torch's own file writer reports a full disk as an opaque RuntimeError.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
