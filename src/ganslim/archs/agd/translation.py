"""AutoGAN-Distiller's image-translation generators: a fixed stem and head around searched cells.

Layout (c = ngf; every conv bias-free and followed by a non-affine instance norm and a ReLU, except the last)::

    stem   7x7 in -> c;  3x3 stride 2 c -> 2c;  3x3 stride 2 2c -> 4c           (zero padding, as the reference)
    cells  cells.0 .. cells.n-1: ops[i] (:mod:`ganslim.archs.agd.operators`) from widths[i-1] (4c for the
           first) to widths[i], at H/4 x W/4
    head   3x3 transposed stride 2 widths[-1] -> 2c;  3x3 transposed stride 2 2c -> c;  7x7 c -> out, tanh

With ngf 64 the cells' widths are searched among {4, 6, 8, 10, 12}/12 of 256 rounded to multiples of 8
(88, 128, 168, 216, 256; :func:`ganslim.archs.agd.operators.width_choices`). The stem and head are fixed: at
256x256 they alone cost 6.06 G MACs (13.31 G in the published convention, which counts the transposed convs at their
output resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from ganslim.archs.agd.operators import check_operators, check_widths, make_operator
from ganslim.archs.translation.mobile_resnet import STATIC_LAYERS, LayerKit
from ganslim.archs.translation.resnet import RESNET_SIDES
from ganslim.errors import GanslimError
from ganslim.nn import make_norm
from ganslim.registry import GENERATORS
from ganslim.signature import ImageSides, TranslatesImages

NORM = "instance"
DEFAULT_CELLS = 9


def stem(input_nc: int, ngf: int) -> nn.Sequential:
    """7x7 conv, then two stride-2 3x3 convs, each with instance norm and ReLU: (N, in, H, W) -> (N, 4ngf, H/4, W/4)."""
    layers: list[nn.Module] = []
    for in_width, out_width, kernel, stride in ((input_nc, ngf, 7, 1), (ngf, 2 * ngf, 3, 2),
                                                (2 * ngf, 4 * ngf, 3, 2)):
        layers += [nn.Conv2d(in_width, out_width, kernel, stride, padding=kernel // 2, bias=False),
                   make_norm(NORM, out_width), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def head(in_channels: int, output_nc: int, ngf: int, layers: LayerKit = STATIC_LAYERS) -> nn.Sequential:
    """Two stride-2 transposed convs (instance norm, ReLU), a 7x7 conv and tanh: (N, in, h, w) -> (N, out, 4h, 4w).
    ``layers`` elastic takes any leading ``in_channels`` (the supernet's)."""
    return nn.Sequential(
        layers.conv_transpose(in_channels, 2 * ngf, 3, stride=2, padding=1, output_padding=1, bias=False),
        make_norm(NORM, 2 * ngf), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1, bias=False),
        make_norm(NORM, ngf), nn.ReLU(inplace=True),
        STATIC_LAYERS.output_conv(ngf, output_nc, 7, padding=3, bias=False), nn.Tanh(),
    )


class AGDTranslationGenerator(TranslatesImages, nn.Module):
    """A derived AGD translation network: (N, input_nc, H, W) in [-1, 1] -> (N, output_nc, H, W) in [-1, 1].

    H and W are multiples of 4 of at least 8 pixels (two stride-2 convs; the H/4 middle needs 2 pixels for its norms).

    Args:
        input_nc: channels of the input image.
        output_nc: channels of the output image.
        ngf: stem width; the cells work on 4 * ngf channels at most.
        ops: one operator name per cell (:data:`ganslim.archs.agd.operators.OPERATORS`); None for 9 ``residual``.
        widths: the output width of each cell; None for 4 * ngf everywhere.
    """

    image_sides: ClassVar[ImageSides] = RESNET_SIDES

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, ops: Sequence[str] | None = None,
                 widths: Sequence[int] | None = None) -> None:
        super().__init__()
        for name, value in (("input_nc", input_nc), ("output_nc", output_nc), ("ngf", ngf)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"agd_translation {name}={value!r} is not a positive integer")
        ops = check_operators(["residual"] * DEFAULT_CELLS if ops is None else ops, "agd_translation ops")
        widths = check_widths([4 * ngf] * len(ops) if widths is None else widths, len(ops), "agd_translation widths")
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.ops, self.widths = ops, widths
        self.stem = stem(input_nc, ngf)
        inputs = [4 * ngf, *widths[:-1]]
        self.cells = nn.ModuleList(make_operator(name, in_width, out_width, NORM)
                                   for name, in_width, out_width in zip(ops, inputs, widths))
        self.head = head(widths[-1], output_nc, ngf)

    def operators(self) -> list[nn.Module]:
        """The cells' operators, in order."""
        return list(self.cells)

    def arch_kwargs(self) -> dict:
        """Keyword arguments of the registered builder that rebuild this network (for ``save_model``)."""
        return {"input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf, "ops": list(self.ops),
                "widths": list(self.widths)}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, H, W), values in [-1, 1]."""
        features = self.stem(image)
        for cell in self.cells:
            features = cell(features)
        return self.head(features)


@GENERATORS.register("agd_translation")
def agd_translation(input_nc: int = 3, output_nc: int = 3, ngf: int = 64, ops: list[str] | None = None,
                    widths: list[int] | None = None) -> AGDTranslationGenerator:
    """An AutoGAN-Distiller translation network: one operator and output width per cell (see agd/translation.py)."""
    return AGDTranslationGenerator(input_nc, output_nc, ngf, ops, widths)
