"""Anycost GAN's training options (:class:`AnycostConfig`): the authors' recipe (Adam 0.002 (0, 0.99) without the
lazy-regularisation adjustment, R1 10 every 16 steps, style mixing 0.9, EMA half-life 10 kimg, consistency weight 2,
2 of the top 4 resolutions a step, sandwich sampling of the channel configurations), a length for each training
stage."""

from __future__ import annotations

from dataclasses import dataclass

from ganslim.config import TrainConfig, lr_schedule_names, option
from ganslim.errors import GanslimError

METHOD = "anycost"
SAMPLING_MODES = ("uniform", "flexible", "sandwich")
TEACHER_DISCRIMINATOR_OFF = "none"


@dataclass(frozen=True)
class AnycostConfig(TrainConfig):
    """Everything ``ganslim compress anycost`` reads; ``kimg`` / ``iterations`` are the multi-resolution stage's
    length, ``channels_kimg`` / ``channels_iterations`` the adaptive-channel stage's."""

    teacher: str = option("", "the StyleGAN2 teacher: a ganslim generator.pt, a train stylegan2 run folder or a "
                              "rosinality / NVIDIA checkpoint")
    teacher_discriminator: str = option("", "the discriminator the multi-resolution one starts from ('': the "
                                            "teacher file's own, or discriminator.pt beside it; 'none': a fresh one)")
    resize: bool = option(False, "centre-crop every image to a square and resize it to the teacher's side, instead "
                                 "of refusing images of another size")
    flip: bool = option(True, "mirror training images at random")
    resolutions: int = option(4, "sub-generators train at the top this many sides: size, size/2, ... (Anycost: 4)",
                              min=1)
    sampled_resolutions: int = option(2, "multi-resolution stage: sides drawn each step for G and D (Anycost: 2)",
                                      min=1)
    channel_sampling: str = option("sandwich", "adaptive-channel stage: how each step draws the channel "
                                               "configuration: uniform (one ratio of 0.25, 0.5, 0.75, 1), flexible "
                                               "(a ratio per layer) or sandwich (25% full, 25% the 0.25 config, 50% "
                                               "flexible)", choices=SAMPLING_MODES)
    consistency_weight: float = option(2.0, "weight of the consistency loss (MSE, plus VGG16 perceptual with "
                                            "weights) to the downsampled target (Anycost: 2)", min=0.0)
    vgg_weights: str = option("", "torchvision's vgg16-397923af.pth for the perceptual consistency term ('none': "
                                  "off; default: $GANSLIM_VGG16_WEIGHTS, then ~/.cache/ganslim)")
    lr: float = option(0.002, "Adam learning rate of G and D (Anycost: 0.002)", above=0.0)
    beta1: float = option(0.0, "Adam beta1 (0)", min=0.0, max=0.999999)
    beta2: float = option(0.99, "Adam beta2 (0.99)", min=0.0, max=0.999999)
    r1_gamma: float = option(10.0, "R1 weight gamma on real images (0: off)", min=0.0)
    r1_every: int = option(16, "apply R1 every this many steps, x this weight (lazy regularisation)", min=1)
    mixing: float = option(0.9, "probability that a batch mixes two styles at a random layer", min=0.0, max=1.0)
    sort_latents: int = option(100_000, "mapped latents whose mean |modulation| ranks the channels at the start of "
                                        "the adaptive-channel stage (Anycost: 100k)", min=1)
    fidelity_samples: int = option(64, "fixed latents on which validation scores every sub-generator's fidelity "
                                       "to the teacher", min=1)
    batch_size: int = option(16, "images per step and process", min=1)
    kimg: float = option(1400.0, "multi-resolution stage length in thousands of real images shown (Anycost: 20 "
                                 "FFHQ epochs)", min=0.0)
    epochs: int = option(0, "refused: each stage's length is in kimg or iterations", min=0, max=0)
    epochs_decay: int = option(0, "refused: each stage's length is in kimg or iterations", min=0, max=0)
    channels_kimg: float = option(9100.0, "adaptive-channel stage length in kimg (Anycost: 130 FFHQ epochs)",
                                  min=0.0)
    channels_iterations: int = option(0, "adaptive-channel stage length in steps instead of channels_kimg (0: off)",
                                      min=0)
    lr_schedule: str = option("constant", "learning-rate schedule (Anycost: constant); linear_decay or cosine",
                              choices=lambda: lr_schedule_names())
    ema_kimg: float = option(10.0, "half-life of the generator's average in kimg (Anycost: 10)", min=0.0)
    sample_images: int = option(4, "rows (fixed latents) of the sample grid of the sub-generators", min=1)

    def check(self) -> None:
        super().check()
        if not self.teacher:
            raise GanslimError("no teacher: pass --teacher CKPT (a StyleGAN2 generator.pt or rosinality checkpoint)")
        if self.sampled_resolutions > self.resolutions:
            raise GanslimError(f"sampled_resolutions {self.sampled_resolutions} > resolutions {self.resolutions}: "
                               f"a step draws distinct sides among the top {self.resolutions}; lower it")
        if self.channels_kimg > 0 and self.channels_iterations > 0:
            if self.channels_kimg != self._declared("channels_kimg"):
                raise GanslimError(f"the adaptive-channel length is given twice (channels_kimg="
                                   f"{self.channels_kimg:g} and channels_iterations={self.channels_iterations}): "
                                   f"keep one")
            object.__setattr__(self, "channels_kimg", 0.0)  # the length given replaces the default one
        if self.channels_kimg == 0 and self.channels_iterations == 0:
            raise GanslimError("the adaptive-channel stage has no length: set channels_kimg or channels_iterations")


@dataclass(frozen=True)
class AdaptiveChannelsConfig(AnycostConfig):
    """The adaptive-channel stage's config: the run's, its length from ``channels_*``, and where stage 1 ended."""

    multi_resolution: str = option("", "the multi-resolution stage's run folder (its generator.pt and "
                                       "discriminator.pt start this stage)")

