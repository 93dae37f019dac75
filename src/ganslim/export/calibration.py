"""The images int8 calibration and its report use: a dataset's calibration and evaluation splits, or image files
chosen evenly from a folder, with evaluation images held out from calibration where there are enough."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganslim.data.datasets import detect_layout
from ganslim.data.images import is_image_file, list_images
from ganslim.errors import GanslimError


@dataclass(frozen=True)
class DataSplit:
    """Images to calibrate on and to evaluate on; ``aligned``: files are A|B pairs (input | target)."""

    calibration: list[Path]
    evaluation: list[Path] | None
    aligned: bool


def split_data(root: str | os.PathLike, direction: str = "AtoB") -> DataSplit:
    """Calibration and evaluation images of a dataset root or an image folder.

    Aligned (pix2pix) datasets calibrate on the input side of ``train/`` and evaluate on ``val/`` (else
    ``test/``) against the targets; unaligned (CycleGAN) ones on ``trainA/`` and ``testA/`` (``B`` for
    ``BtoA``); a plain folder of images on part of them, the rest held out (see :func:`select_images`).
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout == "single":
        return DataSplit(image_files(root, "calibration"), None, aligned=False)
    if layout == "aligned":
        evaluation = next((list_images(root / s) for s in ("val", "test") if (root / s).is_dir()), [])
        if not (root / "train").is_dir():
            raise GanslimError(f"aligned dataset '{root}' has no train/ folder to calibrate on: add one, or pass "
                               "a folder of input images")
        return DataSplit(image_files(root / "train", "calibration"), evaluation or None, aligned=True)
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
