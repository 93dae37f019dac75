"""GAN Compression's student families and how a run picks one: the teacher's signature decides.

* ``resnet``: an image-to-image teacher (pix2pix / CycleGAN) -> ``super_mobile_resnet`` / ``mobile_resnet``;
* ``spade``: a label-map teacher (SPADE / GauGAN) -> ``super_mobile_spade`` / ``mobile_spade``
  (:mod:`ganslim.methods.gan_compression.spade`).

A :class:`StudentFamily` gathers what the stages ask of a family: its training methods, defaults, teacher loader,
student sizes, data (``{"A", "B"}`` items, held-out and val) and the MACs-counting input of its models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from ganslim.archs.spade import SPADELayout, SuperMobileSPADEGenerator
from ganslim.checkpoints import LoadedModel, load_generator
from ganslim.compress.spade_space import label_map_size
from ganslim.data import PAIRED, data_kind
from ganslim.errors import GanslimError
from ganslim.methods.gan_compression import data as image_data
from ganslim.methods.gan_compression import networks
from ganslim.methods.gan_compression.config import TITLE, DistillConfig, resolve_defaults
from ganslim.methods.gan_compression.distill import FinetuneDistillation, SupernetDistillation
from ganslim.methods.gan_compression.spade import data as label_data
from ganslim.methods.gan_compression.spade import networks as spade_networks
from ganslim.methods.gan_compression.spade.distill import SpadeFinetuneDistillation, SpadeSupernetDistillation
from ganslim.signature import signature_of

Items = Callable[[DistillConfig, nn.Module], Dataset]  # (config, teacher) -> dataset


@dataclass(frozen=True)
class StudentFamily:
    """What GAN Compression's stages need of one student family (see the module docstring)."""

    name: str
    supernet_method: type[SupernetDistillation]
    finetune_method: type[FinetuneDistillation]
    resolve_defaults: Callable[[DistillConfig], DistillConfig]
    load_teacher: Callable[[DistillConfig, torch.device], LoadedModel]
    student_kwargs: Callable[[DistillConfig, LoadedModel], dict]
    paired: Callable[[DistillConfig], bool]
    training_items: Items
    holdout_items: Items
    validation_items: Items
    load_discriminator: Callable[[DistillConfig, Path, nn.Module], LoadedModel]  # (config, file, teacher), checked

    def example_input(self, model: nn.Module, size: int) -> torch.Tensor:
        """The (1, C, H, W) input a budget of ``size`` counts ``model`` on: a size x size image, or a label map
        ``size`` wide at the model's aspect ratio (zeros on the model's device, which may be meta: only the shape matters to
        MACs and CPU time)."""
        device = next(model.parameters()).device
        if isinstance(model, SPADELayout):
            return torch.zeros(1, model.input_nc, *label_map_size(model, size), device=device)
        return signature_of(model, size).example_inputs(size, device=device)[0].zero_()

    def size_label(self, model: nn.Module, size: int) -> str:
        """How summaries write the budget's size, e.g. ``256x256`` or ``256x512``."""
        height, width = self.example_input(model, size).shape[2:]
        return f"{height}x{width}"


RESNET = StudentFamily(
    "resnet", SupernetDistillation, FinetuneDistillation, resolve_defaults,
    networks.load_teacher, networks.student_kwargs, lambda config: data_kind(config.data, TITLE) == PAIRED,
    lambda config, teacher: image_data.training_items(config),
    lambda config, teacher: image_data.holdout_items(config),
    lambda config, teacher: image_data.validation_items(config),
    lambda config, path, teacher: networks.load_teacher_discriminator(config, path))
SPADE = StudentFamily(
    "spade", SpadeSupernetDistillation, SpadeFinetuneDistillation,
    spade_networks.resolve_spade_defaults, spade_networks.load_label_teacher, spade_networks.student_kwargs,
    lambda config: True,
    lambda config, teacher: label_data.training_items(config, *spade_networks.encoding_and_size(teacher)),
    lambda config, teacher: label_data.holdout_items(config, *spade_networks.encoding_and_size(teacher)),
    lambda config, teacher: label_data.validation_items(config, *spade_networks.encoding_and_size(teacher)),
    lambda config, path, teacher: spade_networks.load_spade_discriminator(path, teacher))


def family_of_model(model: nn.Module) -> StudentFamily:
    """The family of a teacher, supernet or compact student: ``spade`` for label-map models, else ``resnet``."""
    return SPADE if isinstance(model, SuperMobileSPADEGenerator) or spade_networks.takes_label_maps(model) else RESNET


def family_of_run(config: DistillConfig) -> StudentFamily:
    """The family ``config.teacher``'s signature asks for, else (no teacher) that of ``config.supernet``."""
    if config.teacher:
        return family_of_model(load_generator(config.teacher, direction=config.direction).model)
    if config.supernet:
        return family_of_model(load_generator(networks.find_supernet(config.supernet)).model)
    raise GanslimError("no teacher given: pass --teacher CKPT (a generator.pt, latest_net_G.pth or run folder)")
