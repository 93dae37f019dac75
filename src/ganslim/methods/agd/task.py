"""What the teacher makes of an AGD run: image translation or x4 super-resolution, from its signature.

:func:`load_task` loads the teacher (frozen, eval mode) and returns the :class:`Task`: the supernet of its space
(the student's largest width the teacher's own unless ``student_width`` says), the training images as
``{"image": (C, H, W)}`` items (translation: the A images of paired or unpaired data, as the run's preprocessing
makes them; super-resolution: the LR crops of ``DATA/train``'s HR images, or of BasicSR's paired ``gt`` / ``lq``
folders), the objectives of each phase and the teacher's output, the student's only target.

Objectives: translation warms up and searches with AGD's ``search`` preset (style + content) and retrains with
``retrain`` (L1 + style + content); super-resolution with ``pixel`` then ``pixel+content``. Without VGG16 weights
the search preset has no term left, so warm-up and search use L1 (weight 1) instead, which the objective's summary
records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ganslim.archs.agd import AGDSRSupernet, AGDSupernet, AGDTranslationSupernet
from ganslim.archs.agd import sr as agd_sr
from ganslim.archs.agd import translation as agd_translation
from ganslim.checkpoints import LoadedModel, load_generator
from ganslim.data import PAIRED, AlignedDataset, HRFolderDataset, PairedSRDataset, UnalignedDataset, data_kind
from ganslim.errors import GanslimError
from ganslim.methods.agd.config import PERCEPTUAL_OFF, SUPER_RESOLUTION, TITLE, TRANSLATION, AGDConfig
from ganslim.methods.agd.objective import TRANSLATION_PRESETS, AGDSRObjective, AGDTranslationObjective
from ganslim.nn.vgg import find_vgg16_weights, find_vgg19_weights, load_vgg16, load_vgg19

SEARCH, RETRAIN = "search", "retrain"  # the objective's phases: warm-up and search, then retrain


class InputImages(Dataset):
    """The input images of ``dataset``'s items (their ``key``) at ``indices``: ``{"image": (C, H, W)}``; with
    ``arch_indices`` (as many), item i also holds ``"arch_image"``, the input of item ``arch_indices[i]``; with
    ``target_key``, ``"target"``: the item's ground truth (C, H', W') under that key."""

    def __init__(self, dataset: Dataset, key: str, indices: list[int], arch_indices: list[int] | None = None,
                 target_key: str | None = None) -> None:
        if arch_indices is not None and len(arch_indices) != len(indices):
            raise ValueError("the architecture half needs as many images as the weight half")
        self.dataset, self.key, self.indices, self.arch_indices = dataset, key, indices, arch_indices
        self.target_key = target_key

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        source = self.dataset[self.indices[index]]
        item = {"image": source[self.key]}
        if self.target_key is not None:
            item["target"] = source[self.target_key]
        if self.arch_indices is not None:
            item["arch_image"] = self.dataset[self.arch_indices[index]][self.key]
        return item


