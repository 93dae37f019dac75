"""The images GAN Compression trains and scores on: the training split minus a held-out part (``holdout_images``,
never trained on; it scores validation and the search), and the ``val/`` split of paired data; the test split is
never read. :func:`image_metrics` scores a generator on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.data import (
    PAIRED,
    AlignedDataset,
    IndexedSubset,
    UnalignedDataset,
    data_kind,
    holdout_indices,
    without_holdout,
)
from ganslim.methods.gan_compression.config import TITLE, DistillConfig
from ganslim.metrics import RunningMean, psnr, ssim

HOLDOUT_SPLIT, VAL_SPLIT = "holdout", "val"


def _train_images(dataset: Dataset) -> int:
    """Number of distinct input images of a train dataset (A images of an unaligned one)."""
    return len(dataset.A_paths) if isinstance(dataset, UnalignedDataset) else len(dataset)


def train_split(config: DistillConfig, train: bool) -> Dataset:
    """The ``train/`` (or ``trainA/ trainB/``) dataset, with training (``train``) or evaluation preprocessing."""
    kwargs = dict(direction=config.direction, preprocess=config.preprocess if train else "resize_and_crop",
                  input_nc=config.input_nc, output_nc=config.output_nc, seed=config.seed,
                  load_size=config.load_size if train else config.crop_size, crop_size=config.crop_size,
                  flip=config.flip and train, max_items=config.max_train_images or None)
    if data_kind(config.data, TITLE) == PAIRED:
        return AlignedDataset(config.data, "train", **kwargs)
    return UnalignedDataset(config.data, "train", **kwargs)


def training_items(config: DistillConfig) -> IndexedSubset:
    """The training images minus the held-out ones (training preprocessing)."""
    dataset = train_split(config, train=True)
    return without_holdout(dataset, _train_images(dataset), config.holdout_images)


def holdout_items(config: DistillConfig) -> IndexedSubset:
    """The held-out training images (evaluation preprocessing), tagged ``"split": "holdout"``."""
    dataset = train_split(config, train=False)
    return IndexedSubset(dataset, holdout_indices(_train_images(dataset), config.holdout_images), HOLDOUT_SPLIT)


def validation_items(config: DistillConfig) -> Dataset:
    """Held-out training images, then the ``val/`` split of paired data if there is one."""
    holdout = holdout_items(config)
    if data_kind(config.data, TITLE) != PAIRED or not (Path(config.data) / "val").is_dir():
        return holdout
    val = AlignedDataset(config.data, "val", direction=config.direction, load_size=config.crop_size,
                         crop_size=config.crop_size, flip=False, input_nc=config.input_nc,
                         output_nc=config.output_nc, seed=config.seed)
    return torch.utils.data.ConcatDataset([holdout, IndexedSubset(val, range(len(val)), VAL_SPLIT)])


@torch.no_grad()
def image_metrics(generator: nn.Module, teacher: nn.Module | None, batches: Iterable[dict], paired: bool
                  ) -> dict[str, float]:
    """Validation metrics of ``generator`` over batches tagged with ``"split"`` (see the module docstring).

    Held-out images: ``psnr`` (vs the ground truth if ``paired``, else vs the teacher's output),
    ``psnr_teacher``, and ``ssim`` if paired; ``val/`` images: ``val_psnr``, ``val_ssim``. A batch may
    carry the teacher's outputs as ``"teacher"`` (N, C, H, W), saving the teacher's forward; without either
    (``teacher`` None), paired data gets no ``psnr_teacher``.
    """
    means: dict[str, RunningMean] = {}

    def add(name: str, values: Tensor) -> None:
        means.setdefault(name, RunningMean()).update(values)

    for batch in batches:
        real_a, real_b = batch["A"], batch["B"]
        fake = generator(real_a).float()
        splits = batch.get("split") or [HOLDOUT_SPLIT] * len(real_a)
        holdout = torch.tensor([s == HOLDOUT_SPLIT for s in splits], device=real_a.device)
        if holdout.any():
            target = batch["teacher"] if "teacher" in batch else teacher(real_a) if teacher is not None else None
            if target is not None:
                add("psnr_teacher", psnr(fake[holdout], target[holdout].float()))
            if paired:
                add("psnr", psnr(fake[holdout], real_b[holdout]))
                add("ssim", ssim(fake[holdout], real_b[holdout]))
            else:
                add("psnr", psnr(fake[holdout], target[holdout].float()))
        if (~holdout).any():
            add("val_psnr", psnr(fake[~holdout], real_b[~holdout]))
            add("val_ssim", ssim(fake[~holdout], real_b[~holdout]))
    return {name: mean.compute() for name, mean in means.items()}
