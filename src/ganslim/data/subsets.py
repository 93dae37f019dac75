"""Held-out training images: which ones, and dataset views with or without them.

Methods that validate (or search) on training images they never train on - GAN Compression, OMGD - hold out
the same evenly spaced images, so a run and a later stage of it agree on the split without sharing a seed.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import Dataset

from ganslim.errors import GanslimError

__all__ = ["IndexedSubset", "holdout_indices", "without_holdout"]

_HOLDOUT_FRACTION, _HOLDOUT_MAX = 0.1, 100


def holdout_indices(count: int, holdout: int = 0) -> list[int]:
    """Evenly spaced positions of ``holdout`` of ``count`` training images (0: 10%, between 1 and 100), sorted.

    Evenly spaced over the sorted file list and independent of any seed, so every stage (and a search run
    on its own) holds out the same images. At least one image is left to train on.
    """
    if count < 2:
        raise GanslimError(f"only {count} training image(s): some are held out for validation, so at least 2 are "
                           f"needed")
    wanted = holdout or min(_HOLDOUT_MAX, max(1, round(_HOLDOUT_FRACTION * count)))
    wanted = min(wanted, count - 1)
    return sorted({int(i * count / wanted) for i in range(wanted)})


class IndexedSubset(Dataset):
    """Items ``indices`` of ``dataset`` (forwarding ``set_epoch``), each tagged ``"split": tag`` if given."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], tag: str | None = None) -> None:
        self.dataset, self.indices, self.tag = dataset, list(indices), tag

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[self.indices[index]]
        return {**item, "split": self.tag} if self.tag is not None else item


def without_holdout(dataset: Dataset, images: int, holdout: int = 0) -> IndexedSubset:
    """The items of ``dataset`` whose input image (item index modulo ``images``, the number of distinct input
    images) is not among the :func:`holdout_indices` ``(images, holdout)``."""
    held = set(holdout_indices(images, holdout))
    return IndexedSubset(dataset, [i for i in range(len(dataset)) if i % images not in held])
