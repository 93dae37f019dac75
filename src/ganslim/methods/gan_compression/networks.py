"""The networks of GAN Compression's stages: the frozen teacher, the student sized from it, the layers distilled
between them and their adapters, the discriminator to start from, and the supernet file of an earlier stage.

Distilled layers: the output of the second downsampling and of the last residual block of each block group
(blocks 3, 6, 9 of a 9-block ResNet teacher), as the paper. A U-Net teacher has no activations aligned with the
student's, so it is distilled at the output only. The discriminator starts from the teacher's
(``teacher_discriminator``, or ``discriminator.pt`` / ``latest_net_D.pth`` / ``latest_net_D_A.pth`` next to the
teacher file), else it is fresh.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ganslim.archs import ResnetGenerator
from ganslim.archs.translation.mobile_resnet import MobileResnetGenerator
from ganslim.checkpoints import LoadedModel, load_discriminator, load_generator, resolve_generator_file
from ganslim.checkpoints.format import read_checkpoint
from ganslim.data import PAIRED, data_kind
from ganslim.errors import GanslimError
from ganslim.losses import FeatureDistillation
from ganslim.methods.gan_compression.config import TITLE, DistillConfig
from ganslim.nn.elastic import ElasticConv2d, leading_slice

SUPERNET_FILE = "supernet.pt"
SUPERNET_ARCHS = ("super_mobile_resnet", "super_mobile_spade")  # the image-to-image and the SPADE student family
GENERATOR_FILE = "generator.pt"
DISCRIMINATOR_FILE = "discriminator.pt"
ADAPTERS_FILE = "adapters.pt"
ADAPTERS_FORMAT = "ganslim-adapters"
# Discriminators looked for next to a teacher file, by the side of the teacher ("" or "_A" vs "_B").
_TEACHER_DISCRIMINATORS = {
    "A": ("discriminator.pt", "discriminator_A.pt", "latest_net_D.pth", "latest_net_D_A.pth"),
    "B": ("discriminator.pt", "discriminator_B.pt", "latest_net_D.pth", "latest_net_D_B.pth"),
}
HOLDOUT_SPLIT, VAL_SPLIT = "holdout", "val"


def load_teacher(config: DistillConfig, device: torch.device) -> LoadedModel:
    """The teacher generator, frozen, in eval mode, on ``device``; its channels must match the data's."""
    if not config.teacher:
        raise GanslimError("no teacher given: pass --teacher CKPT (a generator.pt, latest_net_G.pth or run folder)")
    loaded = load_generator(config.teacher, direction=config.direction)
    teacher = loaded.model
    in_nc, out_nc = loaded.arch_kwargs.get("input_nc", 3), loaded.arch_kwargs.get("output_nc", 3)
    if (in_nc, out_nc) != (config.input_nc, config.output_nc):
        raise GanslimError(f"the teacher maps {in_nc} to {out_nc} channels but input_nc={config.input_nc}, "
                           f"output_nc={config.output_nc}: set input_nc={in_nc} output_nc={out_nc}")
    teacher.to(device).eval().requires_grad_(False)
    return loaded


def student_kwargs(config: DistillConfig, teacher: LoadedModel) -> dict:
    """Arguments of the largest student (``mobile_resnet`` / ``super_mobile_resnet``) for this teacher."""
    kwargs = teacher.arch_kwargs
    resnet_like = isinstance(teacher.model, (ResnetGenerator, MobileResnetGenerator))
    n_blocks = config.student_blocks or (teacher.model.n_blocks if resnet_like else 9)
    return {"input_nc": config.input_nc, "output_nc": config.output_nc,
            "ngf": config.student_ngf or int(kwargs.get("ngf", 64)),
            "norm": kwargs.get("norm", "instance") if config.student_norm == "auto" else config.student_norm,
            "use_dropout": False, "n_blocks": n_blocks}


