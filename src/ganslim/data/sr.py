"""Super-resolution datasets: HR images with LR made on the fly, and BasicSR's paired GT / LQ folders.

Items: ``{"lq": (3, h, w), "gt": (3, h*scale, w*scale), "lq_path": str, "gt_path": str}``, float32 in [0, 1].

* :class:`HRFolderDataset`: a folder of high-resolution images; the LR image is the HR one downsampled by
  ``scale`` with PIL's bicubic (a = -0.5, antialiased: its kernel widens by the factor, as MATLAB's ``imresize``),
  on the 8-bit HR pixels, rounded to 8 bits like a saved LR file.
* :class:`PairedSRDataset`: BasicSR's ``--gt DIR --lq DIR`` layout; files pair by their path under the folder
  without extension (an LQ name may end in ``x<scale>``, as DIV2K's ``0001x4.png``); an LQ image is its GT's size
  // scale (a GT side up to ``scale - 1`` pixels longer is cropped away, BasicSR's mod-crop).

``train=True``: aligned random crops (``gt_size`` GT pixels, ``gt_size / scale`` LQ pixels at the matching place),
then, as BasicSR's ``augment(hflip=True, rotation=True)``, a horizontal flip, a vertical flip and a transpose, each
with probability 1/2. Randomness is per (seed, epoch, index), as in :mod:`ganslim.data.datasets`.
``train=False``: whole images (the GT cropped to a multiple of the scale), no augmentation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganslim.data.datasets import _SeededDataset, _require_images, _truncate
from ganslim.data.images import image_to_tensor, load_image
from ganslim.data.validate import image_sizes
from ganslim.errors import GanslimError
from ganslim.signature import UNIT

Item = dict[str, torch.Tensor | str]


@dataclass(frozen=True)
class _Augment:
    """One draw of BasicSR's augmentation: three independent coin flips."""

    hflip: bool
    vflip: bool
    transpose: bool

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Augment:
        hflip, vflip, transpose = (bool(flip) for flip in rng.random(3) < 0.5)
        return cls(hflip, vflip, transpose)

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) -> the same pixels flipped / transposed ((C, W, H) when transposed)."""
        if self.hflip:
            image = image.flip(-1)
        if self.vflip:
            image = image.flip(-2)
        if self.transpose:
            image = image.transpose(-1, -2)
        return image.contiguous()


def unit_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float32 tensor in [0, 1], as ``x / 255``."""
    return image_to_tensor(image, UNIT)


