"""OMGD's options (:class:`OMGDConfig`, paired and unpaired data) and the paper's values for ``auto`` / -1 / 0."""

from __future__ import annotations

from dataclasses import dataclass

from ganslim.config import AUTO, ImageTranslationConfig, fill_auto, option
from ganslim.data import PAIRED, UNPAIRED, data_kind
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES
from ganslim.nn import INIT_TYPES, NORMS
from ganslim.registry import DISCRIMINATORS

METHOD = "omgd"
TITLE = "OMGD"  # the method, as messages name it
STUDENTS = ("mobile_resnet", "unet_256", "unet")
CD_LAYERS = ("activations", "omgd")
# OMGD's settings: GAN loss and discriminator width by data (its pix2pix / CycleGAN scripts), lambda_cd by
# (data, student family) (mobile ResNet pix2pix 1e2, U-Net pix2pix 1e1, CycleGAN 5e2).
PAPER_DEFAULTS = {PAIRED: {"gan_mode": "hinge", "ndf": 128}, UNPAIRED: {"gan_mode": "lsgan", "ndf": 64}}
PAPER_LAMBDA_CD = {(PAIRED, "mobile_resnet"): 100.0, (PAIRED, "unet"): 10.0,
                   (UNPAIRED, "mobile_resnet"): 500.0, (UNPAIRED, "unet"): 500.0}


@dataclass(frozen=True)
class OMGDConfig(ImageTranslationConfig):
    """Options of OMGD, paired and unpaired (see the module docstring); ``auto`` / -1 / 0 take OMGD's value."""

    student: str = option("mobile_resnet", "student architecture", choices=STUDENTS)
    width: float = option(1.0, "student width multiplier: ngf = round(base_ngf * width) (1.0/0.75/0.5 -> 16/12/8)",
                          above=0.0)
    base_ngf: int = option(16, "student ngf at width 1.0", min=1)
    n_blocks: int = option(9, "residual blocks of a mobile_resnet student (and its teachers)", min=1)
    num_downs: int = option(8, "downsamplings of a 'unet' student (unet_256 has 8)", min=5)
    norm: str = option("auto", "norm layers of all networks (auto: instance for mobile_resnet, batch for U-Nets)",
                       choices=("auto", *NORMS))
    wide_multiplier: float = option(4.0, "width of the wide teacher (unpaired: of G_A, G_B) over the student's",
                                    above=0.0)
    deep_multiplier: float = option(1.0, "width of the deep teacher over the student's (paired)", above=0.0)
    teacher: str = option("", "checkpoint initialising the wide teacher (unpaired: G_A, and G_B from a folder)")
    discriminator: str = option("basic", "discriminator architecture (basic = 70x70 PatchGAN)",
                                choices=DISCRIMINATORS.names)
    ndf: int = option(0, "discriminator width (0: 128 paired, as OMGD; 64 unpaired, as CycleGAN)", min=0)
    gan_mode: str = option("auto", "adversarial loss of the teachers (auto: hinge paired, lsgan unpaired)",
                           choices=("auto", *GAN_MODES))
    lambda_gan: float = option(1.0, "paired: weight of each teacher's GAN loss", min=0.0)
    lambda_l1: float = option(100.0, "paired: weight of each teacher's L1 loss to the ground truth", min=0.0)
    lambda_cycle: float = option(10.0, "unpaired: weight of both cycle losses", min=0.0)
    lambda_identity: float = option(0.5, "unpaired: identity loss weight, relative to lambda_cycle", min=0.0)
    pool_size: int = option(50, "unpaired: past fakes kept for the discriminators", min=0)
    ssim_weight: float = option(10.0, "student: weight of 1 - SSIM, per teacher", min=0.0)
    style_weight: float = option(1e4, "student: weight of the VGG16 Gram (style) loss, per teacher", min=0.0)
    feature_weight: float = option(10.0, "student: weight of the VGG16 relu2_2 feature loss, per teacher", min=0.0)
    tv_weight: float = option(1e-5, "student: weight of the total variation (a sum over pixels), per teacher",
                              min=0.0)
    lambda_cd: float = option(AUTO, "student: channel distillation weight (-1: 100 mobile_resnet / 10 U-Net "
                                    "paired, 500 unpaired; 0: off)", min=0.0,
                              auto=AUTO)
    cd_layers: str = option("activations", "student: mobile ResNet layers of channel distillation (activations: "
                                           "the ReLU outputs of the second downsampling and both upsamplings; "
                                           "omgd: OMGD's code, the second downsampling and blocks 3, 6, 9)",
                            choices=CD_LAYERS)
    l1_weight: float = option(AUTO, "student: weight of L1 to each teacher's output (-1: 10 when the VGG16 terms "
                                    "are off, ganslim's fallback; 0 with VGG16 weights, as OMGD)", min=0.0,
                              auto=AUTO)
    student_lr: float = option(0.001, "the student's (and its adapters') Adam learning rate; teachers and "
                                      "discriminator use lr", above=0.0)
    deep_lr: float = option(AUTO, "the deep teacher's Adam learning rate (-1: lr, as OMGD)", above=0.0, auto=AUTO)
    student_epochs_decay: int = option(-1, "epochs at the end of the run over which the student's learning rate "
                                           "decays linearly (-1: epochs_decay, as the teachers)", min=-1)
    vgg_weights: str = option("", "VGG16 ImageNet weights file ('': $GANSLIM_VGG16_WEIGHTS or "
                                  "~/.cache/ganslim/vgg16-397923af.pth; 'none': style/feature terms off)")
    init_type: str = option("normal", "weight initialisation", choices=INIT_TYPES)
    init_gain: float = option(0.02, "scale of the initialisation", min=0.0)
    lr: float = option(0.0002, "initial learning rate of every Adam optimizer", above=0.0)
    beta1: float = option(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=0.999999)
    batch_size: int = option(4, "images per optimisation step and process (OMGD: 4)", min=1)
    n_dis: int = option(1, "paired: student updates per teacher update (the discriminator and teachers train "
                           "every n_dis-th step, the student every step; OMGD: 1 edges2shoes, 3 cityscapes)", min=1)
    holdout_images: int = option(0, "unpaired: training A images held out for validation (0: 10%, 1 to 100)",
                                 min=0)
    snapshot_every: int = option(0, "unpaired: steps between teacher snapshots for the student (0: one epoch)",
                                 min=0)

    def check(self) -> None:
        super().check()
        if self.student_epochs_decay > self.epochs + self.epochs_decay:
            raise GanslimError(f"student_epochs_decay {self.student_epochs_decay} is longer than the run "
                               f"({self.epochs} + {self.epochs_decay} epochs): lower it or -1 for epochs_decay")
        if self.student != "unet" and self.num_downs != 8:
            raise GanslimError(f"num_downs has no effect on a '{self.student}' student: set student=unet or drop "
                               f"num_downs")
        if self.student != "mobile_resnet" and self.n_blocks != 9:
            raise GanslimError(f"n_blocks has no effect on a '{self.student}' student: set student=mobile_resnet "
                               f"or drop n_blocks")


