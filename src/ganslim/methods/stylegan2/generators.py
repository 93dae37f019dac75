"""The generator ``train stylegan2`` trains (:func:`trained_generator`): a ``stylegan2``, or a ``mobile_stylegan``
trained with the same recipe as a plain GAN (MobileStyleGAN's architecture without distillation, the twin its
distilled student is compared with).

With ``mapping_from`` the mobile_stylegan is built as the distillation builds its student
(:meth:`~ganslim.archs.stylegan2.MobileStyleGANGenerator.from_teacher`): the teacher's side, widths and channel
table without its last entry, its mapping and ``w_avg`` copied and frozen, its constant noise at the student's
sides. Only the synthesis trains, on the same W space as the teacher's, so the twin differs from the distilled
student in its training signal alone (real images through a discriminator instead of the teacher's images for the
same W and noise), and its fidelity to the teacher at fixed latents means something.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganslim.archs import build_generator
from ganslim.archs.stylegan2 import LatentGenerator, MobileStyleGANGenerator, StyleGAN2Generator
from ganslim.checkpoints import load_generator
from ganslim.errors import GanslimError
from ganslim.methods.stylegan2.config import StyleGAN2Config, generator_kwargs


@dataclass(frozen=True)
class TrainedGenerator:
    """The generator, the arch and kwargs ``generator.pt`` records, and where its ``w_avg`` comes from when it is
    kept as built (``w_avg_source``; None: estimated at export)."""

    module: LatentGenerator
    arch: str
    kwargs: dict
    w_avg_source: str | None = None


def trained_generator(config: StyleGAN2Config, side: int) -> TrainedGenerator:
    """The generator of ``config`` at image side ``side`` (see the module docstring); ``w_avg`` is finite (zero
    unless copied), as the engine's finiteness checks need.

    Raises:
        GanslimError: ``mapping_from`` does not load, holds no StyleGAN2, or makes images of another side.
    """
    if not config.mapping_from:
        generator = build_generator(config.generator, **generator_kwargs(config, side))
        generator.style.w_avg.zero_()  # estimated at export
        return TrainedGenerator(generator, config.generator, generator_kwargs(config, side))
    teacher = load_generator(config.mapping_from).model
    if not isinstance(teacher, StyleGAN2Generator):
        raise GanslimError(f"mapping_from '{config.mapping_from}' holds a {type(teacher).__name__}, not a stylegan2 "
                           f"generator: pass the StyleGAN2 teacher whose mapping the mobile_stylegan reuses")
    if teacher.img_resolution != side:
        raise GanslimError(f"mapping_from '{config.mapping_from}' makes {teacher.img_resolution} px images but the "
                           f"training images are {side} px: pass --size {teacher.img_resolution}")
    student = MobileStyleGANGenerator.from_teacher(teacher)
    student.style.requires_grad_(False)
    source = f"the mapping_from teacher's ({config.mapping_from})"
    if not student.style.has_w_avg:
        student.style.w_avg.zero_()
        source = None
    return TrainedGenerator(student, "mobile_stylegan", student.arch_kwargs(), source)

