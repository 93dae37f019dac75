"""MobileStyleGAN's distillation losses (Belousov 2021, section 4.2; bes-dev/MobileStyleGAN.pytorch
``DistillerLoss``): pixel and wavelet L1 + L2 at every head's scale, and the VGG16 perceptual L1 on the final image.

Every head of the student predicts the Haar wavelets of the image at twice its side (:mod:`ganslim.nn.wavelets`).
Its target is the teacher's final image bilinearly resized to that side (``align_corners=True``, as the reference;
the last head's target is the teacher's image itself), compared in both domains: the head's inverse DWT against the
target, and the head against the target's DWT.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.losses import feature_loss
from ganslim.nn.vgg import STYLE_LAYERS, VGG16Features
from ganslim.nn.wavelets import image_to_wavelets, wavelets_to_image

PIXEL_TERMS = ("l1_image", "l2_image", "l1_wavelet", "l2_wavelet")


def teacher_target(teacher_image: Tensor, side: int) -> Tensor:
    """The teacher's image (N, C, R, R) bilinearly resized to (N, C, side, side) with ``align_corners=True``."""
    if teacher_image.shape[-1] == side:
        return teacher_image
    return F.interpolate(teacher_image, size=(side, side), mode="bilinear", align_corners=True)


def multiscale_terms(heads: Sequence[Tensor], teacher_image: Tensor) -> dict[str, Tensor]:
    """The pixel and wavelet distances of every head to the teacher, each summed over the heads.

    Args:
        heads: the student's wavelets (N, 4C, r, r), r = 4, 8, ..., R/2 (its image at side 2r is their inverse DWT).
        teacher_image: (N, C, R, R), treated as constant.

    Returns:
        ``{"l1_image", "l2_image", "l1_wavelet", "l2_wavelet"}``, () float32 each: e.g. ``l1_image`` is
        ``sum_r mean |IDWT(head_r) - target_2r|`` and ``l2_wavelet`` ``sum_r mean (head_r - DWT(target_2r))^2``.
        The Haar transform is orthonormal, so ``l2_image`` equals ``l2_wavelet``: the reference sums both, as here.
    """
    teacher_image = teacher_image.detach().float()
    terms = {name: torch.zeros((), device=teacher_image.device) for name in PIXEL_TERMS}
    for head in heads:
        head = head.float()
        image = wavelets_to_image(head)
        target = teacher_target(teacher_image, image.shape[-1])
        target_wavelets = image_to_wavelets(target)
        terms["l1_image"] = terms["l1_image"] + F.l1_loss(image, target)
        terms["l2_image"] = terms["l2_image"] + F.mse_loss(image, target)
        terms["l1_wavelet"] = terms["l1_wavelet"] + F.l1_loss(head, target_wavelets)
        terms["l2_wavelet"] = terms["l2_wavelet"] + F.mse_loss(head, target_wavelets)
    return terms


class PerceptualL1(nn.Module):
    """MobileStyleGAN's perceptual term: ``sum_l mean |VGG16_l(s) - VGG16_l(t)|`` over relu1_2, relu2_2, relu3_3 and
    relu4_3, for the student's and the teacher's images resized (bilinear) to at most ``size`` px.

    The VGG must see the [-1, 1] images as they are (``signed_input``), as the reference feeds it; its ImageNet
    weights are frozen and the teacher's features carry no gradient.
    """

    def __init__(self, vgg: VGG16Features, size: int = 256) -> None:
        super().__init__()
        self.vgg, self.size = vgg, size

    def _resized(self, image: Tensor) -> Tensor:
        if image.shape[-1] <= self.size:
            return image
        return F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def forward(self, student_image: Tensor, teacher_image: Tensor) -> Tensor:
        """Student and teacher images (N, C, R, R) -> () float32."""
        student_features = self.vgg(self._resized(student_image))
        with torch.no_grad():
            teacher_features = self.vgg(self._resized(teacher_image.detach()))
        return sum(feature_loss(student_features, teacher_features, layer) for layer in STYLE_LAYERS)
