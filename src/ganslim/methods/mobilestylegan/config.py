"""MobileStyleGAN's distillation options (:class:`MobileStyleGANConfig`): the reference's defaults
(bes-dev/MobileStyleGAN.pytorch ``configs/mobile_stylegan_ffhq.json``: loss weights 1 / 1 / 1 / 0.5, Adam 5e-4 for
the student and the discriminator, batch 2, R1 every 16 steps, no style mixing) with gradient-norm clipping on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ganslim.config import TrainConfig, lr_schedule_names, option
from ganslim.errors import GanslimError
from ganslim.nn.augment import DiffAugment

METHOD = "mobilestylegan"
NO_DATA = ("", "none")  # what --data may say: the method samples z, it reads no images
OFF = "none"  # vgg_weights / inception_weights: the term or metric is off, without a warning


@dataclass(frozen=True)
class MobileStyleGANConfig(TrainConfig):
    """Everything ``ganslim compress mobilestylegan`` reads; the length is in kimg (thousands of latents shown)."""

    teacher: str = option("", "the StyleGAN2 teacher: a ganslim stylegan2 generator.pt or run folder, a rosinality "
                              "checkpoint or an NVIDIA .pkl")
    data: str = option("", "no dataset is read, the method samples z: leave it empty or 'none'")
    name: str = option("", "suffix of the run folder name (default: the teacher's file name, or its run folder's)")
    l1_weight: float = option(1.0, "weight of the L1 terms (image and wavelets, summed over every scale)", min=0.0)
    l2_weight: float = option(1.0, "weight of the L2 terms (image and wavelets, summed over every scale)", min=0.0)
    perceptual_weight: float = option(1.0, "weight of the VGG16 perceptual L1 (relu1_2, 2_2, 3_3, 4_3)", min=0.0)
    perceptual_size: int = option(256, "the perceptual term compares the images resized to at most this side",
                                  min=8)
    gan_weight: float = option(0.5, "weight of the student's non-saturating GAN loss", min=0.0)
    r1_gamma: float = option(10.0, "R1 weight gamma on the teacher's images (0: off)", min=0.0)
    r1_every: int = option(16, "apply R1 every this many steps, x this weight (lazy regularisation)", min=1)
    mixing: float = option(0.0, "probability that a step mixes two styles at a random layer the student reads "
                                "(MobileStyleGAN: 0; rosinality's StyleGAN2: 0.9)", min=0.0, max=1.0)
    augment: str = option("translation,cutout", "DiffAugment policy for the discriminator's inputs (none, or any of "
                                                "color,translation,cutout)")
    stddev_group: int = option(4, "samples per minibatch-stddev group of the discriminator (4)", min=1)
    vgg_weights: str = option("", "VGG16 ImageNet weights file ('': $GANSLIM_VGG16_WEIGHTS, then "
                                  "~/.cache/ganslim/vgg16-397923af.pth; 'none': no perceptual term)")
    inception_weights: str = option("", "Inception weights for KID at validation ('': $GANSLIM_INCEPTION_WEIGHTS, "
                                        "then ~/.cache/ganslim; 'none': no KID, best.pt by PSNR to the teacher)")
    val_images: int = option(64, "fixed validation latents (and noise) on which the student is compared with the "
                                 "teacher", min=2)
    train_latents: int = option(10_000, "latents per epoch (the epoch only sets the draws, not the length)", min=1)
    lr: float = option(5e-4, "Adam learning rate of the student's synthesis and of the discriminator", above=0.0)
    beta1: float = option(0.9, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=0.999999)
    grad_clip: float = option(1.0, "clip each optimizer's gradient norm to this (MobileStyleGAN's users needed 1 "
                                   "to keep it from diverging; 0: off)", min=0.0)
    batch_size: int = option(2, "latents per step and process (MobileStyleGAN: 2)", min=1)
    kimg: float = option(2000.0, "training length in thousands of latents (MobileStyleGAN: 100 epochs of 10,000 "
                                 "batches of 2)", min=0.0)
    epochs: int = option(0, "epochs of train_latents (a length in epochs replaces the default kimg)", min=0)
    epochs_decay: int = option(0, "epochs of linear learning-rate decay (with lr_schedule linear_decay)", min=0)
    lr_schedule: str = option("constant", "learning-rate schedule (MobileStyleGAN: constant); linear_decay or "
                                          "cosine", choices=lambda: lr_schedule_names())
    sample_images: int = option(4, "rows of the teacher | student sample grid (fixed validation latents)", min=1)

    def check(self) -> None:
        super().check()
        if not self.name and self.teacher:  # there is no dataset folder to name the run after
            object.__setattr__(self, "name", teacher_label(self.teacher))
        DiffAugment.parse(self.augment)
        if self.data not in NO_DATA:
            raise GanslimError(f"{METHOD} reads no dataset (it distils from sampled z only), got --data "
                               f"'{self.data}': drop --data or pass --data none")
        if self.sample_images > self.val_images:
            raise GanslimError(f"sample_images {self.sample_images} is more than val_images {self.val_images}: the "
                               f"sample grid shows validation latents, lower sample_images or raise val_images")


def teacher_label(teacher: str) -> str:
    """What a run distilling ``teacher`` is named after: its file's stem (or folder's name), or the run folder that
    holds a ganslim ``generator.pt`` (``runs/00003-stylegan2-faces/generator.pt`` -> ``00003-stylegan2-faces``)."""
    path = Path(teacher)
    return path.parent.name if path.stem == "generator" and path.parent.name else path.stem
