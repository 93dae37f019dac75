"""StyleGAN2's training options (:class:`StyleGAN2Config`): rosinality/stylegan2-pytorch's defaults (config-f
networks, Adam 0.002 (0, 0.99), batch 16, R1 10 every 16 steps, path length 2 every 4, mixing 0.9) and StyleGAN2-ADA's
EMA half-life (10 kimg, config-f's) with ramp-up."""

from __future__ import annotations

from dataclasses import dataclass

from ganslim.config import TrainConfig, lr_schedule_names, option
from ganslim.errors import GanslimError
from ganslim.nn.augment import DiffAugment

METHOD = "stylegan2"
ARCH = "stylegan2"
GENERATOR_ARCHS = (ARCH, "mobile_stylegan")  # what train stylegan2 can train as a plain GAN


@dataclass(frozen=True)
class StyleGAN2Config(TrainConfig):
    """Everything ``ganslim train stylegan2`` reads; the length is in kimg (thousands of real images shown)."""

    size: int = option(0, "image side the networks train at, a power of two (0: the images' own side)", min=0)
    resize: bool = option(False, "centre-crop every image to a square and resize it to size, instead of refusing "
                                 "images of another size")
    flip: bool = option(True, "mirror training images at random (rosinality's and StyleGAN2-ADA's --mirror)")
    style_dim: int = option(512, "width of z and W and of the mapping layers (config-f: 512)", min=1)
    n_mlp: int = option(8, "mapping layers (config-f: 8)", min=1)
    channel_multiplier: int = option(2, "scales rosinality's channel table from 64 px up, for G and D (config-f: 2)",
                                     min=1)
    channels: tuple[int, ...] = option((), "another channel table for G and D, one width per side 4, 8, ..., size "
                                           "(empty: channel_multiplier's)", min=1)
    generator: str = option(ARCH, "the generator trained: stylegan2, or mobile_stylegan (the same recipe on "
                                  "MobileStyleGAN's architecture, its table the channel table without its last entry)",
                            choices=GENERATOR_ARCHS)
    mapping_from: str = option("", "a StyleGAN2 generator file whose mapping, w_avg and constant noise a "
                                   "mobile_stylegan copies, its mapping frozen, as its distillation does; its "
                                   "widths are then the teacher's (style_dim, n_mlp, channels unread) and only the "
                                   "synthesis trains ('': its own mapping trains)")
    lr_mlp: float = option(0.01, "the mapping's learning-rate multiplier (0.01)", above=0.0)
    stddev_group: int = option(4, "samples per minibatch-stddev group of the discriminator (4)", min=1)
    lr: float = option(0.002, "Adam learning rate of G and D (rosinality: 0.002)", above=0.0)
    beta1: float = option(0.0, "Adam beta1 (0)", min=0.0, max=0.999999)
    beta2: float = option(0.99, "Adam beta2 (0.99)", min=0.0, max=0.999999)
    r1_gamma: float = option(10.0, "R1 weight gamma on real images (0: off)", min=0.0)
    r1_every: int = option(16, "apply R1 every this many steps, x this weight (lazy regularisation)", min=1)
    path_length_weight: float = option(2.0, "path-length regularisation weight (0: off)", min=0.0)
    path_length_every: int = option(4, "apply the path-length term every this many steps, x this weight", min=1)
    path_batch_shrink: int = option(2, "the path-length batch is the batch divided by this", min=1)
    path_length_decay: float = option(0.01, "weight of each batch in the running mean path length", min=0.0, max=1.0)
    mixing: float = option(0.9, "probability that a batch mixes two styles at a random layer", min=0.0, max=1.0)
    augment: str = option("none", "DiffAugment policy for the discriminator's inputs, real and fake: none, or "
                                  "color,translation,cutout (any of them; for small datasets)")
    inception_weights: str = option("", "FID Inception weights for validation and best.pt ('': "
                                        "$GANSLIM_INCEPTION_WEIGHTS, then ~/.cache/ganslim; 'none': no FID)")
    batch_size: int = option(16, "images per step and process (rosinality: 16)", min=1)
    kimg: float = option(12800.0, "training length in thousands of real images shown (rosinality: 800k steps of 16)",
                         min=0.0)
    epochs: int = option(0, "epochs at the initial learning rate (a length in epochs replaces the default kimg)",
                         min=0)
    epochs_decay: int = option(0, "epochs of linear learning-rate decay (with lr_schedule linear_decay)", min=0)
    lr_schedule: str = option("constant", "learning-rate schedule (rosinality: constant); linear_decay or cosine",
                              choices=lambda: lr_schedule_names())
    ema_kimg: float = option(10.0, "half-life of the generator's average in kimg (config-f and Anycost: 10; "
                                   "rosinality's 0.5 ** (32 / 10000) a step is 5 at its batch 16)", min=0.0)
    ema_rampup: float = option(0.05, "the half-life is at most this times the kimg shown so far (StyleGAN2-ADA's "
                                     "0.05; 0: none, as rosinality)", min=0.0)
    sample_images: int = option(8, "the sample grid is this many rows and columns of fixed-z images", min=1)

    def check(self) -> None:
        super().check()
        DiffAugment.parse(self.augment)
        if self.mapping_from and self.generator != "mobile_stylegan":
            raise GanslimError(f"mapping_from is for --set generator=mobile_stylegan (it copies a teacher's mapping "
                               f"into the student architecture), not {self.generator}: drop mapping_from")
        if self.size and (self.size < 4 or self.size & (self.size - 1)):
            below = 1 << (self.size.bit_length() - 1)
            raise GanslimError(f"size {self.size} is not a power of two: StyleGAN2 trains at 4, 8, ..., 1024 px; set "
                               f"size={max(below, 4)} or {max(below, 2) * 2}")


def generator_kwargs(config: StyleGAN2Config, size: int) -> dict:
    """The ``stylegan2`` generator kwargs of the config at image side ``size`` (``mobile_stylegan``'s with
    ``generator=mobile_stylegan``: the channel table without its last entry)."""
    table = _table(config)
    if config.generator != ARCH and config.channels:
        table = {"channels": list(config.channels[:-1])}
    return {"size": size, "style_dim": config.style_dim, "n_mlp": config.n_mlp, "lr_mlp": config.lr_mlp, **table}


def discriminator_kwargs(config: StyleGAN2Config, size: int) -> dict:
    """The ``stylegan2`` discriminator kwargs of the config at image side ``size``."""
    return {"size": size, "stddev_group": config.stddev_group, **_table(config)}


def _table(config: StyleGAN2Config) -> dict:
    return {"channels": list(config.channels)} if config.channels else {"channel_multiplier": config.channel_multiplier}
