"""OMGD's deep teachers (Ren et al., ICCV 2021): the architectures ``mobile_resnet_deep`` and ``unet_deep``.

OMGD's *deep* teacher keeps its student's width and inserts residual blocks (which teacher a student gets is
:mod:`ganslim.methods.omgd.teachers`). The extra blocks follow the layout of OMGD's
``MobileResnetDeepestGenerator`` and ``UnetDeepestGenerator`` (bytedance/OMGD), written anew:

* :class:`ExpansionResnetBlock` ``x + f(x)``, f = 1x1 conv C->4C, norm, ReLU, 3x3 conv 4C->4C, norm, ReLU,
  1x1 conv 4C->C, norm, ReLU, [Dropout], 3x3 conv C->C, norm (reflect padding for the 3x3 convs). OMGD pads
  before the first 1x1 conv and runs the 3x3 unpadded; padding right before the 3x3 is the same map up to the
  norm statistics of the two padded border rows, and cheaper.
* ``mobile_resnet_deep``: after each of the two downsamplings and each of the two upsamplings, an expansion
  block and a 3x3 conv + norm + ReLU at that width; in the middle, 2 expansion blocks between the first
  ``n_blocks // 2`` and the remaining mobile (separable) residual blocks.
* ``unet_deep``: every U-Net level except the innermost gets 2 expansion blocks after its down-conv (and
  norm) and 2 after its up-conv (and norm); the outermost level, which has no norm, gets them right after
  its down-conv and before its final ReLU + up-conv. Block depths, ``forward_features`` and
  ``feature_channels`` are those of :class:`~ganslim.archs.translation.unet.UnetGenerator`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ganslim.archs.translation.mobile_resnet import MobileResnetBlock
from ganslim.archs.translation.resnet import N_DOWNSAMPLING, RESNET_SIDES
from ganslim.archs.translation.unet import UnetGenerator
from ganslim.errors import GanslimError
from ganslim.nn import OutputConv2d, check_norm, conv_bias, make_norm
from ganslim.registry import GENERATORS
from ganslim.signature import ImageSides, TranslatesImages

EXPANSION = 4
DEEP_MIDDLE_BLOCKS = 2  # expansion blocks in the middle of mobile_resnet_deep
DEEP_UNET_BLOCKS = 2  # expansion blocks after each down-conv and each up-conv of unet_deep


class ExpansionResnetBlock(nn.Module):
    """Inverted-bottleneck residual block of OMGD's deep teachers; (N, C, H, W) -> (N, C, H, W).

    ``conv_block``: 0 conv 1x1 C->eC, 1 norm, 2 ReLU, 3 pad, 4 conv 3x3 eC->eC, 5 norm, 6 ReLU, 7 conv 1x1
    eC->C, 8 norm, 9 ReLU, 10 Dropout(0.5) or Identity, 11 pad, 12 conv 3x3 C->C, 13 norm (e = expansion).
    """

    def __init__(self, channels: int, norm: str, use_dropout: bool, expansion: int = EXPANSION) -> None:
        super().__init__()
        bias, hidden = conv_bias(norm), channels * expansion
        self.conv_block = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=bias),
            make_norm(norm, hidden),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(hidden, hidden, kernel_size=3, bias=bias),
            make_norm(norm, hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=bias),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5) if use_dropout else nn.Identity(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, bias=bias),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _deepen(channels: int, norm: str, use_dropout: bool) -> list[nn.Module]:
    """What mobile_resnet_deep adds after a down/upsampling: an expansion block, then 3x3 conv + norm + ReLU."""
    return [
        ExpansionResnetBlock(channels, norm, use_dropout),
        nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=conv_bias(norm)),
        make_norm(norm, channels),
        nn.ReLU(inplace=True),
    ]


class DeepMobileResnetGenerator(TranslatesImages, nn.Module):
    """OMGD's deep teacher for a mobile ResNet student: (N, input_nc, H, W) -> (N, output_nc, H, W) in [-1, 1].

    ``model`` (an ``nn.Sequential``): 7x7 stem; per downsampling ``conv 3x3 s2, norm, ReLU`` followed by
    :func:`_deepen`'s 4 layers; ``n_blocks // 2`` :class:`MobileResnetBlock` (hidden width = residual width
    4 * ngf), 2 :class:`ExpansionResnetBlock`, the other mobile blocks; per upsampling ``ConvTranspose2d,
    norm, ReLU`` + the 4 deepening layers; 7x7 conv to ``output_nc`` and tanh. H and W: multiples of 4.

    Args:
        input_nc, output_nc: image channels in and out.
        ngf: the stem width (the student's; widths ngf, 2 ngf, 4 ngf as the student's).
        norm: ``instance`` | ``batch`` | ``none``.
        use_dropout: Dropout(0.5) inside every residual block.
        n_blocks: mobile residual blocks (the student's count).
    """

    image_sides: ClassVar[ImageSides] = RESNET_SIDES

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 16, norm: str = "instance",
                 use_dropout: bool = False, n_blocks: int = 9) -> None:
        super().__init__()
        check_norm(norm)
        if n_blocks < 0:
            raise GanslimError(f"mobile_resnet_deep needs n_blocks >= 0, got {n_blocks}")
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.norm, self.use_dropout, self.n_blocks = norm, use_dropout, n_blocks
        bias = conv_bias(norm)
        model: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, bias=bias),
                                  make_norm(norm, ngf), nn.ReLU(inplace=True)]
        for i in range(N_DOWNSAMPLING):
            width = ngf * 2 ** (i + 1)
            model += [nn.Conv2d(width // 2, width, kernel_size=3, stride=2, padding=1, bias=bias),
                      make_norm(norm, width), nn.ReLU(inplace=True), *_deepen(width, norm, use_dropout)]
        residual = ngf * 2**N_DOWNSAMPLING
        first = n_blocks // 2
        model += [MobileResnetBlock(residual, residual, norm, use_dropout) for _ in range(first)]
        model += [ExpansionResnetBlock(residual, norm, use_dropout) for _ in range(DEEP_MIDDLE_BLOCKS)]
        model += [MobileResnetBlock(residual, residual, norm, use_dropout) for _ in range(n_blocks - first)]
        for i in range(N_DOWNSAMPLING):
            width = residual // 2 ** (i + 1)
            model += [nn.ConvTranspose2d(width * 2, width, kernel_size=3, stride=2, padding=1, output_padding=1,
                                         bias=bias),
                      make_norm(norm, width), nn.ReLU(inplace=True), *_deepen(width, norm, use_dropout)]
        model += [nn.ReflectionPad2d(3), OutputConv2d(ngf, output_nc, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, H, W), values in [-1, 1]."""
        return self.model(image)

    def arch_kwargs(self) -> dict:
        """Keyword arguments of the registered builder that rebuild this network."""
        return {"input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf, "norm": self.norm,
                "use_dropout": self.use_dropout, "n_blocks": self.n_blocks}


class DeepUnetGenerator(UnetGenerator):
    """OMGD's deep teacher for a U-Net student: a :class:`UnetGenerator` with expansion blocks at every level.

    The blocks are folded into existing positions of each level's ``model`` (the down norm becomes ``norm +
    2 blocks``, the up norm ``norm + 2 blocks``; outermost: the down-conv becomes ``conv + 2 blocks`` and the
    ReLU before the up-conv ``2 blocks + ReLU``), so the nesting, block depths, ``forward_features`` and
    ``feature_channels`` stay those of the plain U-Net. Arguments as :class:`UnetGenerator`.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 16, norm: str = "batch",
                 use_dropout: bool = False, num_downs: int = 8) -> None:
        super().__init__(input_nc, output_nc, ngf, norm, use_dropout, num_downs)

        def blocks(channels: int) -> list[nn.Module]:
            return [ExpansionResnetBlock(channels, norm, use_dropout) for _ in range(DEEP_UNET_BLOCKS)]

        outermost, *middle, _innermost = self.blocks()
        layers = outermost.model
        inner = layers[0].out_channels
        layers[0] = nn.Sequential(layers[0], *blocks(inner))
        layers[2] = nn.Sequential(*blocks(2 * inner), layers[2])
        for level in middle:
            layers = level.model
            layers[2] = nn.Sequential(layers[2], *blocks(layers[1].out_channels))
            layers[6] = nn.Sequential(layers[6], *blocks(level.outer_nc))


@GENERATORS.register("mobile_resnet_deep")
def mobile_resnet_deep(input_nc: int = 3, output_nc: int = 3, ngf: int = 16, norm: str = "instance",
                       use_dropout: bool = False, n_blocks: int = 9) -> DeepMobileResnetGenerator:
    """OMGD's deep teacher of a mobile ResNet student (see ganslim.archs.translation.deep)."""
    return DeepMobileResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks)


@GENERATORS.register("unet_deep")
def unet_deep(input_nc: int = 3, output_nc: int = 3, ngf: int = 16, norm: str = "batch", use_dropout: bool = False,
              num_downs: int = 8) -> DeepUnetGenerator:
    """OMGD's deep teacher of a U-Net student (see ganslim.archs.translation.deep); num_downs 8 for 256x256 images."""
    return DeepUnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, num_downs)
