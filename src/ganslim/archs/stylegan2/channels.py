"""StyleGAN2's channel tables (one width per side 4, 8, ..., size, or for the generator one per layer) and the checks
both networks' arguments share."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ganslim.errors import GanslimError

CONSTANT_CHANNELS = 512  # rosinality's width up to 32 px, whatever the multiplier


def rosinality_channels(size: int, channel_multiplier: int = 2) -> tuple[int, ...]:
    """rosinality's channel table for sides 4, 8, ..., ``size``: 512 up to 32 px, then 256*cm at 64, halving at
    every side: config-f (cm 2) gives 512 x5, 256, 128, 64, 32 at 1024."""
    sides = [2**i for i in range(2, int(math.log2(size)) + 1)]
    return tuple(CONSTANT_CHANNELS if side <= 32 else 16384 * channel_multiplier // side for side in sides)


def resolve_channels(size: int, channel_multiplier: int, channels: Sequence[int] | None) -> tuple[int, ...]:
    """The table a network of side ``size`` is built with: ``channels`` when given (one width per side), else
    rosinality's for ``channel_multiplier``.

    Raises:
        GanslimError: ``size`` is not a power of two of at least 4, or a value is not a positive integer, or
            ``channels`` has the wrong length.
    """
    check_positive_int("size", size)
    if size < 4 or size & (size - 1):
        raise GanslimError(f"stylegan2 size {size} is not a power of two of at least 4: use e.g. 256")
    check_positive_int("channel_multiplier", channel_multiplier)
    if channels is None:
        return rosinality_channels(size, channel_multiplier)
    table = tuple(channels)
    count = int(math.log2(size)) - 1
    if len(table) != count:
        raise GanslimError(f"stylegan2 channels {list(table)} has {len(table)} widths; a {size} px network takes "
                           f"{count} (one per side 4, 8, ..., {size})")
    for width in table:
        check_positive_int("channels", width)
    return table


def layer_sides(size: int) -> tuple[int, ...]:
    """The side each generator layer runs at, in Anycost GAN's layer order: the constant input and conv1 at 4 px, then
    the x2 up conv and the conv of each side 8, ..., ``size``: (4, 4, 8, 8, ..., size, size), 2*log2(size) - 2."""
    return tuple(2 ** (2 + index // 2) for index in range(2 * int(math.log2(size)) - 2))


def resolve_layer_channels(size: int, channel_multiplier: int, channels: Sequence[int] | None) -> tuple[int, ...]:
    """The generator's width per layer (see :func:`layer_sides`; a conv's width is its output's): ``channels`` given
    per layer, or per side (both layers of a side get its width), else rosinality's table for the multiplier.

    Raises:
        GanslimError: as :func:`resolve_channels`, naming both lengths when ``channels`` has neither.
    """
    table = resolve_channels(size, channel_multiplier, None)
    sides = layer_sides(size)
    if channels is not None and len(channels) == len(sides):
        for width in channels:
            check_positive_int("channels", width)
        return tuple(channels)
    if channels is not None and len(channels) != len(table):
        raise GanslimError(f"stylegan2 channels {list(channels)} has {len(channels)} widths; a {size} px generator "
                           f"takes {len(table)} (one per side 4, 8, ..., {size}) or {len(sides)} (one per layer: the "
                           f"constant input, conv1, two per side 8, ..., {size})")
    table = resolve_channels(size, channel_multiplier, channels)
    return tuple(table[index // 2] for index in range(len(sides)))


def check_positive_int(name: str, value: object, arch: str = "stylegan2") -> None:
    """A one-line GanslimError, naming ``arch``, unless ``value`` is an int of at least 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GanslimError(f"{arch} {name}={value!r} is not a positive integer")


def check_positive_number(name: str, value: object, arch: str = "stylegan2") -> None:
    """A one-line GanslimError, naming ``arch``, unless ``value`` is an int or float above 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise GanslimError(f"{arch} {name}={value!r} is not a positive number")
