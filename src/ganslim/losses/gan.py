"""Adversarial losses on discriminator outputs (logits of any shape, e.g. PatchGAN maps (N, 1, H, W)).

``vanilla``: binary cross-entropy on logits (the original GAN, pix2pix's default); ``lsgan``: least squares
towards 1 (real) / 0 (fake) (CycleGAN's default); ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))`` for the
discriminator and ``-D(fake)`` for the generator. Every loss is a mean over all elements.
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
