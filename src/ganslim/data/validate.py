"""Decode every image of a dataset before any work starts, and remember the files that decoded.

A run that meets a truncated file hours in dies with a half-written run folder, so datasets decode all their
files when they are built. Each file is decoded fully (``load_image``, as training will read it), not only
checked with PIL's ``verify()``, which reads no JPEG pixel data and so passes a truncated JPEG. Files that
decoded are recorded (path, size, modification time, width x height) in a small JSON cache and not decoded again
while unchanged, so a large dataset costs one decode per file once (about one epoch of data loading, spread over
a few threads) and a ``stat`` per file afterwards.

The cache is an optimisation only: it lives in ``$GANSLIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganslim``, else
``~/.cache/ganslim``; when it cannot be read or written, every file is simply decoded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ganslim.atomic import atomic_write_text
from ganslim.data.images import load_image
from ganslim.errors import GanslimError

__all__ = ["CACHE_FILE", "cache_dir", "image_sizes"]

CACHE_FILE = "decoded_images.json"
_CACHE_VERSION = 1
_DECODE_THREADS = 8  # PIL decodes without the GIL, so a cold check scales with cores


def cache_dir() -> Path:
    """``$GANSLIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganslim``, else ``~/.cache/ganslim`` (not created)."""
    if os.environ.get("GANSLIM_CACHE_DIR"):
        return Path(os.environ["GANSLIM_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ganslim"
    return Path.home() / ".cache" / "ganslim"


def image_sizes(paths: Sequence[str | os.PathLike]) -> list[tuple[int, int]]:
    """(width, height) of every file, decoding (on a few threads) each one the cache does not know unchanged.

    Raises:
        GanslimError: naming the first file that cannot be decoded and how many others cannot (all are
            tried, so one run lists the whole damage).
    """
    cache = _read_cache()
    keys = [os.path.abspath(path) for path in paths]
    stamps = [_stamp(path) for path in paths]
    todo = [i for i, (key, stamp) in enumerate(zip(keys, stamps)) if not stamp or cache.get(key, [])[:2] != stamp]
    with ThreadPoolExecutor(max_workers=min(_DECODE_THREADS, os.cpu_count() or 1)) as pool:
        decoded = dict(zip(todo, pool.map(_decode, [paths[i] for i in todo])))
    unreadable = [result for result in decoded.values() if isinstance(result, GanslimError)]
    for i, result in decoded.items():
        if stamps[i] and not isinstance(result, GanslimError):
            cache[keys[i]] = [*stamps[i], *result]
    if len(unreadable) < len(decoded):
        _write_cache(cache)
    if unreadable:
        more = f" ({len(unreadable) - 1} more of the {len(paths)} images cannot be read)" if len(unreadable) > 1 else ""
        raise GanslimError(f"{unreadable[0]}{more}")
    return [decoded[i] if i in decoded else (cache[key][2], cache[key][3]) for i, key in enumerate(keys)]


def _stamp(path: str | os.PathLike) -> list[int] | None:
    """[size, modification time in ns] of the file, or None if it is gone (decoding it then names it)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _decode(path: str | os.PathLike) -> tuple[int, int] | GanslimError:
    try:
        return load_image(path).size
    except GanslimError as error:
        return error


def _read_cache() -> dict[str, list[int]]:
    try:
        content = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(content, dict) or content.get("version") != _CACHE_VERSION:
        return {}
    files = content.get("files")
    if not isinstance(files, dict):
        return {}
    return {key: entry for key, entry in files.items()
            if isinstance(entry, list) and len(entry) == 4 and all(type(value) is int for value in entry)}


def _write_cache(files: dict[str, list[int]]) -> None:
    text = json.dumps({"version": _CACHE_VERSION, "files": files}, separators=(",", ":"))
    try:
        atomic_write_text(text, cache_dir() / CACHE_FILE)
    except GanslimError:  # a read-only or full cache folder only costs the next run a decode
        pass
