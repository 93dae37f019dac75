"""Datasets in the pix2pix/CycleGAN layouts, their preprocessing, and built-in demo data.

- :class:`AlignedDataset` (``train/ val/ test/`` of A|B images), :class:`UnalignedDataset`
  (``trainA/ trainB/ testA/ testB/``), :class:`SingleImageDataset` (inference), :func:`detect_layout`,
  :func:`data_kind` (``PAIRED`` or ``UNPAIRED``, for the methods that train on either).
- :func:`tensor_to_image` / :func:`save_image`: (C, H, W) tensors in [-1, 1] back to images.
- :func:`list_builtin` / :func:`make_builtin`: offline, deterministic demo datasets.
- :class:`HRFolderDataset` / :class:`PairedSRDataset`: super-resolution data (:mod:`ganslim.data.sr`).
- :class:`ImageFolderDataset` / :class:`LatentDataset`: unconditional images and sampled latent codes
  (:mod:`ganslim.data.unconditional`).
- :func:`holdout_indices`, :func:`without_holdout`, :class:`IndexedSubset`: training images held out for validation.
"""

from ganslim.data.builtin import DEFAULT_BUILTIN, list_builtin, make_builtin
from ganslim.data.datasets import (
    PAIRED,
    UNPAIRED,
    AlignedDataset,
    SingleImageDataset,
    UnalignedDataset,
    data_kind,
    detect_layout,
)
from ganslim.data.sr import HRFolderDataset, PairedSRDataset
from ganslim.data.images import IMG_EXTENSIONS, image_to_tensor, list_images, load_image, save_image, tensor_to_image
from ganslim.data.subsets import IndexedSubset, holdout_indices, without_holdout
from ganslim.data.transforms import PREPROCESS_MODES, Preprocess
from ganslim.data.unconditional import ImageFolderDataset, LatentDataset

__all__ = [
    "PAIRED",
    "UNPAIRED",
    "AlignedDataset",
    "DEFAULT_BUILTIN",
    "HRFolderDataset",
    "IMG_EXTENSIONS",
    "ImageFolderDataset",
    "IndexedSubset",
    "LatentDataset",
    "PREPROCESS_MODES",
    "PairedSRDataset",
    "Preprocess",
    "SingleImageDataset",
    "UnalignedDataset",
    "data_kind",
    "detect_layout",
    "holdout_indices",
    "image_to_tensor",
    "list_builtin",
    "list_images",
    "load_image",
    "make_builtin",
    "save_image",
    "tensor_to_image",
    "without_holdout",
]