def distill_layers(teacher: nn.Module, student: MobileResnetGenerator) -> list[int]:
    """Positions in both ``model`` sequences whose activations are distilled; [] when none line up.

    A ResNet (or mobile ResNet) teacher with as many blocks as the student shares its layout, so the
    student's ``distill_layers()`` (second downsampling, last block of each block group) name the same
    layers in both; any other teacher (a U-Net, another depth) is distilled at the output only.
    """
    if isinstance(teacher, (ResnetGenerator, MobileResnetGenerator)) and teacher.n_blocks == student.n_blocks:
        return student.distill_layers()
    return []


class ElasticFeatureDistillation(FeatureDistillation):
    """:class:`~ganslim.losses.FeatureDistillation` whose 1x1 adapters take any leading part of their input.

    Built at the student's largest widths; a sub-network's narrower activation uses the leading input
    channels of each adapter (GAN Compression's ``SuperConv2d`` adapters). A fine-tuned sub-network's
    adapters are the leading slices of these (:func:`slice_adapters`).
    """

    @staticmethod
    def make_adapter(student_channels: int, teacher_channels: int) -> nn.Module:
        return ElasticConv2d(student_channels, teacher_channels, kernel_size=1)


def slice_adapters(state: dict[str, Tensor], adapters: nn.Module) -> dict[str, Tensor]:
    """The leading slices of a (wider) adapters ``state`` that fit ``adapters``'s tensors."""
    own = adapters.state_dict()
    if set(state) != set(own):
        raise GanslimError(f"adapters file holds {sorted(state)}, expected {sorted(own)}: it belongs to another "
                           f"teacher or student depth")
    return {key: leading_slice(state[key], own[key].shape).clone() for key in own}


def find_teacher_discriminator(config: DistillConfig) -> Path | None:
    """The discriminator file to start from: ``teacher_discriminator``, else one next to the teacher file."""
    if config.teacher_discriminator == "none":
        return None
    if config.teacher_discriminator:
        path = Path(config.teacher_discriminator)
        if not path.is_file():
            raise GanslimError(f"teacher_discriminator '{path}' not found: pass the file, '' to look next to the "
                               f"teacher, or 'none' for a fresh discriminator")
        return path
    teacher_file = resolve_generator_file(config.teacher, config.direction)
    side = "B" if teacher_file.stem.endswith("_B") else "A"
    for name in _TEACHER_DISCRIMINATORS[side]:
        if (teacher_file.parent / name).is_file():
            return teacher_file.parent / name
    return None


def discriminator_channels(config: DistillConfig, paired: bool) -> int:
    """Input channels of the discriminator: it judges (input, output) pairs of paired data, else output images."""
    return config.input_nc + config.output_nc if paired else config.output_nc


def load_teacher_discriminator(config: DistillConfig, path: Path) -> LoadedModel:
    """The discriminator at ``path``, checked to take the images it judges on ``config.data``."""
    paired = data_kind(config.data, TITLE) == PAIRED
    loaded, expected = load_discriminator(path), discriminator_channels(config, paired)
    width = loaded.arch_kwargs.get("input_nc")
    if width != expected:
        what = "(input, output) pairs" if paired else "output images"
        raise GanslimError(f"discriminator '{path}' takes {width} channels but judges {what} of "
                           f"{expected} channels here: pass teacher_discriminator=none for a fresh one")
    return loaded


def find_supernet(path: str | Path) -> Path:
    """``supernet.pt`` itself, or inside a supernet run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / SUPERNET_FILE
    if not path.is_file():
        raise GanslimError(f"supernet '{path}' not found: pass the supernet.pt of a gan-compression-supernet run "
                           f"(or its run folder)")
    content = read_checkpoint(path)
    if getattr(content, "arch", None) not in SUPERNET_ARCHS:
        raise GanslimError(f"'{path}' is not a {' or '.join(SUPERNET_ARCHS)} checkpoint: pass a supernet.pt")
    return path
