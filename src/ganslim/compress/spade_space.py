"""The channel search space of a mobile SPADE supernet: candidate widths for each of GAN Compression's 8 entries
``[fc, head_0, G_middle_0, G_middle_1, up_0, up_1, up_2, up_3]`` (``ganslim.archs.spade.mobile``).

By default each entry may take its largest width and the multiples of 8 nearest to 3/4, 1/2, 3/8 and 1/4 of it (as
:mod:`ganslim.compress.space`). MACs are counted on label maps of the network's aspect ratio: ``input_size`` is the
label map's *width* and its height is width / aspect ratio (512 for Cityscapes' 256x512).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ganslim.archs.spade.generator import SPADELayout
from ganslim.archs.spade.mobile import CHANNEL_NAMES, MobileSPADEGenerator, check_spade_channels
from ganslim.archs.spade.super_mobile import SuperMobileSPADEGenerator
from ganslim.compress.space import DEFAULT_MULTIPLE, DEFAULT_RATIOS, CandidateWidths, default_candidates
from ganslim.errors import GanslimError
from ganslim.measure.profile import MacCount, count_macs


@dataclass(frozen=True)
class SpadeSearchSpace(CandidateWidths):
    """Candidate widths per entry of a mobile SPADE configuration, and the architecture (``arch_kwargs`` of the
    supernet, without its ``channels``) its MACs are counted on."""

    candidates: tuple[tuple[int, ...], ...]
    arch_kwargs: tuple[tuple[str, object], ...]

    def __post_init__(self) -> None:
        if len(self.candidates) != len(CHANNEL_NAMES):
            raise GanslimError(f"a mobile SPADE search space needs 8 candidate sets ({', '.join(CHANNEL_NAMES)}), "
                               f"got {len(self.candidates)}")
        normalized = []
        for position, (name, widths) in enumerate(zip(CHANNEL_NAMES, self.candidates)):
            widths = tuple(widths)
            if not widths or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in widths):
                raise GanslimError(f"candidates[{position}] ({name}) must be a non-empty list of positive ints, got "
                                   f"{list(widths)}")
            normalized.append(tuple(sorted({int(w) for w in widths}, reverse=True)))
        object.__setattr__(self, "candidates", tuple(normalized))

    @classmethod
    def for_supernet(cls, supernet: SuperMobileSPADEGenerator, candidates: Sequence[Sequence[int]] | None = None,
                     ratios: Sequence[float] = DEFAULT_RATIOS, multiple: int = DEFAULT_MULTIPLE) -> SpadeSearchSpace:
        """The default space below the supernet's widths, or ``candidates`` checked against them."""
        kwargs = tuple(sorted((key, value) for key, value in supernet.arch_kwargs().items() if key != "channels"))
        if candidates is None:
            candidates = [default_candidates(width, ratios, multiple) for width in supernet.channels]
        space = cls(tuple(tuple(widths) for widths in candidates), kwargs)
        supernet.check_config(space.largest())
        return space

    @property
    def names(self) -> list[str]:
        """Names of the entries."""
        return list(CHANNEL_NAMES)

    def validate(self, channels: Sequence[int]) -> list[int]:
        """``channels`` as a list of ints if every width is a candidate of its entry, else a GanslimError."""
        channels = check_spade_channels(channels)
        for position, (name, width, allowed) in enumerate(zip(CHANNEL_NAMES, channels, self.candidates)):
            if width not in allowed:
                raise GanslimError(f"channels[{position}] ({name}) = {width} is not a candidate; choose one of "
                                   f"{', '.join(map(str, allowed))}")
        return channels

    def predict_macs(self, channels: Sequence[int], input_size: int) -> MacCount:
        """MACs of the compact ``mobile_spade`` at ``channels`` on one label map ``input_size`` wide (see the module
        docstring), counted on the meta device, in both conventions."""
        return _mobile_spade_macs(self.arch_kwargs, tuple(check_spade_channels(channels)), input_size)


def label_map_size(model: SPADELayout, width: int) -> tuple[int, int]:
    """(height, width) of a label map ``width`` wide at ``model``'s aspect ratio (height = width * sh / sw); a width
    it cannot take (sides multiples of 2^u, a latent of at least 2x2) is an error naming the nearest it can."""
    step, unit = 2**model.upsamplings, model.sw // math.gcd(model.sw, model.sh)  # width = step * a multiple of unit
    height = width * model.sh // model.sw
    if width % (step * unit) or height < 2 * step or width < 2 * step:
        smallest = unit * math.ceil(max(2, 2 * model.sw / model.sh) / unit)
        nearest = step * max(smallest, unit * round(width / (step * unit)))
        raise GanslimError(f"size {width} does not fit this {type(model).__name__} (label maps width x "
                           f"{model.sh}/{model.sw} high, sides multiples of {step}, a latent of at least 2x2): use "
                           f"size {nearest}")
    return height, width


@functools.lru_cache(maxsize=4096)
def _mobile_spade_macs(arch_kwargs: tuple[tuple[str, object], ...], channels: tuple[int, ...], width: int
                       ) -> MacCount:
    with torch.device("meta"):
        model = MobileSPADEGenerator(**dict(arch_kwargs), channels=list(channels)).eval()
        height, width = label_map_size(model, width)
        label_map = torch.zeros(1, model.input_nc, height, width)
    return count_macs(model, label_map)