@dataclass
class Task:
    """An AGD run's task (``TRANSLATION`` or ``SUPER_RESOLUTION``) and its frozen teacher."""

    kind: str
    teacher: LoadedModel

    def supernet_kwargs(self, config: AGDConfig) -> dict:
        """The supernet's keyword arguments: the teacher's channels, the student's width and cells."""
        kwargs = self.teacher.arch_kwargs
        if self.kind == TRANSLATION:
            return {"input_nc": int(kwargs.get("input_nc", 3)), "output_nc": int(kwargs.get("output_nc", 3)),
                    "ngf": config.student_width or int(kwargs.get("ngf", 64)),
                    "cells": config.cells or agd_translation.DEFAULT_CELLS}
        return {"input_nc": int(kwargs.get("input_nc", 3)), "output_nc": int(kwargs.get("output_nc", 3)),
                "num_feat": config.student_width or int(kwargs.get("num_feat", 64)),
                "cells": config.cells or agd_sr.DEFAULT_CELLS, "ops_per_cell": config.ops_per_cell}

    def supernet(self, config: AGDConfig) -> AGDSupernet:
        """The search space's supernet, freshly initialised (under the caller's device context and seed)."""
        cls = AGDTranslationSupernet if self.kind == TRANSLATION else AGDSRSupernet
        return cls(**self.supernet_kwargs(config))

    def input_shape(self, config: AGDConfig) -> tuple[int, int, int, int]:
        """The shape of one budget input: (1, C, size, size)."""
        return 1, self.supernet_kwargs(config)["input_nc"], config.size, config.size

    def train_images(self, config: AGDConfig) -> tuple[Dataset, str, int]:
        """``(dataset, input key, distinct input images)`` of the training split, with training augmentation."""
        if self.kind == SUPER_RESOLUTION and config.gt:
            dataset = PairedSRDataset(config.gt, config.lq, agd_sr.SCALE, config.gt_size, train=True,
                                      max_items=config.max_train_images or None, seed=config.seed)
            return dataset, "lq", len(dataset)
        if self.kind == SUPER_RESOLUTION:
            folder = Path(config.data) / "train"
            if not folder.is_dir():
                raise GanslimError(f"'{config.data}' has no train/ folder of HR images: the super-resolution teacher "
                                   f"needs --data DIR holding train/ (the LR inputs are its images downsampled x4)")
            dataset = HRFolderDataset(folder, agd_sr.SCALE, config.gt_size, train=True,
                                      max_items=config.max_train_images or None, seed=config.seed)
            return dataset, "lq", len(dataset)
        if config.gt:
            raise GanslimError("gt / lq are super-resolution folders, but the teacher translates images: pass --data "
                               "DIR (train/, or trainA/ trainB/) instead")
        options = dict(direction=config.direction, preprocess=config.preprocess, load_size=config.load_size,
                       crop_size=config.crop_size, flip=config.flip, input_nc=config.input_nc,
                       output_nc=config.output_nc, max_items=config.max_train_images or None, seed=config.seed)
        if data_kind(config.data, TITLE) == PAIRED:
            dataset = AlignedDataset(config.data, "train", **options)
            return dataset, "A", len(dataset)
        dataset = UnalignedDataset(config.data, "train", **options)
        return dataset, "A", len(dataset.A_paths)

    def training_items(self, config: AGDConfig, with_ground_truth: bool = False) -> InputImages:
        """Every training image (warm-up and retrain); ``with_ground_truth``: each with its ``"target"`` (the SR
        data's GT crop, the paired data's B image; unpaired data has none: one line)."""
        if with_ground_truth:
            self.check_ground_truth(config)
        dataset, key, count = self.train_images(config)
        if not with_ground_truth:
            return InputImages(dataset, key, list(range(count)))
        return InputImages(dataset, key, list(range(count)),
                           target_key="gt" if self.kind == SUPER_RESOLUTION else "B")

    def check_ground_truth(self, config: AGDConfig) -> None:
        """One line unless the training data has a ground truth (SR data always does; translation data when
        paired), without building the dataset."""
        if self.kind != SUPER_RESOLUTION and data_kind(config.data, TITLE) != PAIRED:
            raise GanslimError(f"retrain_target=ground_truth needs paired data, and '{config.data}' is unpaired: "
                               f"train the architecture as a CycleGAN instead (ganslim train cyclegan)")

    def search_items(self, config: AGDConfig) -> InputImages:
        """The 50/50 split of the search: item i is image i of the first half (the weight step's) and image
        ``half + i`` of the second (the architecture step's)."""
        dataset, key, count = self.train_images(config)
        half = count // 2
        if half < 1:
            raise GanslimError(f"'{config.data}' holds {count} training image(s): the search splits them in two "
                               f"halves, so at least 2 are needed")
        return InputImages(dataset, key, list(range(half)), list(range(half, 2 * half)))

    def objective(self, config: AGDConfig, phase: str) -> AGDTranslationObjective | AGDSRObjective:
        """The objective of ``phase`` (``SEARCH`` or ``RETRAIN``; see the module docstring), its VGG on the CPU."""
        if self.kind == SUPER_RESOLUTION:
            vgg19 = _perceptual(config.vgg19_weights, find_vgg19_weights, load_vgg19)
            return AGDSRObjective("pixel" if phase == SEARCH else "pixel+content", vgg19)
        vgg16 = _perceptual(config.vgg16_weights, find_vgg16_weights,
                            lambda path: load_vgg16(path, imagenet_norm=False))
        if phase == SEARCH and vgg16 is None:
            return AGDTranslationObjective({**TRANSLATION_PRESETS[SEARCH], "l1": 1.0}, None)
        return AGDTranslationObjective(phase, vgg16)

    @torch.no_grad()
    def target(self, image: Tensor) -> Tensor:
        """The teacher's output on ``image`` (N, C, H, W), clamped to its declared range: what the student learns."""
        low, high = self.teacher.signature.output.value_range
        return self.teacher.model(image).float().clamp(low, high)


def _perceptual(weights: str, find, load):
    """The VGG the objective uses: None when switched off (``'none'``) or when no weights file is found."""
    if weights == PERCEPTUAL_OFF:
        return None
    path = find(weights or None)
    return None if path is None else load(path)


def load_task(config: AGDConfig, device: torch.device) -> Task:
    """The teacher, frozen on ``device``, and the task its signature names; one line for any other teacher."""
    loaded = load_generator(config.teacher, direction=config.direction)
    signature = loaded.signature
    what = f"--teacher '{config.teacher}' is a {loaded.arch} generator"
    if not signature.takes_image:
        raise GanslimError(f"{what}, driven by latents: AGD compresses image-to-image teachers (pix2pix / CycleGAN, "
                           f"or an x4 RRDBNet / ESRGAN)")
    if signature.super_resolution:
        if signature.output.scale != agd_sr.SCALE:
            raise GanslimError(f"{what} of scale x{signature.output.scale:g}: AGD's super-resolution space is x4; "
                               f"pass an x4 teacher")
        kind = SUPER_RESOLUTION
    else:
        kind = TRANSLATION
        channels = (signature.image_input.channels, signature.output.channels)
        if channels != (config.input_nc, config.output_nc):
            raise GanslimError(f"{what} mapping {channels[0]} to {channels[1]} channels, but input_nc="
                               f"{config.input_nc}, output_nc={config.output_nc}: set input_nc={channels[0]} "
                               f"output_nc={channels[1]}")
    loaded.model.to(device).eval().requires_grad_(False)
    return Task(kind, loaded)
