"""The networks of GAN Compression for a SPADE (GauGAN) teacher: the frozen label-map teacher, the mobile SPADE
student sized from it, the blocks distilled and the multi-scale discriminator to start from.

GAN Compression distils ``head_0``, ``G_middle_1`` and ``up_1`` through 1x1 adapters. The student keeps the teacher's
label encoding, upsampling and size; its width is ``student_ngf`` (0: the teacher's ngf; the paper's student is 48).
The discriminator starts from the teacher's (``teacher_discriminator``, or ``discriminator.pt`` next to the teacher,
as ``ganslim train spade`` leaves it, or NVlabs' ``latest_net_D.pth``), else a fresh ``multiscale`` one of width
``ndf``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ganslim.archs import build_discriminator, init_weights
from ganslim.archs.spade import SPADELayout
from ganslim.checkpoints import LoadedModel, load_discriminator, load_generator
from ganslim.checkpoints.format import read_checkpoint
from ganslim.config import fill_auto
from ganslim.data.labels import LabelEncoding
from ganslim.errors import GanslimError
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.signature import LABEL_MAP, signature_of

logger = logging.getLogger(__name__)

DISTILL_BLOCKS = ("head_0", "G_middle_1", "up_1")  # GAN Compression's mapping layers for GauGAN
DISCRIMINATOR_ARCH = "multiscale"
# GAN Compression's SPADE distiller: GAN 1, feature matching 10, VGG 10, distillation 10; no L1 term.
SPADE_DEFAULTS = {"lambda_recon": 0.0, "lambda_distill": 10.0, "gan_mode": "hinge"}
STUDENT_KEYS = ("label_nc", "contain_dontcare_label", "instance_edges", "num_upsampling_layers", "crop_size",
                "aspect_ratio", "spade_kernel", "norm", "output_nc")


def takes_label_maps(model: nn.Module) -> bool:
    """Whether ``model``'s signature takes a label map (the SPADE family) rather than an image."""
    return signature_of(model).inputs[0].kind == LABEL_MAP


def resolve_spade_defaults(config: DistillConfig) -> DistillConfig:
    """``config`` with ``auto`` / -1 values replaced by GAN Compression's SPADE settings."""
    return fill_auto(config, SPADE_DEFAULTS)


def load_label_teacher(config: DistillConfig, device: torch.device) -> LoadedModel:
    """The SPADE teacher, frozen, in eval mode, on ``device``."""
    if not config.teacher:
        raise GanslimError("no teacher given: pass --teacher CKPT (a SPADE generator.pt, latest_net_G.pth or folder)")
    loaded = load_generator(config.teacher)
    if not isinstance(loaded.model, SPADELayout) or not takes_label_maps(loaded.model):
        raise GanslimError(f"teacher '{config.teacher}' is a {loaded.arch}, not a SPADE label-map generator")
    if loaded.model.use_vae:
        raise GanslimError(f"teacher '{config.teacher}' takes a VAE code z: GAN Compression compresses SPADE "
                           f"teachers without the VAE")
    if loaded.model.num_upsampling_layers == "most":
        raise GanslimError(f"teacher '{config.teacher}' uses 'most' upsampling (an up_4), which the mobile SPADE "
                           f"student lacks: compress a 'normal' or 'more' teacher")
    loaded.model.to(device).eval().requires_grad_(False)
    return loaded


def student_kwargs(config: DistillConfig, teacher: LoadedModel) -> dict:
    """Arguments of the largest student (``mobile_spade`` / ``super_mobile_spade``) for this teacher."""
    model = teacher.model
    return {**{key: getattr(model, key) for key in STUDENT_KEYS}, "ngf": config.student_ngf or model.ngf}


def distill_layers(teacher: SPADELayout) -> list[int]:
    """Indices (into ``block_names``) of the distilled blocks."""
    return [teacher.block_names.index(name) for name in DISTILL_BLOCKS]


def discriminator_channels(teacher: SPADELayout) -> int:
    """The multi-scale discriminator judges (label map, image) pairs."""
    return teacher.input_nc + teacher.output_nc


def reference_multiscale_kwargs(state: dict) -> dict:
    """The ``multiscale`` arch and kwargs of an NVlabs ``latest_net_D.pth`` state dict (``discriminator_{i}.model{k}``
    keys: k = 0 .. n_layers per scale, ``weight_orig`` with spectral norm); {} for another layout."""
    first = state.get("discriminator_0.model0.0.weight")
    if first is None:
        return {}
    scales = {key.split(".")[0] for key in state if key.startswith("discriminator_")}
    stages = {key.split(".")[1] for key in state if key.startswith("discriminator_0.")}
    return {"arch": DISCRIMINATOR_ARCH, "input_nc": first.shape[1], "ndf": first.shape[0],
            "n_layers": len(stages) - 1, "num_d": len(scales), "spectral": any(key.endswith(".weight_orig")
                                                                              for key in state)}


def load_spade_discriminator(path: Path, teacher: SPADELayout) -> LoadedModel:
    """The discriminator at ``path`` (a ganslim file or NVlabs' ``latest_net_D.pth``), checked to be a multi-scale one
    taking this teacher's pairs."""
    content = read_checkpoint(path, "discriminator")
    overrides = reference_multiscale_kwargs(content) if isinstance(content, dict) else {}
    loaded, expected = load_discriminator(path, **overrides), discriminator_channels(teacher)
    if loaded.arch != DISCRIMINATOR_ARCH or loaded.arch_kwargs.get("input_nc") != expected:
        raise GanslimError(f"discriminator '{path}' is a {loaded.arch} taking {loaded.arch_kwargs.get('input_nc')} "
                           f"channels; a SPADE teacher's is a {DISCRIMINATOR_ARCH} taking {expected} (label map + "
                           f"image): pass teacher_discriminator=none for a fresh one")
    return loaded


def build_spade_discriminator(config: DistillConfig, teacher: SPADELayout, path: Path | None
                              ) -> tuple[str, dict, nn.Module]:
    """The discriminator at ``path`` (checked to take the teacher's pairs), else (None) a fresh multi-scale one."""
    if path is not None:
        loaded = load_spade_discriminator(path, teacher)
        logger.info("discriminator starts from %s", path)
        return loaded.arch, dict(loaded.arch_kwargs), loaded.model.train()
    kwargs = {"input_nc": discriminator_channels(teacher), "ndf": config.ndf, "n_layers": 4, "num_d": 2,
              "spectral": True}
    return DISCRIMINATOR_ARCH, kwargs, init_weights(build_discriminator(DISCRIMINATOR_ARCH, **kwargs), "xavier", 0.02)


def encoding_and_size(teacher: SPADELayout) -> tuple[LabelEncoding, tuple[int, int]]:
    """The teacher's label encoding and the (height, width) its data is resized to."""
    return LabelEncoding.of(teacher), teacher.size
