"""SPADE's options (:class:`SPADEConfig`) and the generator and discriminator they describe.

The generator's label encoding, upsampling, size and width default to the ``arch`` chosen (``spade``: NVlabs' base
options, 182 labels + instance edges at 256x256; ``spade_cityscapes``; ``spade_coco``); each key given replaces the
arch's value. ``contain_dontcare_label`` and ``no_instance`` add to the arch's, as NVlabs' flags do to its dataset
defaults (a preset's dontcare label cannot be turned off). :func:`resolve_defaults` writes the values the run uses
into the config, so its ``config.yaml`` records them.

``student_channels`` trains GAN Compression's ``mobile_spade`` at that 8-entry configuration instead, with the same
label encoding, upsampling and size: the compressed architecture from scratch, GAN Compression's baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganslim.archs import build_generator
from ganslim.archs.spade.generator import UPSAMPLINGS
from ganslim.archs.spade.mobile import check_spade_channels
from ganslim.config import TrainConfig, fill_auto, option
from ganslim.data.label_datasets import LABEL_LAYOUTS
from ganslim.errors import GanslimError
from ganslim.losses import GAN_MODES

METHOD = "spade"
ARCH, STUDENT_ARCH, DISCRIMINATOR_ARCH = "spade", "mobile_spade", "multiscale"
ARCHS = ("spade", "spade_cityscapes", "spade_coco")
# Config keys whose 0 / "" means "the arch's value", by the spade kwarg they set.
FROM_ARCH = {"label_nc": "label_nc", "num_upsampling_layers": "num_upsampling_layers", "crop_size": "crop_size",
             "aspect_ratio": "aspect_ratio", "ngf": "ngf"}


@dataclass(frozen=True)
class SPADEConfig(TrainConfig):
    """NVlabs/SPADE's training options (``train_options.py``); see the module docstring for the generator's."""

    arch: str = option("spade", "generator preset whose label encoding, upsampling, size and width are the defaults "
                                "below: spade (182 labels + edges, 256x256), spade_cityscapes (35 + edges, 'more', "
                                "256x512), spade_coco (182 + dontcare + edges, 256x256)", choices=ARCHS)
    student_channels: tuple[int, ...] = option((), "train GAN Compression's mobile_spade at this 8-entry "
                                                   "configuration (fc, head_0, G_middle_0, G_middle_1, up_0 .. up_3), "
                                                   "e.g. 8,8,8,8,8,8,8,8, instead of the spade generator: a "
                                                   "compressed architecture from scratch ('': spade)")
    layout: str = option("", "dataset layout: cityscapes, ade20k, coco or folders ('': detected)",
                         choices=("", *LABEL_LAYOUTS))
    label_nc: int = option(0, "labels, without a dontcare label (0: the arch's)", min=0)
    contain_dontcare_label: bool = option(False, "one more label for the dontcare id 255 (on top of the arch's)")
    no_instance: bool = option(False, "no instance-edge channel (NVlabs' --no_instance; no instance maps read)")
    num_upsampling_layers: str = option("", "normal, more or most ('': the arch's)", choices=("", *UPSAMPLINGS))
    crop_size: int = option(0, "width the generator is built for and the images are resized to (0: the arch's)",
                            min=0)
    aspect_ratio: float = option(0.0, "width / height (0: the arch's)", min=0.0)
    ngf: int = option(0, "generator width (0: the arch's, 64)", min=0)
    spade_hidden: int = option(0, "width of SPADE's shared conv (0: 2 x ngf, NVlabs' 128 at ngf 64)", min=0)
    spectral_g: bool = option(True, "spectral norm on the generator's block convs during training, folded into "
                                    "generator.pt (NVlabs' norm_G spectralspadesyncbatch3x3)")
    ndf: int = option(64, "discriminator width", min=1)
    n_layers_d: int = option(4, "convs of each discriminator scale before its scores (NVlabs' n_layers_D)", min=1)
    num_d: int = option(2, "discriminator scales (NVlabs' num_D)", min=1)
    spectral_d: bool = option(True, "spectral norm in the discriminator (NVlabs' norm_D spectralinstance; false: "
                                    "instance)")
    gan_mode: str = option("hinge", "adversarial loss", choices=GAN_MODES)
    lambda_feat: float = option(10.0, "weight of the discriminator feature-matching loss", min=0.0)
    lambda_vgg: float = option(10.0, "weight of the VGG19 perceptual loss (needs VGG19 weights)", min=0.0)
    vgg19_weights: str = option("", "torchvision's vgg19-dcbb9e9d.pth for the perceptual term ('': "
                                    "$GANSLIM_VGG19_WEIGHTS, then ~/.cache/ganslim; 'none': off)")
    lr: float = option(0.0002, "base learning rate: G trains at lr / 2, D at lr * 2 (TTUR)", above=0.0)
    beta1: float = option(0.0, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = option(0.9, "Adam beta2", min=0.0, max=0.999999)
    init_type: str = option("xavier", "weight initialisation (NVlabs: xavier)",
                            choices=("normal", "xavier", "kaiming", "orthogonal"))
    init_gain: float = option(0.02, "scale of the initialisation (NVlabs' init_variance)", min=0.0)
    flip: bool = option(True, "random horizontal flips of label map and image together")
    epochs: int = option(50, "epochs at the initial learning rate (NVlabs' niter)", min=0)
    epochs_decay: int = option(0, "epochs of linear decay to zero (NVlabs' niter_decay)", min=0)

    def check(self) -> None:
        super().check()
        if self.ema_decay > 0 or self.ema_kimg > 0:
            raise GanslimError("spade keeps no average of the generator (NVlabs exports the last weights): drop "
                               "ema_decay / ema_kimg")
        if self.student_channels and self.spade_hidden:
            raise GanslimError("mobile_spade's SPADE hidden width is 2 x each block's entry of student_channels: "
                               "drop spade_hidden")


def arch_defaults(arch: str) -> dict:
    """The ``spade`` kwargs of the registered ``arch`` at its defaults (built without weights)."""
    with torch.device("meta"):
        return build_generator(arch).arch_kwargs()


def generator_arch(config: SPADEConfig) -> str:
    """``mobile_spade`` with ``student_channels``, else ``spade``."""
    return STUDENT_ARCH if config.student_channels else ARCH


def generator_kwargs(config: SPADEConfig) -> dict:
    """The kwargs of the generator the config trains (see the module docstring)."""
    kwargs = arch_defaults(config.arch)
    kwargs.update({name: getattr(config, key) for key, name in FROM_ARCH.items() if getattr(config, key)})
    kwargs["contain_dontcare_label"] = kwargs["contain_dontcare_label"] or config.contain_dontcare_label
    kwargs["instance_edges"] = kwargs["instance_edges"] and not config.no_instance
    kwargs["spade_hidden"] = config.spade_hidden or None
    kwargs.update(use_vae=False, norm="batch")
    if config.student_channels:
        del kwargs["use_vae"], kwargs["z_dim"], kwargs["spade_hidden"]
        kwargs["channels"] = check_spade_channels(config.student_channels)
    return kwargs


def discriminator_kwargs(config: SPADEConfig, label_channels: int) -> dict:
    """The ``multiscale`` kwargs: it sees the ``label_channels`` of the label map and the RGB image."""
    return {"input_nc": label_channels + 3, "ndf": config.ndf, "n_layers": config.n_layers_d, "num_d": config.num_d,
            "spectral": config.spectral_d}


def resolve_defaults(config: SPADEConfig) -> SPADEConfig:
    """``config`` with the arch's values written into the keys left to it."""
    kwargs = generator_kwargs(config)
    chosen = {key: kwargs[name] for key, name in FROM_ARCH.items()}
    return fill_auto(config, {**chosen, "contain_dontcare_label": kwargs["contain_dontcare_label"],
                              "no_instance": not kwargs["instance_edges"]})
