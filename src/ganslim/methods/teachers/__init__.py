"""Teachers trained from scratch, one module each: :mod:`.pix2pix` (paired data) and :mod:`.cyclegan` (unpaired
data), both on :mod:`.base` and following :mod:`ganslim.engine.protocol`."""

from ganslim.methods.teachers.base import REFERENCE_DIR, TeacherBase, TeacherConfig
from ganslim.methods.teachers.cyclegan import CycleGAN, CycleGANConfig, ImagePool
from ganslim.methods.teachers.pix2pix import Pix2Pix, Pix2PixConfig

__all__ = ["REFERENCE_DIR", "CycleGAN", "CycleGANConfig", "ImagePool", "Pix2Pix", "Pix2PixConfig", "TeacherBase",
           "TeacherConfig"]
