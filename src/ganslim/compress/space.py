"""The channel search space of a mobile ResNet supernet: candidate widths per position of a configuration.

A configuration lists real layer widths in the order of ``ganslim.archs.translation.mobile_resnet`` (stem, down1, down2,
one hidden width per block group, up1, up2). By default each position may take its largest width and the
multiples of 8 nearest to 3/4, 1/2, 3/8 and 1/4 of it — GAN Compression's ``[64, 48, 32, 24, 16]`` for a
64-wide stem, ``[256, 192, 128, 96, 64]`` for the 256-wide residual path of an ngf-64 teacher.

GAN Compression's own configuration strings (e.g. ``16_16_32_16_32_32_16_16``) count down1 and up1 in units
of 2 channels and down2 and the hidden widths in units of 4; multiply them to get the widths used here.
"""

from __future__ import annotations

import itertools
import math
import numbers
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ganslim.archs.translation.mobile_resnet import (
    FIRST_BLOCK_INDEX,
    MobileResnetGenerator,
    block_groups,
    channel_names,
    check_channels,
)
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.errors import GanslimError
from ganslim.measure.profile import MacCount, count_macs
from ganslim.nn import check_norm

DEFAULT_RATIOS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.375, 0.25)
DEFAULT_MULTIPLE = 8
MIN_INPUT_SIZE = 5


def default_candidates(
    largest: int, ratios: Sequence[float] = DEFAULT_RATIOS, multiple: int = DEFAULT_MULTIPLE
) -> tuple[int, ...]:
    """Widths for a position whose largest width is ``largest``, descending.

    ``largest`` itself, plus ``ratio * largest`` rounded to the nearest multiple of ``multiple`` (at least
    ``multiple``) for each ratio, when that is below ``largest``; e.g. 64 -> (64, 48, 32, 24, 16).
    """
    rounded = (max(multiple, multiple * round(ratio * largest / multiple)) for ratio in ratios)
    return tuple(sorted({largest, *(width for width in rounded if width < largest)}, reverse=True))


class CandidateWidths:
    """A space of configurations given by ``candidates``, one descending tuple of widths per position (set by the
    subclass): counting, enumerating and drawing them."""

    candidates: tuple[tuple[int, ...], ...]

    def size(self) -> int:
        """Number of configurations."""
        return math.prod(len(widths) for widths in self.candidates)

    def enumerate(self) -> Iterator[list[int]]:
        """Every configuration, from the largest, the last position varying fastest."""
        for channels in itertools.product(*self.candidates):
            yield list(channels)

    def largest(self) -> list[int]:
        """The widest configuration."""
        return [widths[0] for widths in self.candidates]

    def smallest(self) -> list[int]:
        """The narrowest configuration (also the one with the fewest MACs)."""
        return [widths[-1] for widths in self.candidates]

    def sample(self, rng: random.Random) -> list[int]:
        """A configuration with each width drawn uniformly from its candidates, using ``rng`` only."""
        return [rng.choice(widths) for widths in self.candidates]

    def sandwich(self, rng: random.Random) -> list[list[int]]:
        """The sandwich rule's configurations for one step: largest, smallest and one ``sample``."""
        return [self.largest(), self.smallest(), self.sample(rng)]


