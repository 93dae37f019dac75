"""Anycost GAN's consistency loss: a sub-generator's image against the target's image bilinearly downsampled to its
side (``align_corners=True``, as Anycost's): MSE, plus a VGG16 perceptual term when weights are supplied (at most
256 px, as Anycost applies LPIPS), times the weight (2)."""

from __future__ import annotations

import logging

import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.nn.vgg import VGG16Features

logger = logging.getLogger(__name__)

PERCEPTUAL_SIDE = 256  # Anycost scores LPIPS at 256 px at most


def downsample(image: Tensor, side: int) -> Tensor:
    """(N, C, H, W) -> (N, C, side, side), bilinear with ``align_corners=True`` (the image itself at its side)."""
    if image.shape[-1] == side:
        return image
    return F.interpolate(image, size=(side, side), mode="bilinear", align_corners=True)


def pyramid(image: Tensor, sides: tuple[int, ...]) -> dict[int, Tensor]:
    """``{side: image downsampled to side}`` for each of ``sides`` (the reals a multi-resolution D judges)."""
    return {side: downsample(image, side) for side in sides}


class ConsistencyLoss(nn.Module):
    """(sub-generator image (N, C, r, r), target image (N, C, R, R), R >= r) -> weight * (MSE + VGG16 perceptual),
    the target treated as constant. ``vgg`` None: MSE alone.

    The perceptual term is the mean over relu1_2 ... relu4_3 of the mean |difference| of activations, at
    ``min(r, 256)`` px (LPIPS needs weights ganslim does not ship; this is the VGG16 term the other methods use).
    """

    def __init__(self, weight: float, vgg: VGG16Features | None) -> None:
        super().__init__()
        self.weight, self.vgg = weight, vgg

    def forward(self, image: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``{"mse": ..., "perceptual": ... (with VGG), "consistency": weight x their sum}``, () tensors."""
        target = downsample(target.detach(), image.shape[-1]).float()
        terms = {"mse": F.mse_loss(image.float(), target)}
        if self.vgg is not None:
            side = min(image.shape[-1], PERCEPTUAL_SIDE)
            ours, theirs = self.vgg(downsample(image.float(), side)), self.vgg(downsample(target, side))
            terms["perceptual"] = sum(F.l1_loss(ours[name], theirs[name]) for name in ours) / len(ours)
        terms["consistency"] = self.weight * sum(terms.values())
        return terms
