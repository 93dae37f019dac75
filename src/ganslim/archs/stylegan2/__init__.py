"""StyleGAN2 (rosinality/stylegan2-pytorch's layout and key names): the ``stylegan2`` generator and discriminator,
and its MobileStyleGAN student ``mobile_stylegan``."""

from ganslim.archs.stylegan2.channels import rosinality_channels
from ganslim.archs.stylegan2.discriminator import StyleGAN2Discriminator
from ganslim.archs.stylegan2.generator import (
    NOISE_MODES,
    MappingNetwork,
    StyleGAN2Generator,
    SynthesisNetwork,
    estimate_w_avg,
)
from ganslim.archs.stylegan2.latent import LatentGenerator
from ganslim.archs.stylegan2.mobile import MobileStyleGANGenerator, MobileSynthesis, student_channels, style_index_map

__all__ = ["NOISE_MODES", "LatentGenerator", "MappingNetwork", "MobileStyleGANGenerator", "MobileSynthesis",
           "StyleGAN2Discriminator", "StyleGAN2Generator", "SynthesisNetwork", "estimate_w_avg", "rosinality_channels",
           "student_channels", "style_index_map"]
