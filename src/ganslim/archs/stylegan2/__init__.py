"""StyleGAN2 (rosinality/stylegan2-pytorch's layout and key names): the ``stylegan2`` generator and discriminator."""

from ganslim.archs.stylegan2.channels import rosinality_channels
from ganslim.archs.stylegan2.discriminator import StyleGAN2Discriminator
from ganslim.archs.stylegan2.generator import (
    NOISE_MODES,
    MappingNetwork,
    StyleGAN2Generator,
    SynthesisNetwork,
    estimate_w_avg,
)

__all__ = ["NOISE_MODES", "MappingNetwork", "StyleGAN2Discriminator", "StyleGAN2Generator", "SynthesisNetwork",
           "estimate_w_avg", "rosinality_channels"]