def bicubic_downsample(image: Image.Image, scale: int) -> Image.Image:
    """``image`` (W, H) -> (W // scale, H // scale) with PIL's antialiased bicubic."""
    width, height = image.size
    return image.resize((width // scale, height // scale), Image.BICUBIC)


def mod_crop(image: Image.Image, scale: int) -> Image.Image:
    """The top-left part of ``image`` whose sides are multiples of ``scale`` (BasicSR's ``mod_crop``)."""
    width, height = image.size
    return image.crop((0, 0, width - width % scale, height - height % scale))


def _check_scale(scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise GanslimError(f"scale={scale!r} is not a positive integer: pass the SR factor, e.g. 4")


def _check_gt_size(gt_size: int, scale: int) -> None:
    if isinstance(gt_size, bool) or not isinstance(gt_size, int) or gt_size < scale or gt_size % scale:
        raise GanslimError(f"gt_size={gt_size!r} is not a positive multiple of the scale {scale}: pass e.g. "
                           f"{32 * scale}")


def _image_folder(folder: str | os.PathLike, what: str) -> list[Path]:
    """The images under ``folder`` (a one-line error for a missing path, a file, or a folder without images)."""
    folder = Path(folder)
    if not folder.is_dir():
        found = "is a file" if folder.is_file() else "does not exist"
        raise GanslimError(f"{what} folder '{folder}' {found}: pass a folder of images")
    return _require_images(folder, f"{what} images")


class _SRDataset(_SeededDataset):
    """What both SR datasets share: the scale, the GT crop size, and the crop / augmentation of a pair."""

    def __init__(self, scale: int, gt_size: int | None, train: bool, seed: int) -> None:
        super().__init__(seed)
        _check_scale(scale)
        if train:
            if gt_size is None:
                raise GanslimError("training crops need gt_size (GT pixels per side), e.g. 128")
            _check_gt_size(gt_size, scale)
        self.scale, self.gt_size, self.train = scale, gt_size, train

    def _random_crop(self, rng: np.random.Generator, lq: torch.Tensor,
                     gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Aligned crops: ``gt_size / scale`` LQ pixels at a random place, the ``gt_size`` GT pixels they cover."""
        size, s = self.gt_size // self.scale, self.scale
        x = int(rng.integers(0, lq.shape[-1] - size + 1))
        y = int(rng.integers(0, lq.shape[-2] - size + 1))
        return lq[:, y:y + size, x:x + size], gt[:, y * s:(y + size) * s, x * s:(x + size) * s]

    @staticmethod
    def _augmented(rng: np.random.Generator, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        augment = _Augment.draw(rng)
        return augment.apply(lq), augment.apply(gt)

    def _check_fits(self, path: Path, size: tuple[int, int], what: str) -> None:
        """A training image of ``size`` (width, height) must hold one crop."""
        if self.train and min(size) < self.gt_size:
            raise GanslimError(f"{what} image '{path}' is {size[0]}x{size[1]}, smaller than gt_size {self.gt_size}: "
                               f"pass a smaller gt_size or remove the image")


class HRFolderDataset(_SRDataset):
    """High-resolution images under ``root`` (recursively); each LR image is made from its HR crop (see the module
    docstring). ``lq_path`` and ``gt_path`` both name the HR file.

    Args:
        root: folder of HR images.
        scale: SR factor (LR sides = HR sides / scale).
        gt_size: HR crop side for training (a multiple of ``scale``); ignored when ``train`` is False.
        train: random crops and augmentation (True) or whole images (False).
        max_items: use only the first images (sorted by path).
        seed: seeds the per-item draws.
    """

    def __init__(self, root: str | os.PathLike, scale: int = 4, gt_size: int | None = 128, train: bool = True,
                 max_items: int | None = None, seed: int = 0) -> None:
        super().__init__(scale, gt_size, train, seed)
        self.root = Path(root)
        self.paths = _truncate(_image_folder(self.root, "HR"), max_items)
        for path, size in zip(self.paths, image_sizes(self.paths)):
            if min(size) < scale:
                raise GanslimError(f"HR image '{path}' is {size[0]}x{size[1]}, smaller than the scale {scale}: "
                                   f"remove it")
            self._check_fits(path, size, "HR")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        index = self._index(index)
        path = self.paths[index]
        gt = load_image(path)
        if self.train:  # crop the HR image first, so that only the crop is downsampled
            rng = self._rng(index)
            x = int(rng.integers(0, gt.width - self.gt_size + 1))
            y = int(rng.integers(0, gt.height - self.gt_size + 1))
            gt = gt.crop((x, y, x + self.gt_size, y + self.gt_size))
            lq, gt_tensor = self._augmented(rng, unit_tensor(bicubic_downsample(gt, self.scale)), unit_tensor(gt))
        else:
            gt = mod_crop(gt, self.scale)
            lq, gt_tensor = unit_tensor(bicubic_downsample(gt, self.scale)), unit_tensor(gt)
        return {"lq": lq, "gt": gt_tensor, "lq_path": str(path), "gt_path": str(path)}


class PairedSRDataset(_SRDataset):
    """BasicSR's paired folders: GT images under ``gt_dir``, their LQ versions under ``lq_dir`` (see the module
    docstring for how files pair and the sizes they must have).

    Args:
        gt_dir: folder of ground-truth (HR) images.
        lq_dir: folder of low-quality (LR) images, one per GT image.
        scale, gt_size, train, max_items, seed: as :class:`HRFolderDataset`.
    """

    def __init__(self, gt_dir: str | os.PathLike, lq_dir: str | os.PathLike, scale: int = 4,
                 gt_size: int | None = 128, train: bool = True, max_items: int | None = None, seed: int = 0) -> None:
        super().__init__(scale, gt_size, train, seed)
        self.gt_dir, self.lq_dir = Path(gt_dir), Path(lq_dir)
        pairs = _truncate(self._pair_up(_image_folder(self.gt_dir, "GT"), _image_folder(self.lq_dir, "LQ")),
                          max_items)
        self.gt_paths, self.lq_paths = [gt for gt, _ in pairs], [lq for _, lq in pairs]
        for gt_path, lq_path, gt_size_, lq_size in zip(self.gt_paths, self.lq_paths, image_sizes(self.gt_paths),
                                                       image_sizes(self.lq_paths)):
            wanted = (gt_size_[0] // scale, gt_size_[1] // scale)
            if lq_size != wanted:
                raise GanslimError(f"LQ image '{lq_path}' is {lq_size[0]}x{lq_size[1]} but its GT '{gt_path}' is "
                                   f"{gt_size_[0]}x{gt_size_[1]}: at scale {scale} the LQ must be "
                                   f"{wanted[0]}x{wanted[1]}; check --scale or the files")
            self._check_fits(gt_path, gt_size_, "GT")

    def _pair_up(self, gt_paths: list[Path], lq_paths: list[Path]) -> list[tuple[Path, Path]]:
        """(GT, LQ) pairs in GT order; a file without its partner is a one-line error naming it."""
        lq_by_key = _by_name(lq_paths, self.lq_dir)
        suffix = f"x{self.scale}"
        pairs, used = [], set()
        for key, gt_path in _by_name(gt_paths, self.gt_dir).items():
            match = key if key in lq_by_key else key + suffix if key + suffix in lq_by_key else None
            if match is None:
                raise GanslimError(f"GT image '{gt_path}' has no LQ image in '{self.lq_dir}' (looked for "
                                   f"'{key}' or '{key}{suffix}' with any image extension): GT and LQ files pair by "
                                   f"name")
            pairs.append((gt_path, lq_by_key[match]))
            used.add(match)
        unmatched = [path for key, path in sorted(lq_by_key.items()) if key not in used]
        if unmatched:
            raise GanslimError(f"LQ image '{unmatched[0]}' has no GT image in '{self.gt_dir}' "
                               f"({len(unmatched)} unpaired LQ file(s)): GT and LQ files pair by name")
        return pairs

    def __len__(self) -> int:
        return len(self.gt_paths)

    def __getitem__(self, index: int) -> Item:
        index = self._index(index)
        lq_image = load_image(self.lq_paths[index])
        gt_image = load_image(self.gt_paths[index]).crop((0, 0, lq_image.width * self.scale,
                                                           lq_image.height * self.scale))
        lq, gt = unit_tensor(lq_image), unit_tensor(gt_image)
        if self.train:
            rng = self._rng(index)
            lq, gt = self._augmented(rng, *self._random_crop(rng, lq, gt))
        return {"lq": lq, "gt": gt, "lq_path": str(self.lq_paths[index]), "gt_path": str(self.gt_paths[index])}


def _by_name(paths: list[Path], folder: Path) -> dict[str, Path]:
    """``{path under folder without extension: path}``; two files of one name (``a.png``, ``a.jpg``) are an error."""
    by_name: dict[str, Path] = {}
    for path in paths:
        name = path.relative_to(folder).with_suffix("").as_posix()
        if name in by_name:
            raise GanslimError(f"'{by_name[name]}' and '{path}' have the same name: GT and LQ files pair by name, so "
                               f"keep one of them")
        by_name[name] = path
    return by_name
