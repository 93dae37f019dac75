"""Teacher training from scratch: pix2pix (paired data) and CycleGAN (unpaired data)."""

from ganslim.methods.teachers.base import (
    REFERENCE_DIR,
    CycleGAN,
    CycleGANConfig,
    ImagePool,
    Pix2Pix,
    Pix2PixConfig,
    TeacherBase,
    TeacherConfig,
)

__all__ = ["REFERENCE_DIR", "CycleGAN", "CycleGANConfig", "ImagePool", "Pix2Pix", "Pix2PixConfig", "TeacherBase",
           "TeacherConfig"]
