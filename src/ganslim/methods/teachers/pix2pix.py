"""pix2pix (Isola et al. 2017), with the reference implementation's defaults.

A conditional PatchGAN sees (input, output) pairs; the generator minimises the GAN loss plus ``lambda_l1`` x L1 to
the target; it is validated on the ``val/`` split with PSNR and SSIM and ``best.pt`` is the checkpoint with the best
val PSNR. Exports ``generator.pt`` / ``discriminator.pt`` and ``reference/latest_net_G.pth`` / ``latest_net_D.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganslim.config import option
from ganslim.data import AlignedDataset
from ganslim.engine import TrainContext
from ganslim.methods.teachers.base import TeacherBase, TeacherConfig, discriminator_spec, generator_spec
from ganslim.metrics import mean_psnr_ssim


@dataclass(frozen=True)
class Pix2PixConfig(TeacherConfig):
    """pix2pix: the reference defaults (unet_256, batch norm, dropout, vanilla GAN, lambda_L1 100)."""

    lambda_l1: float = option(100.0, "weight of the L1 loss to the target", min=0.0)


class Pix2Pix(TeacherBase):
    """pix2pix teacher: G maps A to B; D judges (A, B) pairs. See the module docstring."""

    name = "pix2pix"
    Config = Pix2PixConfig
    monitor = ("psnr", "max")
    ema_networks = ("G",)

    def __init__(self, config: Pix2PixConfig, ctx: TrainContext) -> None:
        super().__init__(config, ctx)
        self.add_network("G", "generator", generator_spec(config, config.input_nc, config.output_nc))
        self.add_network("D", "discriminator", discriminator_spec(config, config.input_nc + config.output_nc))
        self._optimizers = {"G": self.adam("G"), "D": self.adam("D")}

    def train_dataset(self) -> AlignedDataset:
        return AlignedDataset(self.config.data, "train", **self.dataset_kwargs(train=True))

    def val_dataset(self) -> AlignedDataset | None:
        if not (Path(self.config.data) / "val").is_dir():
            return None
        return AlignedDataset(self.config.data, "val", **self.dataset_kwargs(train=False))

    def train_step(self, batch: dict) -> dict[str, Tensor]:
        """D on (A, B) real vs (A, G(A)) fake, then G on GAN + lambda_l1 * L1 with D frozen."""
        ctx, real_a, real_b = self.ctx, batch["A"], batch["B"]
        with ctx.autocast():
            fake_b = self.trained["G"](real_a)
            pred_fake = self.trained["D"](torch.cat([real_a, fake_b.detach()], 1))
            pred_real = self.trained["D"](torch.cat([real_a, real_b], 1))
            loss_d_fake = self.gan_loss(pred_fake, False)
            loss_d_real = self.gan_loss(pred_real, True)
        ctx.step("D", 0.5 * (loss_d_fake + loss_d_real))
        # The frozen D runs unwrapped: it needs no gradient averaging, and DDP expects grads for its params.
        with ctx.frozen(self.nets["D"]):
            with ctx.autocast():
                loss_g_gan = self.gan_loss(self.nets["D"](torch.cat([real_a, fake_b], 1)), True,
                                           for_discriminator=False)
                loss_g_l1 = F.l1_loss(fake_b.float(), real_b) * self.config.lambda_l1
            ctx.step("G", loss_g_gan + loss_g_l1)
        return {"G_GAN": loss_g_gan.detach(), "G_L1": loss_g_l1.detach(), "D_real": loss_d_real.detach(),
                "D_fake": loss_d_fake.detach()}

    def validate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Mean per-image PSNR (dB) and SSIM of G(A) against B over the val split."""
        return mean_psnr_ssim((self.nets["G"](batch["A"]).float(), batch["B"]) for batch in batches)

    def visuals(self, batch: dict) -> list[Tensor]:
        return [batch["A"], self.nets["G"](batch["A"]).float(), batch["B"]]

    def export(self, run_dir: Path) -> dict[str, Path]:
        files = {"G": ("generator.pt", "latest_net_G.pth"), "D": ("discriminator.pt", "latest_net_D.pth")}
        return self.export_networks(run_dir, files, self.export_meta(self.name))
