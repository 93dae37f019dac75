"""Losses on a multi-scale discriminator's outputs (SPADE's, pix2pixHD's): per scale a list of intermediate features
whose last entry is the patch scores (:class:`ganslim.archs.discriminators.multiscale.MultiscaleDiscriminator`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ganslim.losses.gan import GANLoss

ScaleOutputs = Sequence[Sequence[Tensor]]


def multiscale_gan_loss(loss: GANLoss, outputs: ScaleOutputs, target_is_real: bool, for_discriminator: bool = True
                        ) -> Tensor:
    """The mean over scales of ``loss`` on each scale's scores (its last output), as NVlabs' ``GANLoss`` on a list.

    Args:
        loss: the adversarial loss (SPADE: ``GANLoss("hinge")``).
        outputs: per scale, its outputs; the last of each is (N, 1, h, w) scores.

    Returns:
        () float32 tensor.
    """
    return torch.stack([loss(scale[-1], target_is_real, for_discriminator) for scale in outputs]).mean()


def feature_matching_loss(fake: ScaleOutputs, real: ScaleOutputs) -> Tensor:
    """pix2pixHD's discriminator feature matching: the L1 distance between the features of the fake and the real
    image at every intermediate output (the scores left out), summed over layers and averaged over scales
    (NVlabs' ``GAN_Feat_loss`` before ``lambda_feat``); the real features are constants.

    Args:
        fake: per scale, the outputs for the generated images; each entry (N, C, h, w).
        real: the same for the real images (same shapes).

    Returns:
        () float32 tensor: ``sum_i sum_j<last mean|fake_ij - real_ij| / num_scales``.
    """
    if len(fake) != len(real) or not fake:
        raise ValueError(f"feature matching takes the outputs of the same scales, got {len(fake)} and {len(real)}")
    total = torch.zeros((), device=fake[0][0].device)
    for fake_scale, real_scale in zip(fake, real):
        for fake_features, real_features in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(fake_features.float(), real_features.detach().float())
    return total / len(fake)
