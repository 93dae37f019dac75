"""Anycost GAN's sub-generators of a StyleGAN2 generator: a target resolution and a width for every layer.

Layers are Anycost's (18 at 1024, :func:`~ganslim.archs.stylegan2.channels.layer_sides`): the constant input, conv1,
then the x2 up conv and the conv of each side 8, ..., size. A sub-generator at resolution r runs the first
2*log2(r) - 2 layers, each with the *first* ``channels[i]`` channels of the full layer, and returns the skip image
at r (the sum of the to-RGB outputs up to r).

* **Uniform** ratio q: ``min(full, int(uncapped * q))`` per layer, where the uncapped width is the one the side
  would have without StyleGAN2's 512 cap: the last layer's width doubled per halving of the side (Anycost's base
  table {4: 4096, ..., 1024: 16} x the channel multiplier), or the full width where that is larger. So at q = 0.5
  config-f's 4-32 px layers stay 512 (uncapped 8192 .. 1024), as Anycost's configs have them.
* **Flexible**: per layer, one of the widths the ratios 0.25, 0.5, 0.75, 1 give (``int(q * full)``, at least 8,
  rounded up to a multiple of 4), keeping only those at least the uniform 0.25 width (:func:`flexible_choices`).
* **Files**: Anycost's JSON (``assets/evolve_configs/*.json``), named configs
  ``{"NAME": {"channels": [18 widths], "res": R, "macs": M, ...}}`` (:func:`read_channel_configs`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ganslim.archs.stylegan2.channels import layer_sides
from ganslim.errors import GanslimError, first_line

CHANNEL_RATIOS = (0.25, 0.5, 0.75, 1.0)
MIN_FLEXIBLE_CHANNELS = 8
FLEXIBLE_DIVISOR = 4

ChannelsSpec = float | str | Sequence[int]


@dataclass(frozen=True)
class Subnet:
    """A sub-generator: output ``resolution`` and the width of each layer it runs (2*log2(resolution) - 2)."""

    resolution: int
    channels: tuple[int, ...]


@dataclass(frozen=True)
class NamedConfig:
    """One entry of an Anycost config file: its channels (one per layer of the full generator), the resolution it
    was chosen for and the MACs its search reported (published convention; None when absent)."""

    name: str
    resolution: int
    channels: tuple[int, ...]
    macs: int | None


def layer_count(resolution: int) -> int:
    """Layers a sub-generator stopping at ``resolution`` runs: 2*log2(resolution) - 2."""
    return 2 * int(math.log2(resolution)) - 2


def uncapped_channels(full: Sequence[int]) -> tuple[int, ...]:
    """Per layer, the width before StyleGAN2's cap: ``max(full[i], full[-1] * size / side_i)`` (see the module
    docstring); config-f at 1024: 8192 at 4 px ... 32 at 1024 px."""
    sides = layer_sides(_size(full))
    return tuple(max(width, full[-1] * sides[-1] // side) for width, side in zip(full, sides))


def uniform_channels(full: Sequence[int], ratio: float) -> tuple[int, ...]:
    """Anycost's uniform config of ratio ``ratio`` (in (0, 1]) for a generator of per-layer widths ``full``."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise GanslimError(f"channel ratio {ratio!r} is not in (0, 1]: use e.g. one of "
                           f"{', '.join(map(str, CHANNEL_RATIOS))}")
    return tuple(min(width, max(1, int(uncapped * ratio))) for width, uncapped in zip(full, uncapped_channels(full)))


def flexible_choices(full: Sequence[int], min_channels: int = MIN_FLEXIBLE_CHANNELS,
                     divisor: int = FLEXIBLE_DIVISOR) -> tuple[dict[float, int], ...]:
    """Per layer, ``{ratio: width}`` for the ratios of :data:`CHANNEL_RATIOS` a flexible config may take there:
    ``int(ratio * full)``, raised to ``min_channels`` and up to a multiple of ``divisor`` (never above full), for
    the ratios whose ``ratio * full`` reaches the uniform 0.25 width (Anycost's floor). Ratio 1 is always there."""
    floor = uniform_channels(full, CHANNEL_RATIOS[0])
    return tuple({ratio: min(width, math.ceil(max(int(ratio * width), min_channels) / divisor) * divisor)
                  for ratio in CHANNEL_RATIOS if ratio * width >= bottom}
                 for width, bottom in zip(full, floor))


