"""GAN Compression's options (:class:`DistillConfig`, shared by its training stages) and the paper's defaults.

The paper's defaults are taken from the data (:func:`resolve_defaults`): paired lambda_recon 100, lambda_distill 1,
hinge; unpaired (CycleGAN data; G_A is compressed) lambda_recon 10, lambda_distill 0.01, LSGAN. A SPADE teacher's
(``ganslim.methods.gan_compression.spade``) are GAN Compression's GauGAN ones: no L1, distillation 10, hinge, with
feature matching ``lambda_feat`` 10 and VGG19 ``lambda_vgg`` 10.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganslim.archs.spade import SuperMobileSPADEGenerator
from ganslim.archs.translation.super_mobile_resnet import SuperMobileResnetGenerator
from ganslim.compress import DEFAULT_RATIOS, SearchSpace
from ganslim.compress.spade_space import SpadeSearchSpace
from ganslim.config import AUTO, ImageTranslationConfig, fill_auto, option
from ganslim.data import PAIRED, UNPAIRED, data_kind
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES
from ganslim.nn import NORMS

TITLE = "GAN Compression"  # the method, as messages name it
PAPER_DEFAULTS = {
    PAIRED: {"lambda_recon": 100.0, "lambda_distill": 1.0, "gan_mode": "hinge"},
    UNPAIRED: {"lambda_recon": 10.0, "lambda_distill": 0.01, "gan_mode": "lsgan"},
}


@dataclass(frozen=True)
class DistillConfig(ImageTranslationConfig):
    """Options of both GAN Compression training stages (see the module docstring)."""

    teacher: str = option("", "teacher generator: a ganslim .pt, a reference latest_net_G*.pth, or a run folder")
    teacher_discriminator: str = option(
        "", "discriminator to start from ('': the teacher's, found next to its file, else fresh; 'none': fresh)")
    student_ngf: int = option(0, "stem width of the largest student (0: the teacher's ngf)", min=0)
    student_norm: str = option("auto", "student norm layers (auto: the teacher's)", choices=("auto", *NORMS))
    student_blocks: int = option(0, "student residual blocks (0: the teacher's for a ResNet teacher, else 9)",
                                 min=0)
    ndf: int = option(64, "width of a fresh discriminator (unused when one is loaded)", min=1)
    gan_mode: str = option("auto", "adversarial loss (auto: hinge for paired data, lsgan for unpaired)",
                           choices=("auto", *GAN_MODES))
    lambda_gan: float = option(1.0, "weight of the GAN loss", min=0.0)
    lambda_recon: float = option(AUTO, "weight of the L1 reconstruction loss (-1: 100 paired, 10 unpaired, 0 "
                                       "with a SPADE teacher)", min=0.0, auto=AUTO)
    lambda_distill: float = option(AUTO, "weight of the feature distillation loss (-1: 1 paired, 0.01 unpaired, "
                                         "10 with a SPADE teacher)", min=0.0, auto=AUTO)
    lambda_feat: float = option(10.0, "SPADE teachers: weight of the discriminator feature-matching loss", min=0.0)
    lambda_vgg: float = option(10.0, "SPADE teachers: weight of the VGG19 perceptual loss (needs VGG19 weights)",
                               min=0.0)
    vgg19_weights: str = option("", "SPADE teachers: torchvision's vgg19-dcbb9e9d.pth for the perceptual term ('': "
                                    "$GANSLIM_VGG19_WEIGHTS, then ~/.cache/ganslim; 'none': off)")
    lr: float = option(0.0002, "initial learning rate of both Adam optimizers (SPADE teachers: TTUR, G at lr / 2 "
                               "and D at lr * 2, betas 0 and 0.9)", above=0.0)
    beta1: float = option(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.999, "Adam beta2", min=0.0, max=0.999999)
    holdout_images: int = option(
        0, "training images held out for validation and search, never trained on (0: 10%, 1 to 100)", min=0)
    channel_ratios: tuple[float, ...] = option(DEFAULT_RATIOS, "candidate widths per layer, as fractions of its "
                                               "largest width, e.g. 1,0.75,0.5,0.375,0.25", above=0.0, max=1.0)
    channel_multiple: int = option(8, "candidate widths are rounded to multiples of this", min=1)
    candidates: tuple[tuple[int, ...], ...] = option((), "explicit candidate widths, one list per layer (command "
                                                         "line: ';' between layers, ',' between widths; overrides "
                                                         "channel_ratios)", min=1)
    sampling: str = option("uniform", "supernet: configurations per step (uniform: one random; sandwich: "
                                      "largest + smallest + random)", choices=("uniform", "sandwich"))
    fixed_channels: tuple[int, ...] = option((), "fine-tune: the widths of the sub-network, e.g. "
                                                 "16,32,64,32,48,64,32,16", min=1)
    supernet: str = option("", "fine-tune / search: supernet.pt (or its run folder) to start from; pipeline: "
                                 "reuse it instead of training stage 1")

    def check(self) -> None:
        super().check()
        if not self.channel_ratios:
            raise GanslimError("channel_ratios is empty: give the fractions of each layer's largest width, e.g. "
                               "channel_ratios=1,0.75,0.5,0.375,0.25")
        if any(not widths for widths in self.candidates):
            raise GanslimError(f"candidates {_as_text(self.candidates)} has an empty layer: write e.g. "
                               f"64,48,32;128,96,64;...")


def _as_text(candidates: tuple[tuple[int, ...], ...]) -> str:
    """``((8,), (16, 8))`` -> ``'8;16,8'``, as the command line writes it."""
    return "'" + ";".join(",".join(map(str, widths)) for widths in candidates) + "'"


def resolve_defaults(config: DistillConfig) -> DistillConfig:
    """``config`` with ``auto`` / -1 values replaced by the paper's defaults for its data (paired/unpaired)."""
    return fill_auto(config, PAPER_DEFAULTS[data_kind(config.data, TITLE)])


def search_space(config: DistillConfig, supernet: SuperMobileResnetGenerator | SuperMobileSPADEGenerator
                 ) -> SearchSpace | SpadeSearchSpace:
    """The channel search space of ``supernet`` that ``config`` describes (explicit candidates or ratios)."""
    space = SpadeSearchSpace if isinstance(supernet, SuperMobileSPADEGenerator) else SearchSpace
    if config.candidates:
        return space.for_supernet(supernet, config.candidates)
    return space.for_supernet(supernet, ratios=config.channel_ratios, multiple=config.channel_multiple)
