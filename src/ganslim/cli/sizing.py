"""The input size of `translate`, `eval`, `quantize` and `bench`: --size when given, else the size the model was
trained at (recorded in ganslim checkpoints), else 256; the command says which it used, and why."""

from __future__ import annotations

import sys
from collections.abc import Sequence

DEFAULT_SIZE = 256


def choose_size(requested: int | None, trained: Sequence[tuple[str, int | None]]) -> int:
    """The size to run at, announced in one line on stderr (stdout stays the command's report or JSON).

    ``trained`` lists ``(model, its training size or None)``; models that record different sizes need --size.
    """
    from ganslim.errors import GanslimError

    known = [(name, size) for name, size in trained if size is not None]
    if requested is not None:
        size, why = requested, "--size"
    elif len({size for _, size in known}) > 1:
        listing = ", ".join(f"{name} at {size}" for name, size in known)
        raise GanslimError(f"the models were trained at different sizes ({listing}): pass --size")
    elif known:
        size, why = known[0][1], f"the size {known[0][0]} was trained at"
    else:
        size, why = DEFAULT_SIZE, "the default: no training size is recorded with the model"
    print(f"size {size}x{size} ({why})", file=sys.stderr)
    return size