def parse_channels(text: str) -> float | tuple[int, ...]:
    """A ``--channels`` value: ``"RATIO"`` -> float, ``"C1,...,Cn"`` -> widths (FILE.json:NAME is for
    :func:`resolve_subnet`)."""
    try:
        if "," in text:
            return tuple(int(part) for part in text.split(","))
        return float(text)
    except ValueError:
        raise GanslimError(f"channels '{text}' is neither a ratio (e.g. 0.5) nor comma-separated widths (e.g. "
                           f"512,512,256,...) nor FILE.json:NAME") from None


def read_channel_configs(path: str | os.PathLike) -> dict[str, NamedConfig]:
    """The named configs of an Anycost JSON file (see the module docstring), in the file's order."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise GanslimError(f"channel config file '{path}' does not exist: pass an Anycost config JSON") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GanslimError(f"channel config file '{path}' cannot be read ({first_line(error)}): pass an Anycost "
                           f"config JSON") from None
    if not isinstance(content, dict):
        raise GanslimError(f"channel config file '{path}' is not a JSON object of named configs")
    configs = {}
    for name, entry in content.items():
        try:
            channels = tuple(entry["channels"])
            resolution = entry["res"]
            macs = entry.get("macs")
        except (TypeError, KeyError, AttributeError):
            raise GanslimError(f"channel config '{name}' in '{path}' has no \"channels\" list and \"res\" "
                               f"resolution") from None
        if not all(isinstance(width, int) for width in channels) or not isinstance(resolution, int):
            raise GanslimError(f"channel config '{name}' in '{path}' holds non-integer channels or resolution")
        configs[name] = NamedConfig(name, resolution, channels, macs if isinstance(macs, int) else None)
    return configs


def resolve_subnet(full: Sequence[int], resolution: int | None = None,
                   channels: ChannelsSpec | None = None) -> Subnet:
    """The sub-generator of a generator of per-layer widths ``full`` for a target ``resolution`` (None: the full
    side) and ``channels``: None (full widths), a ratio (uniform), widths for every layer of the full generator or
    for those up to ``resolution``, or a string of either (:func:`parse_channels`) or ``FILE.json:NAME`` (that
    config; its resolution unless ``resolution`` is given).

    Raises:
        GanslimError: a resolution that is no power of two in 4 .. size, a wrong number of widths, a width outside
            1 .. the full layer's, a ratio outside (0, 1], or an unreadable config file / unknown name.
    """
    size = _size(full)
    if isinstance(channels, str):
        channels, resolution = _channels_from_text(channels, resolution)
    if resolution is None:
        resolution = size
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 4 <= resolution <= size \
            or resolution & (resolution - 1):
        raise GanslimError(f"resolution {resolution!r} is not a power of two in 4 .. {size}: this generator stops "
                           f"early at 4, 8, ..., {size}")
    count = layer_count(resolution)
    if channels is None:
        widths = tuple(full)
    elif isinstance(channels, (int, float)):
        widths = uniform_channels(full, channels)
    else:
        widths = tuple(channels)
        if len(widths) not in (len(full), count):
            at = f" or {count} (up to resolution {resolution})" if count != len(full) else ""
            raise GanslimError(f"channels {list(widths)} has {len(widths)} widths; this {size} px generator takes "
                               f"{len(full)} (one per layer: the constant input, conv1, two per side 8, ..., "
                               f"{size}){at}")
        for index, (width, most) in enumerate(zip(widths, full)):
            if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= most:
                raise GanslimError(f"channels: layer {index} ({layer_sides(size)[index]} px) width {width!r} is "
                                   f"outside 1 .. {most}, that layer's full width")
    return Subnet(resolution, widths[:count])


def _channels_from_text(text: str, resolution: int | None) -> tuple[float | tuple[int, ...], int | None]:
    file, _, name = text.rpartition(":")
    if not file.lower().endswith(".json"):
        return parse_channels(text), resolution
    configs = read_channel_configs(file)
    if name not in configs:
        raise GanslimError(f"channel config file '{file}' has no config '{name}'; it has: {', '.join(configs)}")
    config = configs[name]
    return config.channels, config.resolution if resolution is None else resolution


def _size(full: Sequence[int]) -> int:
    """The side of a generator with per-layer widths ``full`` (2*log2(size) - 2 of them)."""
    return 2 ** ((len(full) + 2) // 2)
