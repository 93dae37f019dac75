"""The input size of `translate`, `eval`, `quantize` and `bench`: --size when given, else the size the model was
trained at (recorded in ganslim checkpoints), else 256; the command says which it used, and why.

Super-resolution models (``Signature.super_resolution``) never resize their input: a command that resizes image
files runs them on each image at its own size and refuses --size; a command that makes inputs of the size itself
(bench's timing, a static int8 shape) takes --size, else 256, as their low-resolution input side."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ganslim.signature import Signature

DEFAULT_SIZE = 256
SR_DEFAULT_SIDE = 64  # an LR side a super-resolution model runs at when none is asked (x4: 256x256 out)


def choose_size(requested: int | None, trained: Sequence[tuple[str, int | None]],
                signatures: Sequence[Signature] = (), resizes: bool = True) -> int | None:
    """The size to run at, announced in one line on stderr (stdout stays the command's report or JSON).

    ``trained`` lists ``(model, its training size or None)``; models that record different sizes need --size.
    ``signatures`` are the models' (``LoadedModel.signature``); for super-resolution models the result is None (each
    image at its own size; --size refused) when the command ``resizes`` image files, else the LR input side
    (``--size``, else the smallest side of at least 64 every model takes).
    """
    from ganslim.apps.translate import check_no_resize
    from ganslim.signature import common_side
    from ganslim.errors import GanslimError

    kinds = {signature.super_resolution for signature in signatures}
    if len(kinds) > 1:
        raise GanslimError("the models mix super-resolution and image-to-image generators, which take their inputs "
                           "differently: pass models of one kind")
    if kinds == {True}:
        if resizes:
            check_no_resize(signatures[0], requested)
            print("size: each image's own (super-resolution models never resize their input)", file=sys.stderr)
            return None
        if requested is not None:
            size, why = requested, "--size"
        else:
            size = common_side((signature.image_input.sides for signature in signatures), SR_DEFAULT_SIDE)
            why = f"the default for super-resolution models: --size sets the LR side; at least {SR_DEFAULT_SIDE}"
        print(f"LR input size {size}x{size} ({why})", file=sys.stderr)
        return size
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
