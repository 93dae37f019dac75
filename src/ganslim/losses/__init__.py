"""Training losses: adversarial (vanilla / LSGAN / hinge, relativistic average); reconstruction and distillation
losses join here."""

from ganslim.losses.gan import GAN_MODES, GANLoss, relativistic_average_loss

__all__ = ["GAN_MODES", "GANLoss", "relativistic_average_loss"]

from ganslim.losses.distill import (  # noqa: E402
    ChannelDistillation,
    FeatureDistillation,
    FeatureTap,
    PerceptualDistillLoss,
    channel_distillation_loss,
    ssim_loss,
    total_variation,
)
from ganslim.losses.perceptual import feature_loss, gram_matrix, load_perceptual_vgg, style_loss  # noqa: E402

__all__ += [
    "ChannelDistillation", "FeatureDistillation", "FeatureTap", "PerceptualDistillLoss", "channel_distillation_loss",
    "feature_loss", "gram_matrix", "load_perceptual_vgg", "ssim_loss", "style_loss", "total_variation",
]
