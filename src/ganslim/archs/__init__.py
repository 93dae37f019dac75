"""Generators and discriminators, each registered by name in ``ganslim.registry``.

Importing this package registers them, one subpackage per family: :mod:`.translation` (image-to-image
generators ``resnet_9blocks``, ``resnet_6blocks``, ``resnet`` (``n_blocks``), ``unet_256``, ``unet_128``, ``unet``
(``num_downs``), ``mobile_resnet``, ``super_mobile_resnet`` and OMGD's deep teachers), :mod:`.sr` (``rrdbnet``),
:mod:`.agd` (AutoGAN-Distiller's derived ``agd_translation`` and ``agd_sr``, and their supernets),
:mod:`.stylegan2` (the latent-driven ``stylegan2`` generator, its ``stylegan2`` discriminator, Anycost GAN's
``anycost`` discriminator and the ``mobile_stylegan`` student), :mod:`.spade` (the label-map ``spade`` generator,
its presets ``spade_cityscapes`` and ``spade_coco``, GAN Compression's ``mobile_spade`` and ``super_mobile_spade``) and :mod:`.discriminators` (``basic``, ``n_layers``
(``n_layers``), ``pixel``, ``vgg_style``, SPADE's ``multiscale``). Each
image-to-image network class declares the image sides it takes as ``image_sides``, and each generator what it takes
and returns as ``signature`` (:mod:`ganslim.signature`).
Architectures import only ``ganslim.nn``, ``ganslim.registry``, ``ganslim.signature``, ``ganslim.errors`` and torch.
"""

from __future__ import annotations

import inspect

from torch import nn

from ganslim.archs import agd, discriminators, spade, sr, stylegan2, translation
from ganslim.archs.discriminators.patchgan import NLayerDiscriminator, PixelDiscriminator
from ganslim.archs.translation.resnet import ResnetBlock, ResnetGenerator
from ganslim.archs.translation.unet import UnetGenerator, UnetSkipConnectionBlock
from ganslim.errors import GanslimError
from ganslim.nn import init_weights
from ganslim.registry import DISCRIMINATORS, GENERATORS, Registry


def builder_parameters(registry: Registry, name: str) -> dict[str, object]:
    """Keyword arguments the builder registered as ``name`` takes, with their defaults."""
    signature = inspect.signature(registry.get(name))
    return {p.name: p.default for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD}


def _check_kwargs(registry: Registry, name: str, kwargs: dict) -> None:
    accepted = builder_parameters(registry, name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise GanslimError(
            f"{registry.kind} '{name}' takes no {', '.join(unknown)}; it takes: {', '.join(accepted)}"
        )


def build_generator(name: str, **kwargs) -> nn.Module:
    """Build the generator registered as ``name``; unknown names raise a GanslimError listing the valid ones.

    Uniform kwargs: ``input_nc=3, output_nc=3, ngf=64, norm="batch", use_dropout=False`` (+ ``n_blocks`` for
    ``resnet``, ``num_downs`` for ``unet``). Weights are PyTorch's defaults; call ``init_weights`` for the
    reference's N(0, 0.02).
    """
    _check_kwargs(GENERATORS, name, kwargs)
    return GENERATORS.build(name, **kwargs)


def build_discriminator(name: str, **kwargs) -> nn.Module:
    """Build the discriminator registered as ``name``.

    Uniform kwargs: ``input_nc=3`` (6 for pix2pix, which sees A and B), ``ndf=64``, ``norm="batch"``
    (+ ``n_layers`` for ``n_layers``).
    """
    _check_kwargs(DISCRIMINATORS, name, kwargs)
    return DISCRIMINATORS.build(name, **kwargs)


__all__ = [
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "build_discriminator",
    "build_generator",
    "builder_parameters",
    "init_weights",
    "agd",
    "discriminators",
    "spade",
    "sr",
    "stylegan2",
    "translation",
]
