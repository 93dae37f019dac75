"""ESRGAN's options (:class:`ESRGANConfig`, both stages) and BasicSR's values for the stage-dependent ones."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ganslim.archs.discriminators.vgg_style import INPUT_SIZES
from ganslim.archs.sr import SR_SCALES
from ganslim.config import AUTO, TrainConfig, fill_auto, option
from ganslim.errors import GanslimError

METHOD = "esrgan"
PSNR, GAN = "psnr", "gan"
STAGES = (PSNR, GAN)
# BasicSR's train_RRDBNet_PSNR_x4.yml and train_ESRGAN_x4.yml: Adam 2e-4 without EMA, then 1e-4 with EMA 0.999.
STAGE_DEFAULTS = {PSNR: {"lr": 2e-4, "ema_decay": 0.0}, GAN: {"lr": 1e-4, "ema_decay": 0.999}}
GT_SIDE_MULTIPLE = 4  # an LR crop (gt_size / scale) the x4 / x2 / x1 RRDBNet takes: gt_size divisible by 4


@dataclass(frozen=True)
class ESRGANConfig(TrainConfig):
    """Both ESRGAN stages; ``-1`` values take BasicSR's for the stage (:func:`resolve_defaults`)."""

    stage: str = option(PSNR, "psnr: the PSNR-oriented RRDBNet (L1 to the GT); gan: ESRGAN's adversarial stage, "
                              "from the psnr generator given as init", choices=STAGES)
    init: str = option("", "generator to start from: an esrgan run folder, its generator.pt or an ESRGAN / BasicSR "
                           ".pth (the gan stage needs one)")
    scale: int = option(4, "super-resolution factor", choices=SR_SCALES)
    num_feat: int = option(64, "RRDBNet trunk width (ESRGAN: 64)", min=1)
    num_block: int = option(23, "RRDB blocks (ESRGAN: 23)", min=1)
    num_grow_ch: int = option(32, "growth channels of the dense blocks (ESRGAN: 32)", min=1)
    gt: str = option("", "paired training data: folder of GT (HR) images, with lq (BasicSR's dataroot_gt; default: "
                         "the HR images of DATA/train, LR made by bicubic downsampling)")
    lq: str = option("", "paired training data: folder of LQ images, each its GT's size / scale, paired by name")
    val_gt: str = option("", "paired validation: folder of GT images, with val_lq (default: the HR images of "
                             "DATA/val, if that folder exists)")
    val_lq: str = option("", "paired validation: folder of LQ images")
    gt_size: int = option(128, "GT crop side of a training item (the gan stage's discriminator takes 128 or 256)",
                          min=GT_SIDE_MULTIPLE)
    batch_size: int = option(16, "images per optimisation step and process (ESRGAN: 16)", min=1)
    lr: float = option(AUTO, "Adam learning rate (gan stage: of G and D) (-1: 2e-4 psnr, 1e-4 gan, as BasicSR)",
                       above=0.0, auto=AUTO)
    beta1: float = option(0.9, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.99, "Adam beta2", min=0.0, max=0.999999)
    ema_decay: float = option(AUTO, "exponential moving average of the generator, which is then validated and "
                                    "exported (-1: off psnr, 0.999 gan, as BasicSR; 0: off)",
                              min=0.0, max=0.99999, auto=AUTO)
    l1_weight: float = option(1e-2, "gan stage: weight of L1 to the GT (the psnr stage's only loss, weight 1)",
                              min=0.0)
    perceptual_weight: float = option(1.0, "gan stage: weight of L1 between VGG19 conv5_4 features (needs VGG19 "
                                           "weights)", min=0.0)
    gan_weight: float = option(5e-3, "gan stage: weight of the relativistic average GAN loss", min=0.0)
    ndf: int = option(64, "gan stage: width of the VGG-style discriminator (BasicSR's num_feat)", min=1)
    vgg19_weights: str = option("", "gan stage: torchvision's vgg19-dcbb9e9d.pth for the perceptual term ('': "
                                    "$GANSLIM_VGG19_WEIGHTS, then ~/.cache/ganslim; 'none': off)")

    def check(self) -> None:
        super().check()
        for first, second in (("gt", "lq"), ("val_gt", "val_lq")):
            if bool(getattr(self, first)) != bool(getattr(self, second)):
                given, missing = (first, second) if getattr(self, first) else (second, first)
                raise GanslimError(f"{given} is set but {missing} is not: paired data needs both folders")
        if self.gt_size % GT_SIDE_MULTIPLE:
            below = self.gt_size // GT_SIDE_MULTIPLE * GT_SIDE_MULTIPLE
            raise GanslimError(f"gt_size {self.gt_size} is not a multiple of {GT_SIDE_MULTIPLE}, so its LR crop "
                               f"(gt_size / {self.scale}) is no image the x{self.scale} RRDBNet takes: set "
                               f"gt_size={below} or {below + GT_SIDE_MULTIPLE}")
        if self.stage == GAN:
            self._check_gan_stage()
        else:
            defaults = {item.name: item.default for item in dataclasses.fields(self)}
            for key in ("l1_weight", "perceptual_weight", "gan_weight", "ndf", "vgg19_weights"):
                if getattr(self, key) != defaults[key]:
                    raise GanslimError(f"{key} only applies to the gan stage: set stage=gan or drop {key}")

    def _check_gan_stage(self) -> None:
        if self.gt_size not in INPUT_SIZES:
            raise GanslimError(f"gt_size {self.gt_size} does not fit the gan stage's VGG-style discriminator, "
                               f"which takes {' or '.join(map(str, INPUT_SIZES))}-pixel crops: set gt_size=128")
        if not self.init:
            raise GanslimError("the gan stage starts from a PSNR-oriented generator: pass --init with a psnr-stage "
                               "run folder, its generator.pt or an ESRGAN / BasicSR .pth (e.g. RRDB_PSNR_x4.pth)")


def resolve_defaults(config: ESRGANConfig) -> ESRGANConfig:
    """``config`` with ``-1`` values replaced by BasicSR's for its stage, and ``data`` defaulting to the ``gt``
    folder (which then names the run folder) when only paired folders are given."""
    config = fill_auto(config, STAGE_DEFAULTS[config.stage])
    if not config.data and config.gt:
        config = dataclasses.replace(config, data=config.gt)
    return config


def is_resolved(config: ESRGANConfig) -> bool:
    return AUTO not in (config.lr, config.ema_decay)


def generator_kwargs(config: ESRGANConfig) -> dict:
    """The ``rrdbnet`` kwargs the config describes (RGB in and out)."""
    return {"input_nc": 3, "output_nc": 3, "scale": config.scale, "num_feat": config.num_feat,
            "num_block": config.num_block, "num_grow_ch": config.num_grow_ch}
