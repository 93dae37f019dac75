"""The one exception type for user mistakes, and the helper that fits a foreign error into its one line."""

from __future__ import annotations


class GanslimError(Exception):
    """A mistake the user can fix (bad path, bad data, mismatched checkpoint, impossible budget).

    The message is one line that names the thing and the fix; the CLI prints it without a traceback.
    """


def first_line(error: BaseException, limit: int | None = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters; ``None``: all of it), or its type
    name when the message is empty: the detail a one-line :class:`GanslimError` quotes from torch, NumPy, ..."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
