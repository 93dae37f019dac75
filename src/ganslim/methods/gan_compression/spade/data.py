"""The label maps and photos GAN Compression trains and scores a SPADE student on, as the image-to-image stages see
them: items ``{"A": label map, "B": photo}`` (so :func:`~ganslim.methods.gan_compression.data.image_metrics` and the
search's scorer serve both families). The training split minus a held-out part (``holdout_images``, never trained on;
it scores validation and the search), then the ``val`` split when the dataset has one; the test split is never read.
"""

from __future__ import annotations

from torch.utils.data import ConcatDataset, Dataset

from ganslim.data import IndexedSubset, holdout_indices, without_holdout
from ganslim.data.label_datasets import LabelMapDataset, detect_label_layout, has_split
from ganslim.data.labels import LabelEncoding
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.data import HOLDOUT_SPLIT, VAL_SPLIT


class LabelPairs(Dataset):
    """A :class:`LabelMapDataset` whose items are ``{"A": (C, H, W) label map, "B": (3, H, W) photo}``."""

    def __init__(self, dataset: LabelMapDataset) -> None:
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        return {"A": item["label_map"], "B": item["image"]}


def label_split(config: DistillConfig, encoding: LabelEncoding, size: tuple[int, int], split: str, train: bool
                ) -> LabelPairs:
    """The ``split`` of ``config.data`` for a model of ``encoding`` at ``size``, flipped when ``train``."""
    dataset = LabelMapDataset(config.data, encoding, size, split, detect_label_layout(config.data),
                              flip=config.flip and train, seed=config.seed)
    if config.max_train_images and split == "train":
        dataset.pairs = dataset.pairs[:config.max_train_images]
    return LabelPairs(dataset)


def training_items(config: DistillConfig, encoding: LabelEncoding, size: tuple[int, int]) -> IndexedSubset:
    """The training label maps minus the held-out ones (flipped as configured)."""
    dataset = label_split(config, encoding, size, "train", train=True)
    return without_holdout(dataset, len(dataset), config.holdout_images)


def holdout_items(config: DistillConfig, encoding: LabelEncoding, size: tuple[int, int]) -> IndexedSubset:
    """The held-out training label maps (never flipped), tagged ``"split": "holdout"``."""
    dataset = label_split(config, encoding, size, "train", train=False)
    return IndexedSubset(dataset, holdout_indices(len(dataset), config.holdout_images), HOLDOUT_SPLIT)


def validation_items(config: DistillConfig, encoding: LabelEncoding, size: tuple[int, int]) -> Dataset:
    """Held-out training label maps, then the ``val`` split if the dataset has one."""
    holdout = holdout_items(config, encoding, size)
    if not has_split(config.data, "val", detect_label_layout(config.data)):
        return holdout
    val = label_split(config, encoding, size, "val", train=False)
    return ConcatDataset([holdout, IndexedSubset(val, range(len(val)), VAL_SPLIT)])
