"""PatchGAN and pixel discriminators of pix2pix / CycleGAN, state-dict compatible with the reference.

``NLayerDiscriminator.model`` for n_layers = 3 (``basic``, 70x70 receptive field)::

    0 Conv2d s2 in->c (bias)  1 LeakyReLU(0.2)
    2 Conv2d s2 c->2c   3 norm  4 LeakyReLU      5 Conv2d s2 2c->4c  6 norm  7 LeakyReLU
    8 Conv2d s1 4c->8c  9 norm  10 LeakyReLU     11 Conv2d s1 8c->1 (bias)

All convs are 4x4 with padding 1; widths are capped at 8 * ndf. ``PixelDiscriminator.net`` is three 1x1
convs (``net.0``, ``net.2``, ``net.5``) with a norm at ``net.3``; as in the reference, its last conv has a bias
only with instance norm.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.nn import check_norm, conv_bias, make_norm
from ganslim.registry import DISCRIMINATORS
from ganslim.signature import ImageSides

MAX_WIDTH_MULT = 8


class NLayerDiscriminator(nn.Module):
    """PatchGAN: (N, input_nc, H, W) -> (N, 1, h, w) raw scores, one per overlapping patch (no sigmoid).

    For n_layers = 3 and a 256x256 input the output is 30x30. Pass input_nc = 6 for pix2pix (A and B
    concatenated).

    Args:
        input_nc: channels of the input.
        ndf: width of the first conv.
        norm: ``batch`` | ``instance`` | ``none``.
        n_layers: number of stride-2 convs (>= 1); 3 gives the 70x70 PatchGAN.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: str = "batch", n_layers: int = 3) -> None:
        super().__init__()
        check_norm(norm)
        if n_layers < 1:
            raise GanslimError(f"patchgan discriminator needs n_layers >= 1, got {n_layers}")
        self.input_nc, self.ndf, self.norm, self.n_layers = input_nc, ndf, norm, n_layers
        bias = conv_bias(norm)

        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = ndf
        for layer in range(1, n_layers + 1):
            out_channels = ndf * min(2**layer, MAX_WIDTH_MULT)
            stride = 2 if layer < n_layers else 1
            layers += [
                nn.Conv2d(channels, out_channels, kernel_size=4, stride=stride, padding=1, bias=bias),
                make_norm(norm, out_channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    @property
    def image_sides(self) -> ImageSides:
        """n_layers stride-2 convs (floor halving), then two 4x4 stride-1 convs each losing a pixel; the norm
        between them needs 2 pixels, so H / 2**n_layers must be at least 3."""
        return ImageSides(minimum=3 * 2**self.n_layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, 1, H / 2**n_layers - 2, W / 2**n_layers - 2) patch scores."""
        return self.model(image)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (pixelGAN): (N, input_nc, H, W) -> (N, 1, H, W) raw per-pixel scores."""

    image_sides: ClassVar[ImageSides] = ImageSides(minimum=2)  # its norm needs 2 values per channel

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        check_norm(norm)
        self.input_nc, self.ndf, self.norm = input_nc, ndf, norm
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=bias),
            make_norm(norm, ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=bias),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, 1, H, W)."""
        return self.net(image)


@DISCRIMINATORS.register("n_layers")
def n_layers(input_nc: int = 3, ndf: int = 64, norm: str = "batch", n_layers: int = 3) -> NLayerDiscriminator:
    """PatchGAN with ``n_layers`` stride-2 convs."""
    return NLayerDiscriminator(input_nc, ndf, norm, n_layers)


@DISCRIMINATORS.register("basic")
def basic(input_nc: int = 3, ndf: int = 64, norm: str = "batch") -> NLayerDiscriminator:
    """The 70x70 PatchGAN (n_layers 3) that pix2pix and CycleGAN use."""
    return NLayerDiscriminator(input_nc, ndf, norm, n_layers=3)


@DISCRIMINATORS.register("pixel")
def pixel(input_nc: int = 3, ndf: int = 64, norm: str = "batch") -> PixelDiscriminator:
    """1x1 PatchGAN."""
    return PixelDiscriminator(input_nc, ndf, norm)