@dataclass(frozen=True)
class SearchSpace(CandidateWidths):
    """Candidate widths per position of a mobile ResNet configuration, plus what predicting its MACs needs.

    Args:
        candidates: one collection of widths per position (``channel_names(n_blocks)``); stored as
            descending tuples without repeats.
        n_blocks, input_nc, output_nc, norm: the architecture the configurations are for.
    """

    candidates: tuple[tuple[int, ...], ...]
    n_blocks: int = 9
    input_nc: int = 3
    output_nc: int = 3
    norm: str = "instance"

    def __post_init__(self) -> None:
        check_norm(self.norm)
        names = channel_names(self.n_blocks)
        if len(self.candidates) != len(names):
            raise GanslimError(
                f"a search space for {self.n_blocks} blocks needs {len(names)} candidate sets "
                f"({', '.join(names)}), got {len(self.candidates)}"
            )
        normalized = []
        for position, (name, widths) in enumerate(zip(names, self.candidates)):
            widths = tuple(widths)
            if not widths or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in widths):
                raise GanslimError(
                    f"candidates[{position}] ({name}) must be a non-empty list of positive ints, got {list(widths)}"
                )
            normalized.append(tuple(sorted({int(w) for w in widths}, reverse=True)))
        object.__setattr__(self, "candidates", tuple(normalized))

    @classmethod
    def default(
        cls,
        largest: Sequence[int],
        n_blocks: int = 9,
        input_nc: int = 3,
        output_nc: int = 3,
        norm: str = "instance",
        ratios: Sequence[float] = DEFAULT_RATIOS,
        multiple: int = DEFAULT_MULTIPLE,
    ) -> SearchSpace:
        """The default space below the largest configuration ``largest`` (``default_candidates`` per position)."""
        largest = check_channels(largest, n_blocks)
        candidates = tuple(default_candidates(width, ratios, multiple) for width in largest)
        return cls(candidates, n_blocks, input_nc, output_nc, norm)

    @classmethod
    def for_supernet(
        cls,
        supernet: SuperMobileResnetGenerator,
        candidates: Sequence[Sequence[int]] | None = None,
        ratios: Sequence[float] = DEFAULT_RATIOS,
        multiple: int = DEFAULT_MULTIPLE,
    ) -> SearchSpace:
        """The space of ``supernet``: the default one below its widths, or ``candidates`` checked against them."""
        arch = (supernet.n_blocks, supernet.input_nc, supernet.output_nc, supernet.norm)
        if candidates is None:
            return cls.default(supernet.channels, *arch, ratios=ratios, multiple=multiple)
        space = cls(tuple(tuple(widths) for widths in candidates), *arch)
        supernet.check_config(space.largest())
        return space

    @property
    def names(self) -> list[str]:
        """Names of the positions, e.g. ``stem``, ``hidden[1-3]``."""
        return channel_names(self.n_blocks)

    def validate(self, channels: Sequence[int]) -> list[int]:
        """``channels`` as a list of ints if every width is a candidate of its position, else a GanslimError."""
        channels = check_channels(channels, self.n_blocks)
        for position, (name, width, allowed) in enumerate(zip(self.names, channels, self.candidates)):
            if width not in allowed:
                raise GanslimError(
                    f"channels[{position}] ({name}) = {width} is not a candidate; choose one of "
                    f"{', '.join(map(str, allowed))}"
                )
        return channels

    def predict_macs(self, channels: Sequence[int], input_size: int | tuple[int, int] = 256) -> MacCount:
        """MACs of the compact model at ``channels`` on one (1, input_nc, H, W) image, in both conventions.

        Counted by ``ganslim.measure.profile.count_macs`` on the compact model built on the meta device (no memory,
        no arithmetic), span by span with each span's count cached, so it equals ``count_macs`` of the
        extracted model and costs a few dictionary look-ups once the spans of a space have been seen.
        ``channels`` must be a configuration of this architecture; candidates are not required.
        """
        channels = check_channels(channels, self.n_blocks)
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if not all(isinstance(s, numbers.Integral) and s >= MIN_INPUT_SIZE for s in (height, width)):
            raise GanslimError(
                f"input_size must be an int or (height, width) of ints >= {MIN_INPUT_SIZE} (the residual blocks "
                f"need 2 pixels after two stride-2 downsamplings), got {input_size!r}"
            )
        return _compact_macs(
            self.n_blocks, self.input_nc, self.output_nc, self.norm, channels, int(height), int(width)
        )


# MACs of consecutive spans of ``MobileResnetGenerator.model``, keyed by what decides them: the architecture,
# the image size, the span's kind and the widths it touches. The counter adds up per op, so a configuration's
# total is the sum over its spans; a search asks for thousands of configurations built from a few dozen spans,
# so the table stays small (candidates per position squared, per span kind, architecture and image size).
_SPAN_MACS: dict[tuple, MacCount] = {}


def channel_spans(channels: Sequence[int], n_blocks: int) -> list[tuple[tuple, slice]]:
    """(key, slice of ``MobileResnetGenerator.model``) per span of the layout, in order.

    A key names the span's kind and the widths it touches (e.g. ``("block", 64, 96)``): equal keys are the same
    computation on the same input shape, for one architecture and image size.
    """
    stem, down1, residual, *hidden, up1, up2 = channels
    first_up = FIRST_BLOCK_INDEX + n_blocks
    blocks = [
        (("block", residual, width), slice(FIRST_BLOCK_INDEX + i, FIRST_BLOCK_INDEX + i + 1))
        for width, group in zip(hidden, block_groups(n_blocks))
        for i in group
    ]
    return [
        (("stem", stem), slice(0, 4)),
        (("down1", stem, down1), slice(4, 7)),
        (("down2", down1, residual), slice(7, FIRST_BLOCK_INDEX)),
        *blocks,
        (("up1", residual, up1), slice(first_up, first_up + 3)),
        (("up2", up1, up2), slice(first_up + 3, first_up + 6)),
        (("out", up2), slice(first_up + 6, first_up + 9)),
    ]


def _compact_macs(
    n_blocks: int, input_nc: int, output_nc: int, norm: str, channels: list[int], height: int, width: int
) -> MacCount:
    arch = (n_blocks, input_nc, output_nc, norm, height, width)
    spans = [((*arch, *key), span) for key, span in channel_spans(channels, n_blocks)]
    if any(key not in _SPAN_MACS for key, _ in spans):
        with torch.device("meta"):
            model = MobileResnetGenerator(input_nc, output_nc, norm=norm, n_blocks=n_blocks, channels=channels)
            x = torch.empty(1, input_nc, height, width)
        for key, span in spans:
            layers = model.model[span]
            if key not in _SPAN_MACS:
                _SPAN_MACS[key] = count_macs(layers, x)
            with torch.no_grad():
                x = layers(x)  # only the shape matters: meta tensors
    counts = [_SPAN_MACS[key] for key, _ in spans]
    return MacCount(sum(c.macs for c in counts), sum(c.macs_published for c in counts))
