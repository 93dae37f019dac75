"""The OMGD student's objective: per teacher SSIM, VGG16 style / feature and total variation terms (or, without
VGG16 weights, ganslim's L1 fallback), plus channel distillation towards the wide teacher."""

from __future__ import annotations

from typing import Mapping, Sequence

from torch import Tensor, nn

from ganslim.config import AUTO
from ganslim.losses import PerceptualDistillLoss, channel_distillation_loss
from ganslim.methods.omgd.config import OMGDConfig
from ganslim.nn.vgg import VGG16Features, find_vgg16_weights, load_vgg16

FALLBACK_L1_WEIGHT = 10.0  # student's L1 to each teacher's output when the VGG16 terms are off


def student_l1_weight(config: OMGDConfig, vgg: VGG16Features | None) -> float:
    """The student's L1 weight: ``l1_weight``, or with -1 ganslim's fallback 10 when the VGG16 terms are off (0 when
    they run, as OMGD)."""
    if config.l1_weight != AUTO:
        return config.l1_weight
    return FALLBACK_L1_WEIGHT if vgg is None else 0.0


def load_omgd_vgg(config: OMGDConfig) -> VGG16Features | None:
    """The VGG16 of the style / feature terms, fed [0, 1] images without ImageNet normalisation (as OMGD)."""
    if config.vgg_weights == "none" or (config.style_weight == 0 and config.feature_weight == 0):
        return None
    path = find_vgg16_weights(config.vgg_weights or None)
    return load_vgg16(path, imagenet_norm=False) if path is not None else None


class OMGDStudentLoss(nn.Module):
    """The student's objective; it takes no ground truth and no discriminator, by construction.

    ``sum over teachers of PerceptualDistillLoss(student, teacher) + lambda_cd * channel_distillation``.

    Args:
        perceptual: the per-teacher image terms (its VGG may be None: SSIM and TV only).
        lambda_cd: weight of the channel distillation term (0: off).
    """

    def __init__(self, perceptual: PerceptualDistillLoss, lambda_cd: float) -> None:
        super().__init__()
        self.perceptual, self.lambda_cd = perceptual, lambda_cd

    def forward(self, student_image: Tensor, adapted_features: Sequence[Tensor], teacher_images: Mapping[str, Tensor],
                teacher_features: Sequence[Tensor]) -> dict[str, Tensor]:
        """Weighted terms ``{term_teacher: ()}`` (e.g. ``ssim_wide``, ``style_deep``) and ``cd``; sum them.

        Args:
            student_image: (N, C, H, W) in [-1, 1]; gradients flow to it.
            adapted_features: per distilled layer (N, C_l, H_l, W_l), the student's activation through its
                adapter (at the teacher's width ``C_l``); may be empty when ``lambda_cd`` is 0.
            teacher_images: name -> (N, C, H, W) teacher output; treated as constant.
            teacher_features: per layer (N, C_l, H'_l, W'_l) activations of the wide teacher; constant.
        """
        terms: dict[str, Tensor] = {}
        for name, image in teacher_images.items():
            for term, value in self.perceptual(student_image, image.detach()).items():
                terms[f"{term}_{name}"] = value
        if self.lambda_cd > 0:
            terms["cd"] = self.lambda_cd * channel_distillation_loss(adapted_features, teacher_features)
        return terms
