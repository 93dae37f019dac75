"""GAN Compression's training stages for a SPADE teacher: the once-for-all ``super_mobile_spade`` and the fine-tune
of one compact ``mobile_spade``, as GAN Compression's GauGAN distiller trains them.

They are :class:`~ganslim.methods.gan_compression.distill.SupernetDistillation` and
:class:`~ganslim.methods.gan_compression.distill.FinetuneDistillation` (channel sampling, adapters, the
discriminator carried from stage to stage, exports) with the SPADE family's networks and objective. The student's
loss, per trained configuration (the supernet averages them)::

    lambda_gan * hinge(D(label map, fake)) + lambda_feat * feature matching(D)
      + lambda_vgg * VGG19 pyramid L1 (only with VGG19 weights) + lambda_distill * sum_l MSE(A_l(S_l), T_l)
      [+ lambda_recon * L1(fake, photo), 0 by default]

with the distilled blocks ``head_0``, ``G_middle_1`` and ``up_1`` and ``A_l`` 1x1 adapters; then the discriminator
on the detached fakes and the photos (hinge over its scales). Adam with TTUR as GAN Compression's SPADE distiller:
G (and adapters) at lr / 2, D at lr * 2, betas (0, 0.9). Data: label maps and photos
(:mod:`.data`), held-out images scored by PSNR / SSIM to the photos and PSNR to the teacher.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ganslim.archs.spade.mobile import CHANNEL_NAMES, check_spade_channels
from ganslim.checkpoints import LoadedModel
from ganslim.data.labels import label_colors
from ganslim.engine import TrainContext
from ganslim.losses import feature_matching_loss, multiscale_gan_loss, pyramid_vgg_loss
from ganslim.methods.gan_compression.config import DistillConfig
from ganslim.methods.gan_compression.distill import FinetuneDistillation, SupernetDistillation
from ganslim.methods.gan_compression.spade.data import training_items, validation_items
from ganslim.methods.gan_compression.spade.networks import (
    build_spade_discriminator,
    distill_layers,
    encoding_and_size,
    load_label_teacher,
    resolve_spade_defaults,
    student_kwargs,
)
from ganslim.methods.spade.method import discriminate_pairs
from ganslim.nn.vgg import load_vgg19_relus, perceptual_vgg19_file, vgg19_absent_notice

logger = logging.getLogger(__name__)

TTUR_BETAS = (0.0, 0.9)


class _SpadeFamily:
    """The SPADE family's hooks of :class:`~ganslim.methods.gan_compression.distill._Distillation`."""

    config: DistillConfig
    ctx: TrainContext
    teacher: nn.Module

    def __init__(self, config: DistillConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        self.encoding, self.size = encoding_and_size(self.teacher)
        self.vgg_status, vgg_file = perceptual_vgg19_file(self.config.vgg19_weights, self.config.lambda_vgg)
        self.vgg = None if vgg_file is None else load_vgg19_relus(vgg_file).to(ctx.device)
        if self.vgg_status == "absent" and ctx.dist.is_main:
            logger.warning("%s", vgg19_absent_notice())

    def _resolve(self, config: DistillConfig) -> DistillConfig:
        return resolve_spade_defaults(config)

    def _is_paired(self) -> bool:
        return True  # every label map has its photo

    def _load_teacher(self) -> LoadedModel:
        return load_label_teacher(self.config, self.ctx.device)

    def _student_kwargs(self) -> dict:
        return student_kwargs(self.config, self.teacher_info)

    def _distill_layers(self) -> list[int]:
        return distill_layers(self.teacher)

    def _learning_rates(self) -> tuple[float, float]:
        return self.config.lr / 2, self.config.lr * 2

    def _betas(self) -> tuple[float, float]:
        return TTUR_BETAS

    def _check_fixed_channels(self, channels: list[int], kwargs: dict) -> None:
        check_spade_channels(channels)

    def _channel_names(self) -> list[str]:
        return list(CHANNEL_NAMES)

    def _build_discriminator(self) -> tuple[str, dict, nn.Module]:
        return build_spade_discriminator(self.config, self.teacher, self._discriminator_source())

    def train_dataset(self) -> Dataset:
        return training_items(self.config, *encoding_and_size(self.teacher))

    def val_dataset(self) -> Dataset:
        return validation_items(self.config, *encoding_and_size(self.teacher))

    def _student_terms(self, label_map: Tensor, real: Tensor, fake: Tensor, features: list[Tensor],
                       teacher_features: list[Tensor]) -> dict[str, Tensor]:
        """The weighted generator terms of one configuration's ``fake`` (see the module docstring)."""
        config = self.config
        pred_fake, pred_real = discriminate_pairs(self.discriminator, label_map, fake, real)
        terms = {"G_gan": config.lambda_gan * multiscale_gan_loss(self.gan_loss, pred_fake, True,
                                                                  for_discriminator=False)}
        if config.lambda_feat > 0:
            terms["G_feat"] = config.lambda_feat * feature_matching_loss(pred_fake, pred_real)
        if self.vgg is not None:
            terms["G_vgg"] = config.lambda_vgg * pyramid_vgg_loss(self.vgg, fake, real)
        if config.lambda_recon > 0:
            terms["G_recon"] = config.lambda_recon * F.l1_loss(fake.float(), real)
        if self.trained_adapters is not None:
            terms["G_distill"] = config.lambda_distill * self.trained_adapters(features, teacher_features)
        return terms

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """One G update over this step's configurations (losses averaged), then one D update on their fakes."""
        ctx = self.ctx
        label_map, real = batch["A"], batch["B"]
        configs = self._step_configs()
        with torch.no_grad(), ctx.autocast():
            _, teacher_features = self.teacher_tap(label_map)
        terms: dict[str, Tensor] = {}
        with ctx.frozen(self.discriminator):  # the plain D: frozen, it stays out of DDP's synchronisation
            with ctx.autocast():
                results = self.tap(label_map, configs)
                for fake, features in results:
                    for key, value in self._student_terms(label_map, real, fake, features, teacher_features).items():
                        terms[key] = terms.get(key, 0.0) + value / len(results)
            ctx.step("G", sum(terms.values()))
        with ctx.autocast():
            d_fake, d_real = 0.0, 0.0
            for fake, _ in results:
                pred_fake, pred_real = discriminate_pairs(self.trained_discriminator, label_map, fake.detach(), real)
                d_fake = d_fake + multiscale_gan_loss(self.gan_loss, pred_fake, False) / len(results)
                d_real = d_real + multiscale_gan_loss(self.gan_loss, pred_real, True) / len(results)
            terms["D_fake"], terms["D_real"] = d_fake, d_real
        ctx.step("D", d_fake + d_real)
        return {key: value.detach() for key, value in terms.items()}

    def visuals(self, batch: dict) -> list[Tensor]:
        """The image-to-image columns with the label map drawn in a colour per label."""
        columns = super().visuals(batch)
        return [label_colors(batch["A"], self.encoding), *columns[1:]]

    def _meta(self) -> dict:
        return {**super()._meta(), "family": "spade", "size": list(self.size), "vgg19": self.vgg_status}


class SpadeSupernetDistillation(_SpadeFamily, SupernetDistillation):
    """Once-for-all training of a ``super_mobile_spade`` student from a SPADE teacher (stage 1)."""

    supernet_arch = "super_mobile_spade"


class SpadeFinetuneDistillation(_SpadeFamily, FinetuneDistillation):
    """Distillation of one sub-network as a compact ``mobile_spade`` (stage 3), from the supernet's weights."""

    compact_arch = "mobile_spade"

