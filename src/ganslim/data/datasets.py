"""Aligned (pix2pix), unaligned (CycleGAN) and single-folder (inference) datasets.

Folder layouts are the reference's: aligned = ``root/{train,val,test}/`` holding A|B images side by side;
unaligned = ``root/{train,test}{A,B}/``. Items hold (C, H, W) float tensors in [-1, 1]. ``"A"`` is always
the generator's input: with ``direction="BtoA"`` the B images are returned as ``"A"`` and vice versa.

Randomness is explicit: item ``index`` in epoch ``epoch`` draws from ``numpy.random.default_rng([seed,
epoch, index])``, so an item is the same whichever worker loads it and in whatever order, and a resumed run
sees the same crops as an uninterrupted one. Call :meth:`set_epoch` before each epoch (with DataLoader
workers, before creating the iterator and without ``persistent_workers``).

Building a dataset decodes every file once (see :mod:`ganslim.data.validate`) and checks its size (A|B pairs
twice as wide as high, large enough for the crop), so a bad image fails before a run starts, not hours in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ganslim.data.images import check_pair_size, image_to_tensor, is_image_file, list_images, load_image
from ganslim.data.transforms import CropFlip, Preprocess
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError

DIRECTIONS = ("AtoB", "BtoA")
ALIGNED_SPLITS = ("train", "val", "test")
UNALIGNED_SPLITS = ("train", "test")
PAIRED, UNPAIRED = "paired", "unpaired"  # what a method trains on: aligned A|B pairs, or unaligned domains


class _SeededDataset(Dataset):
    """Per-item random generators derived from (seed, epoch, index)."""

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise GanslimError(f"seed={seed!r} is not a non-negative integer: pass e.g. seed=0")
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips (and unaligned B pairing) items use."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise GanslimError(f"epoch={epoch!r} is not a non-negative integer: pass the epoch number 0, 1, ...")
        self.epoch = epoch

    def _index(self, index: int) -> int:
        """Validate ``index`` and make it non-negative (it seeds the item's generator)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return index % len(self)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class _ImagePairDataset(_SeededDataset):
    """What both translation layouts share: root, split, direction, channels and preprocessing."""

    def __init__(self, root: str | os.PathLike, split: str, direction: str, load_size: int, crop_size: int,
                 flip: bool, preprocess: str, input_nc: int, output_nc: int, seed: int) -> None:
        super().__init__(seed)
        _check_direction(direction)
        _check_channels(input_nc=input_nc, output_nc=output_nc)
        self.root = Path(root)
        self.split = split
        self.direction = direction
        self.input_nc = input_nc
        self.output_nc = output_nc
        self.preprocess = Preprocess(preprocess, load_size, crop_size, flip)


class AlignedDataset(_ImagePairDataset):
    """Paired images stored side by side (A left, B right) under ``root/split/``, as pix2pix reads them.

    Both halves get the same resize, crop and flip. Items: ``{"A": (input_nc, H, W), "B": (output_nc, H, W),
    "A_path": str, "B_path": str}`` (both paths name the same file).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        direction: str = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        preprocess: str = "resize_and_crop",
        input_nc: int = 3,
        output_nc: int = 3,
        max_items: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(root, split, direction, load_size, crop_size, flip, preprocess, input_nc, output_nc, seed)
        folder = self.root / split
        if not folder.is_dir():
            raise GanslimError(
                f"data folder '{folder}' not found: aligned datasets need train/ val/ test/ subfolders "
                f"with A|B images side by side"
            )
        self.paths = _truncate(_require_images(folder, "A|B side-by-side images"), max_items)
        for path, size in zip(self.paths, image_sizes(self.paths)):
            check_pair_size(path, size)
            self.preprocess.check_fits((size[1], size[1]), str(path))  # each half is height x height

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        index = self._index(index)
        path = self.paths[index]
        pair = load_image(path, channels=3)
        check_pair_size(path, pair.size)  # the file may have changed since the dataset was built
        width, height = pair.size
        left, right = pair.crop((0, 0, height, height)), pair.crop((height, 0, width, height))
        source, target = (left, right) if self.direction == "AtoB" else (right, left)
        draw = self.preprocess.sample(self._rng(index), source.size, str(path))
        return {
            "A": image_to_tensor(self.preprocess.apply(_with_channels(source, self.input_nc), draw)),
            "B": image_to_tensor(self.preprocess.apply(_with_channels(target, self.output_nc), draw)),
            "A_path": str(path),
            "B_path": str(path),
        }


class UnalignedDataset(_ImagePairDataset):
    """Unpaired images under ``root/{split}A/`` and ``root/{split}B/``, as CycleGAN reads them.

    Length is max(#A, #B). Item ``i`` takes A image ``i % #A`` and, like the reference, B image
    ``i % #B`` when ``serial_batches`` else a random one; A and B get independent crops and flips.
    Items: ``{"A": (input_nc, H, W), "B": (output_nc, H, W), "A_path": str, "B_path": str}``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        direction: str = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        preprocess: str = "resize_and_crop",
        serial_batches: bool = False,
        input_nc: int = 3,
        output_nc: int = 3,
        max_items: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(root, split, direction, load_size, crop_size, flip, preprocess, input_nc, output_nc, seed)
        self.serial_batches = serial_batches
        source, target = ("A", "B") if direction == "AtoB" else ("B", "A")
        self.A_paths = self._list(self.root / f"{split}{source}", max_items)
        self.B_paths = self._list(self.root / f"{split}{target}", max_items)

    def _list(self, folder: Path, max_items: int | None) -> list[Path]:
        if not folder.is_dir():
            raise GanslimError(
                f"data folder '{folder}' not found: unaligned datasets need trainA/ trainB/ "
                f"(and testA/ testB/) subfolders of images"
            )
        paths = _truncate(_require_images(folder, "images"), max_items)
        for path, size in zip(paths, image_sizes(paths)):
            self.preprocess.check_fits(size, str(path))
        return paths

    def __len__(self) -> int:
        return max(len(self.A_paths), len(self.B_paths))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        index = self._index(index)
        rng = self._rng(index)
        a_path = self.A_paths[index % len(self.A_paths)]
        if self.serial_batches:
            b_path = self.B_paths[index % len(self.B_paths)]
        else:
            b_path = self.B_paths[int(rng.integers(len(self.B_paths)))]
        return {
            "A": self._load(a_path, self.input_nc, rng),
            "B": self._load(b_path, self.output_nc, rng),
            "A_path": str(a_path),
            "B_path": str(b_path),
        }

    def _load(self, path: Path, channels: int, rng: np.random.Generator) -> torch.Tensor:
        image = load_image(path, channels)
        draw = self.preprocess.sample(rng, image.size, str(path))
        return image_to_tensor(self.preprocess.apply(image, draw))


class SingleImageDataset(Dataset):
    """One image file, or every image under a folder, for inference.

    Test-time preprocessing as the reference test script: bicubic resize to ``load_size`` x ``load_size``,
    no crop, no flip; ``load_size=None`` keeps the size, rounded to a multiple of 4. Items:
    ``{"image": (input_nc, H, W) tensor in [-1, 1], "path": str}``.
    """

    def __init__(self, path: str | os.PathLike, load_size: int | None = 256, input_nc: int = 3) -> None:
        _check_channels(input_nc=input_nc)
        self.input_nc = input_nc
        self.path = Path(path)
        if load_size is None:
            self.preprocess = Preprocess("none", flip=False)
        else:
            self.preprocess = Preprocess("resize_and_crop", load_size, load_size, flip=False)
        if self.path.is_dir():
            self.paths = _require_images(self.path, "images")
        elif self.path.is_file():
            if not is_image_file(self.path):
                raise GanslimError(
                    f"'{self.path}' is not an image file: pass a .png/.jpg/... file or a folder of images"
                )
            self.paths = [self.path]
        else:
            raise GanslimError(f"'{self.path}' not found: pass an image file or a folder of images")
        image_sizes(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        path = self.paths[index]
        image = load_image(path, self.input_nc)
        resized = self.preprocess.apply(image, CropFlip(x=0, y=0, flip=False))  # crop == load_size: whole image
        return {"image": image_to_tensor(resized), "path": str(path)}


Layout = Literal["aligned", "unaligned", "single"]


def detect_layout(root: str | os.PathLike) -> Layout:
    """Which dataset reads ``root``: ``"unaligned"`` if it has trainA/ trainB/ testA/ or testB/,
    ``"aligned"`` if it has train/ val/ or test/, ``"single"`` if it is an image file or a folder of images.
    """
    root = Path(root)
    if not root.exists():
        raise GanslimError(f"data path '{root}' not found: pass an existing dataset folder or image file")
    if root.is_file():
        if is_image_file(root):
            return "single"
        raise GanslimError(f"'{root}' is not an image file: pass a dataset folder, an image, or a folder of images")
    if any((root / f"{split}{side}").is_dir() for split in UNALIGNED_SPLITS for side in "AB"):
        return "unaligned"
    if any((root / split).is_dir() for split in ALIGNED_SPLITS):
        return "aligned"
    if list_images(root):
        return "single"
    raise GanslimError(
        f"cannot tell the layout of '{root}': it needs train/ val/ test/ (aligned), trainA/ trainB/ "
        f"(unaligned), or image files"
    )


def data_kind(data: str | os.PathLike, method: str) -> str:
    """``PAIRED`` for an aligned dataset folder (``train/`` of A|B images), ``UNPAIRED`` for an unaligned one
    (``trainA/ trainB/``); no folder, or a folder of single images, is a one-line error saying that ``method``
    (e.g. ``"OMGD"``) trains on one of the two."""
    if not data:
        raise GanslimError("no dataset given: pass --data DIR (train/ of paired A|B images, or trainA/ trainB/)")
    layout = detect_layout(data)
    if layout == "single":
        raise GanslimError(f"'{data}' is a folder of single images: {method} needs train/ (paired A|B images) or "
                           f"trainA/ trainB/ (unpaired)")
    return PAIRED if layout == "aligned" else UNPAIRED


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise GanslimError(f"unknown direction '{direction}'; choose one of: {', '.join(DIRECTIONS)}")


def _check_channels(**channels: int) -> None:
    for name, value in channels.items():
        if value not in (1, 3):
            raise GanslimError(f"{name}={value!r} is not supported: use 1 (grayscale) or 3 (RGB)")


def _require_images(folder: Path, what: str) -> list[Path]:
    paths = list_images(folder)
    if not paths:
        raise GanslimError(f"no images in '{folder}': put {what} (.png, .jpg, ...) there")
    return paths


def _truncate(paths: list[Path], max_items: int | None) -> list[Path]:
    if max_items is None:
        return paths
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise GanslimError(f"max_items={max_items!r} is not a positive integer: pass a count or None")
    return paths[:max_items]


def _with_channels(image: Image.Image, channels: int) -> Image.Image:
    return image.convert("L") if channels == 1 else image
