"""Training losses: adversarial (vanilla = StyleGAN2's non-saturating logistic / LSGAN / hinge, relativistic
average), on a multi-scale discriminator (SPADE's, with feature matching), StyleGAN2's R1 and path-length
regularisers; reconstruction and distillation losses join here."""

from ganslim.losses.gan import GAN_MODES, GANLoss, relativistic_average_loss
from ganslim.losses.multiscale import feature_matching_loss, multiscale_gan_loss
from ganslim.losses.regularizers import path_length_penalty, path_lengths, r1_penalty

__all__ = ["GAN_MODES", "GANLoss", "feature_matching_loss", "multiscale_gan_loss", "path_length_penalty",
           "path_lengths", "r1_penalty", "relativistic_average_loss"]

from ganslim.losses.distill import (  # noqa: E402
    ChannelDistillation,
    FeatureDistillation,
    FeatureTap,
    PerceptualDistillLoss,
    channel_distillation_loss,
    ssim_loss,
    total_variation,
)
from ganslim.losses.perceptual import (  # noqa: E402
    feature_loss,
    gram_matrix,
    load_perceptual_vgg,
    pyramid_vgg_loss,
    style_loss,
)

__all__ += [
    "ChannelDistillation", "FeatureDistillation", "FeatureTap", "PerceptualDistillLoss", "channel_distillation_loss",
    "feature_loss", "gram_matrix", "load_perceptual_vgg", "pyramid_vgg_loss", "ssim_loss", "style_loss",
    "total_variation",
]
