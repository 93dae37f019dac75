"""The image sides a network takes, declared by each architecture class as its ``image_sides`` attribute.

A generator whose stride-2 downsamplings are undone by transposed convs returns the input size only for
multiples of ``2**downsamplings``; a PatchGAN needs enough pixels to survive its stride-2 convs. The training
engine checks the sides a config fixes (e.g. ``crop_size``) against every network before a run folder exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class ImageSides:
    """Image sides (height and width alike, in pixels) a network takes: multiples of ``multiple``, at least
    ``minimum`` (itself a multiple)."""

    multiple: int = 1
    minimum: int = 1

    def accepts(self, side: int) -> bool:
        return side >= self.minimum and side % self.multiple == 0

    def nearest(self, side: int) -> list[int]:
        """The accepted sides next to ``side``: the largest below it (if any) and the smallest above it."""
        below = side // self.multiple * self.multiple
        above = max(self.minimum, -(-side // self.multiple) * self.multiple)
        return [below, above] if self.minimum <= below < above else [above]

    def describe(self) -> str:
        """``"multiples of 4 and at least 8 pixels"``, ``"at least 24 pixels"``, ``"multiples of 256"``."""
        parts = [f"multiples of {self.multiple}"] if self.multiple > 1 else []
        if self.minimum > self.multiple:
            parts.append(f"at least {self.minimum} pixels")
        return " and ".join(parts) or "any size"


def combined(rules: Iterable[ImageSides]) -> ImageSides:
    """The sides every one of ``rules`` accepts."""
    multiple, minimum = 1, 1
    for rule in rules:
        multiple = math.lcm(multiple, rule.multiple)
        minimum = max(minimum, rule.minimum)
    return ImageSides(multiple, -(-minimum // multiple) * multiple)
