"""Adversarial losses on discriminator outputs (logits of any shape, e.g. PatchGAN maps (N, 1, H, W)).

``vanilla``: binary cross-entropy on logits (the original GAN, pix2pix's default; for the generator the
non-saturating form, so it is StyleGAN2's non-saturating logistic loss: ``softplus(-D(real)) + softplus(D(fake))``
for the discriminator, ``softplus(-D(fake))`` for the generator); ``lsgan``: least squares
towards 1 (real) / 0 (fake) (CycleGAN's default); ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))`` for the
discriminator and ``-D(fake)`` for the generator. Every loss is a mean over all elements.
:func:`relativistic_average_loss` is ESRGAN's relativistic average GAN (vanilla BCE on relative scores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.errors import GanslimError

GAN_MODES: tuple[str, ...] = ("vanilla", "lsgan", "hinge")


class GANLoss(nn.Module):
    """``loss(prediction, target_is_real, for_discriminator=True)`` for one of :data:`GAN_MODES`.

    The generator's loss is ``loss(D(fake), True, for_discriminator=False)``; only ``hinge`` treats the two
    players differently. Computed in float32 even under autocast.
    """

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise GanslimError(f"unknown GAN loss '{mode}'; choose one of: {', '.join(GAN_MODES)}")
        self.mode = mode
        self.real_label, self.fake_label = real_label, fake_label

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = True) -> Tensor:
        prediction = prediction.float()
        if self.mode == "hinge":
            if not for_discriminator:
                if not target_is_real:
                    raise ValueError("the hinge generator loss is only defined for target_is_real=True")
                return -prediction.mean()
            sign = -1.0 if target_is_real else 1.0
            return F.relu(1.0 + sign * prediction).mean()
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)


def relativistic_average_loss(real: Tensor, fake: Tensor, for_discriminator: bool = True) -> Tensor:
    """ESRGAN's relativistic average GAN loss (RaGAN, Jolicoeur-Martineau 2018), as BasicSR's ``ESRGANModel``.

    The discriminator learns that a real image looks more real than the average fake and a fake less real than the
    average real: ``(BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0)) / 2``; the generator's loss swaps the two
    labels. Means are over the batch; computed in float32 even under autocast. Detach what the player does not
    train (BasicSR: the generator's loss sees ``real.detach()``; the discriminator's ``fake`` comes from a detached
    generator output).

    Args:
        real: (N, ...) raw discriminator scores (logits) of real images.
        fake: (N, ...) raw scores of generated images.
        for_discriminator: the discriminator's loss (True) or the generator's (False).

    Returns:
        () tensor.
    """
    real, fake = real.float(), fake.float()
    real_target = 1.0 if for_discriminator else 0.0
    real_term = F.binary_cross_entropy_with_logits(real - fake.mean(), torch.full_like(real, real_target))
    fake_term = F.binary_cross_entropy_with_logits(fake - real.mean(), torch.full_like(fake, 1.0 - real_target))
    return 0.5 * (real_term + fake_term)
