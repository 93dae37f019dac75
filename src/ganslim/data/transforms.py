"""Preprocessing as the pix2pix/CycleGAN reference does it (``data/base_dataset.py``), on PIL images.

Order: resize (``resize``: load_size x load_size; ``scale_width``: width to load_size, height at least
crop_size) -> crop (``*crop`` modes) -> ``none`` rounds each side to a multiple of 4 -> horizontal flip.
All resizing is PIL BICUBIC. Randomness (crop position, flip) is drawn by :meth:`Preprocess.sample` from a
generator the caller passes in, so paired images can share the same draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ganslim.errors import GanslimError

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
SIZE_BASE = 4  # 'none' rounds sides to a multiple of this, like the reference's __make_power_2(base=4)


@dataclass(frozen=True)
class CropFlip:
    """One random draw: crop's top-left corner (x, y) in the resized image, and whether to mirror."""

    x: int
    y: int
    flip: bool


@dataclass(frozen=True)
class Preprocess:
    """A reference preprocessing mode with its sizes; ``flip`` enables random horizontal mirroring."""

    mode: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True

    def __post_init__(self) -> None:
        if self.mode not in PREPROCESS_MODES:
            raise GanslimError(f"unknown preprocess '{self.mode}'; choose one of: {', '.join(PREPROCESS_MODES)}")
        for name in ("load_size", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"{name}={value!r} is not a positive integer: pass a size in pixels")
        if self.mode in ("resize_and_crop", "scale_width_and_crop") and self.crop_size > self.load_size:
            raise GanslimError(
                f"crop_size {self.crop_size} is larger than load_size {self.load_size}: "
                f"use a crop_size <= load_size"
            )

    def resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) after the resize step, for an input of ``size`` = (width, height)."""
        width, height = size
        if self.mode == "resize_and_crop":
            return self.load_size, self.load_size
        if self.mode.startswith("scale_width"):
            if width == self.load_size and height >= self.crop_size:
                return width, height
            return self.load_size, int(max(self.load_size * height / width, self.crop_size))
        if self.mode == "none":
            return _round_to_base(width), _round_to_base(height)
        return width, height

    def check_fits(self, size: tuple[int, int], source: str = "image") -> None:
        """Raise naming ``source`` when an input of ``size`` = (width, height) is smaller than the crop once resized."""
        width, height = self.resized_size(size)
        if self.mode.endswith("crop") and (width < self.crop_size or height < self.crop_size):
            raise GanslimError(
                f"image '{source}' is {width}x{height} after '{self.mode}' resizing, smaller than "
                f"crop_size {self.crop_size}: use a smaller crop_size (or a larger load_size)"
            )

    def sample(self, rng: np.random.Generator, size: tuple[int, int], source: str = "image") -> CropFlip:
        """Draw a crop position and flip for an input of ``size`` = (width, height).

        ``source`` names the image in the error raised when the crop does not fit.
        """
        self.check_fits(size, source)
        width, height = self.resized_size(size)
        # Inclusive upper bounds, like random.randint in the reference.
        x = int(rng.integers(0, max(0, width - self.crop_size) + 1))
        y = int(rng.integers(0, max(0, height - self.crop_size) + 1))
        flip = bool(rng.random() > 0.5)
        return CropFlip(x=x, y=y, flip=flip)

    def apply(self, image: Image.Image, draw: CropFlip) -> Image.Image:
        """Resize, crop and flip ``image`` with a draw from :meth:`sample`."""
        target = self.resized_size(image.size)
        if target != image.size:
            image = image.resize(target, Image.BICUBIC)
        if self.mode.endswith("crop"):
            image = image.crop((draw.x, draw.y, draw.x + self.crop_size, draw.y + self.crop_size))
        if self.flip and draw.flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return image


def _round_to_base(side: int) -> int:
    # Python's round() (half to even) as in the reference; never below one block.
    return max(SIZE_BASE, int(round(side / SIZE_BASE) * SIZE_BASE))