def _family(student: str) -> str:
    return "mobile_resnet" if student == "mobile_resnet" else "unet"


def resolve_defaults(config: OMGDConfig, kind: str | None = None) -> OMGDConfig:
    """``config`` with ``auto`` / -1 / 0 values replaced by OMGD's for its data (``kind``: detected if None)."""
    kind = kind or data_kind(config.data, TITLE)
    family = _family(config.student)
    return fill_auto(config, {**PAPER_DEFAULTS[kind], "norm": "instance" if family == "mobile_resnet" else "batch",
                              "lambda_cd": PAPER_LAMBDA_CD[(kind, family)]})


def student_ngf(config: OMGDConfig) -> int:
    """The student's ngf: ``round(base_ngf * width)``, at least 1."""
    return max(1, round(config.base_ngf * config.width))


def student_spec(config: OMGDConfig) -> tuple[str, dict]:
    """``(arch, arch_kwargs)`` of the student a config describes (its ``norm`` must be resolved)."""
    if config.norm == "auto":
        raise ValueError("resolve the config first (resolve_defaults)")
    kwargs = dict(input_nc=config.input_nc, output_nc=config.output_nc, ngf=student_ngf(config), norm=config.norm,
                  use_dropout=False)
    if config.student == "mobile_resnet":
        kwargs["n_blocks"] = config.n_blocks
    elif config.student == "unet":
        kwargs["num_downs"] = config.num_downs
    return config.student, kwargs
