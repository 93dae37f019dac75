"""The images int8 calibration and its report use: a dataset's calibration and evaluation splits, or image files
chosen evenly from a folder, with evaluation images held out from calibration where there are enough; and the
items made from such files (:class:`FileItems`; a super-resolution model's LR / GT pairs: :func:`hr_item`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from ganslim.data.datasets import detect_layout
from ganslim.data.images import is_image_file, list_images, load_image
from ganslim.data.sr import bicubic_downsample, mod_crop, unit_tensor
from ganslim.errors import GanslimError


@dataclass(frozen=True)
class DataSplit:
    """Images to calibrate on and to evaluate on; ``aligned``: files are A|B pairs (input | target)."""

    calibration: list[Path]
    evaluation: list[Path] | None
    aligned: bool


def split_data(root: str | os.PathLike, direction: str = "AtoB", super_resolution: bool = False) -> DataSplit:
    """Calibration and evaluation images of a dataset root or an image folder.

    Aligned (pix2pix) datasets calibrate on the input side of ``train/`` and evaluate on ``val/`` (else
    ``test/``) against the targets; unaligned (CycleGAN) ones on ``trainA/`` and ``testA/`` (``B`` for
    ``BtoA``); a plain folder of images on part of them, the rest held out (see :func:`select_images`).
    ``super_resolution``: the images are HR images (``train/ val/ test/`` or one folder), the LR images made
    from them calibrate, and evaluate against them.
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout == "single":
        return DataSplit(image_files(root, "calibration"), None, aligned=False)
    if layout == "aligned":
        evaluation = next((list_images(root / s) for s in ("val", "test") if (root / s).is_dir()), [])
        if not (root / "train").is_dir():
            raise GanslimError(f"{'HR' if super_resolution else 'aligned'} dataset '{root}' has no train/ folder "
                               "to calibrate on: add one, or pass a folder of input images")
        return DataSplit(image_files(root / "train", "calibration"), evaluation or None,
                         aligned=not super_resolution)
    if super_resolution:
        raise GanslimError(f"'{root}' is an unaligned (trainA/ testA/) dataset, but a super-resolution model "
                           f"calibrates on HR images: pass a folder with train/ (and val/ or test/) of HR images "
                           f"(e.g. ganslim data make photos2sr DIR), or one folder of them")
    side = "A" if direction == "AtoB" else "B"
    evaluation = list_images(root / f"test{side}") if (root / f"test{side}").is_dir() else []
    return DataSplit(image_files(root / f"train{side}", "calibration"), evaluation or None, aligned=False)


def image_files(source: str | os.PathLike | Sequence[str | os.PathLike], role: str) -> list[Path]:
    """Image files of a folder (recursive), one image file, or a list of files; never empty."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_file() and is_image_file(path):
            return [path]
        if not path.is_dir():
            raise GanslimError(f"{role} images '{path}' not found: pass a folder of images or an image file")
        files = list_images(path)
        if not files:
            raise GanslimError(f"{role} folder '{path}' holds no images (png, jpg, ...): put some of the "
                               "generator's input images there")
        return files
    files = [Path(p) for p in source]
    if not files:
        raise GanslimError(f"no {role} images given: pass a folder or a list of image files")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise GanslimError(f"{role} image '{missing[0]}' not found ({len(missing)} missing): check the paths")
    return files


def _spread(items: Sequence[Path], count: int) -> list[Path]:
    """``count`` items evenly spaced over ``items`` (all of them if there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def select_images(calibration: list[Path], evaluation: list[Path] | None, num_calibration: int,
                  num_eval: int) -> tuple[list[Path], list[Path], bool]:
    """(calibration, evaluation, held out?): without evaluation images, hold some calibration ones out."""
    if evaluation is not None:
        return _spread(calibration, num_calibration), _spread(evaluation, num_eval), True
    if len(calibration) == 1:
        return calibration, calibration, False
    held = _spread(calibration, min(num_eval, max(1, len(calibration) // 4)))
    held_set = set(held)
    rest = [p for p in calibration if p not in held_set]
    return _spread(rest, num_calibration), held, True


class FileItems(Dataset):
    """The items ``load(path)`` makes of each of ``paths`` (e.g. ``{"A": input, "B": target}``)."""

    def __init__(self, paths: Sequence[Path], load: Callable[[Path], dict[str, Tensor]]) -> None:
        self.paths = list(paths)
        self.load = load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.load(self.paths[index])


def hr_item(path: Path, scale: int) -> dict[str, Tensor]:
    """An HR image file as a super-resolution pair, as :class:`ganslim.data.HRFolderDataset` makes its evaluation
    items: ``{"lq": (3, h, w), "gt": (3, h * scale, w * scale)}`` in [0, 1], the HR image cropped to a multiple of
    ``scale`` and downsampled with PIL's antialiased bicubic."""
    gt = mod_crop(load_image(path), scale)
    return {"lq": unit_tensor(bicubic_downsample(gt, scale)), "gt": unit_tensor(gt)}
