"""Data for latent-driven generators (StyleGAN2): one folder of same-size square images, and sampled latent codes.

* :class:`ImageFolderDataset`: every image under a folder (recursively, e.g. a built-in ``faces/images/``), all
  of one square size, which is the size the networks train at. A folder of mixed sizes is one line naming two files
  and their sizes; ``resize=True`` instead centre-crops each image to a square and resizes it (PIL bicubic) to
  ``resolution``. Items: ``{"image": (C, R, R) in [-1, 1], "path": str}``, mirrored at random when ``flip``.
* :class:`LatentDataset`: ``length`` latent codes ``{"z": (z_dim,)}``, each a pure function of (seed, epoch,
  index): training data for methods that need no images (a student distilled from a generator samples only z).

Randomness is per (seed, epoch, index), as in :mod:`ganslim.data.datasets`; call ``set_epoch`` before each epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from ganslim.data.datasets import _check_channels, _require_images, _SeededDataset
from ganslim.data.images import image_to_tensor, load_image
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError


class ImageFolderDataset(_SeededDataset):
    """The images under ``root``, of one square size (see the module docstring).

    Args:
        root: folder of images (searched recursively).
        resolution: the side to train at; None: the images' own (then they must all be one size).
        resize: centre-crop every image to a square and resize it to ``resolution`` instead of refusing other sizes.
        flip: mirror each item with probability 1/2 (per seed, epoch, index).
        channels: 3 (RGB) or 1 (grayscale).
        seed: seeds the per-item flips.
    """

    item_label = "training images"

    def __init__(self, root: str | os.PathLike, resolution: int | None = None, resize: bool = False,
                 flip: bool = True, channels: int = 3, seed: int = 0) -> None:
        super().__init__(seed)
        _check_channels(channels=channels)
        self.root, self.flip, self.channels, self.resize = Path(root), flip, channels, resize
        if not self.root.is_dir():
            found = "is a file" if self.root.is_file() else "does not exist"
            raise GanslimError(f"image folder '{self.root}' {found}: pass a folder of images")
        self.paths = _require_images(self.root, "images of one square size")
        if resize and resolution is None:
            raise GanslimError("resizing images needs the size to resize them to: pass --size PX")
        sizes = image_sizes(self.paths)  # also names any file that cannot be decoded, before training starts
        self.resolution = resolution if resize else self._common_side(sizes, resolution)

    def _common_side(self, sizes: list[tuple[int, int]], resolution: int | None) -> int:
        """The side every image has; one line naming the first image that differs (or is not square)."""
        first, (width, height) = self.paths[0], sizes[0]
        fix = "make them one square size, or pass --set resize=true (centre crop, resize to --size)"
        if width != height:
            raise GanslimError(f"image '{first}' is {width}x{height}, not square: {fix}")
        for path, size in zip(self.paths, sizes):
            if size != sizes[0]:
                raise GanslimError(f"the images under '{self.root}' differ in size: '{first}' is {width}x{height}, "
                                   f"'{path}' is {size[0]}x{size[1]}: {fix}")
        if resolution is not None and resolution != width:
            raise GanslimError(f"the images under '{self.root}' are {width}x{height}, not {resolution}x{resolution}: "
                               f"pass --size {width} (or leave it out: the images' size), or --set resize=true")
        return width

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        index = self._index(index)
        path = self.paths[index]
        image = load_image(path, self.channels)
        if self.resize:
            image = _square(image, self.resolution)
        elif image.size != (self.resolution, self.resolution):  # the file changed since the dataset was built
            raise GanslimError(f"image '{path}' is now {image.size[0]}x{image.size[1]}, not {self.resolution}x"
                               f"{self.resolution}: restore it or start the run again")
        if self.flip and self._rng(index).random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return {"image": image_to_tensor(image), "path": str(path)}


def _square(image: Image.Image, side: int) -> Image.Image:
    """The centred largest square of ``image``, resized to ``side`` x ``side`` (PIL bicubic, antialiased)."""
    width, height = image.size
    crop = min(width, height)
    left, top = (width - crop) // 2, (height - crop) // 2
    square = image.crop((left, top, left + crop, top + crop))
    return square if crop == side else square.resize((side, side), Image.BICUBIC)


class LatentDataset(_SeededDataset):
    """``length`` latent codes per epoch: item ``index`` is ``{"z": (z_dim,) float32}``, drawn N(0, 1) from
    (seed, epoch, index), the same in any worker, order or process (see the module docstring)."""

    item_label = "latent codes"

    def __init__(self, length: int, z_dim: int, seed: int = 0) -> None:
        super().__init__(seed)
        for name, value in (("length", length), ("z_dim", z_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"{name}={value!r} is not a positive integer")
        self.length, self.z_dim = length, z_dim

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        z = self._rng(self._index(index)).standard_normal(self.z_dim, dtype="float32")
        return {"z": torch.from_numpy(z)}
