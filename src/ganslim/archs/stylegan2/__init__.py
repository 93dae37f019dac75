"""StyleGAN2 (rosinality/stylegan2-pytorch's layout and key names): the ``stylegan2`` generator (elastic: Anycost
GAN's sub-generators, :mod:`.subnets`) and discriminator, Anycost's multi-resolution / conditioned ``anycost``
discriminator, and the MobileStyleGAN student ``mobile_stylegan``."""

from ganslim.archs.stylegan2.anycost_discriminator import MultiResolutionDiscriminator, config_one_hot
from ganslim.archs.stylegan2.channels import layer_sides, rosinality_channels
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
from ganslim.archs.stylegan2.subnets import (
    CHANNEL_RATIOS,
    NamedConfig,
    Subnet,
    flexible_choices,
    parse_channels,
    read_channel_configs,
    resolve_subnet,
    uniform_channels,
)

__all__ = ["CHANNEL_RATIOS", "NOISE_MODES", "LatentGenerator", "MappingNetwork", "MobileStyleGANGenerator",
           "MobileSynthesis", "MultiResolutionDiscriminator", "NamedConfig", "StyleGAN2Discriminator",
           "StyleGAN2Generator", "Subnet", "SynthesisNetwork", "config_one_hot", "estimate_w_avg", "flexible_choices",
           "layer_sides", "parse_channels", "read_channel_configs", "resolve_subnet", "rosinality_channels",
           "student_channels", "style_index_map", "uniform_channels"]
