"""AutoGAN-Distiller's image-translation generators: a stem and head of searched width around searched cells.

Layout (c = ngf, (s1, s2) = :func:`frame_widths` (c, 2c) scaled by ``stem_ratio``; every conv bias-free and
followed by a non-affine instance norm and a ReLU, except the last)::

    stem   7x7 in -> s1;  3x3 stride 2 s1 -> s2;  3x3 stride 2 s2 -> 4c         (zero padding, as the reference)
    cells  cells.0 .. cells.n-1: ops[i] (:mod:`ganslim.archs.agd.operators`) from widths[i-1] (4c for the
           first) to widths[i], at H/4 x W/4
    head   3x3 transposed stride 2 widths[-1] -> s2;  3x3 transposed stride 2 s2 -> s1;  7x7 s1 -> out, tanh

With ngf 64 the cells' widths are searched among {4, 6, 8, 10, 12}/12 of 256 rounded to multiples of 8
(88, 128, 168, 216, 256; :func:`ganslim.archs.agd.operators.width_choices`), and the stem's and head's width ratio
among the same ratios (s1, s2 from 24, 40 to 64, 128; the reference's ``ratio_sh`` searches one ratio per stem and
head layer, the stem's 4c output included, where one ratio scales these four here). At 256x256 the stem and head
cost 6.06 G MACs at ratio 1 (13.31 G in the published convention, which counts the transposed convs at their
output resolution).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from ganslim.archs.agd.operators import check_operators, check_widths, make_divisible, make_operator
from ganslim.archs.translation.mobile_resnet import STATIC_LAYERS, LayerKit
from ganslim.archs.translation.resnet import RESNET_SIDES
from ganslim.errors import GanslimError
from ganslim.registry import GENERATORS
from ganslim.signature import ImageSides, TranslatesImages

NORM = "instance"
DEFAULT_CELLS = 9


def frame_widths(ngf: int, stem_ratio: float = 1.0) -> tuple[int, int]:
    """The stem's first two widths (the head's last two, reversed): (ngf, 2 ngf) times ``stem_ratio``, rounded to
    multiples of 8 (:func:`~ganslim.archs.agd.operators.make_divisible`); ratio 1 keeps (ngf, 2 ngf) exactly."""
    if stem_ratio == 1:
        return ngf, 2 * ngf
    return make_divisible(ngf * stem_ratio), make_divisible(2 * ngf * stem_ratio)


def stem(input_nc: int, ngf: int, widths: tuple[int, int], layers: LayerKit = STATIC_LAYERS) -> nn.Sequential:
    """7x7 conv, then two stride-2 3x3 convs, each with instance norm and ReLU: (N, in, H, W) -> (N, 4ngf, H/4, W/4),
    through ``widths`` (:func:`frame_widths`); ``layers`` elastic runs any leading widths (the supernet's)."""
    first, second = widths
    modules: list[nn.Module] = []
    for in_width, out_width, kernel, stride in ((input_nc, first, 7, 1), (first, second, 3, 2),
                                                (second, 4 * ngf, 3, 2)):
        modules += [layers.conv(in_width, out_width, kernel, stride, padding=kernel // 2, bias=False),
                    layers.norm(NORM, out_width), nn.ReLU(inplace=True)]
    return nn.Sequential(*modules)


def head(in_channels: int, output_nc: int, widths: tuple[int, int], layers: LayerKit = STATIC_LAYERS) -> nn.Sequential:
    """Two stride-2 transposed convs (instance norm, ReLU) to ``widths`` reversed (:func:`frame_widths`), a 7x7 conv
    and tanh: (N, in, h, w) -> (N, out, 4h, 4w). ``layers`` elastic runs any leading widths (the supernet's)."""
    first, second = widths
    return nn.Sequential(
        layers.conv_transpose(in_channels, second, 3, stride=2, padding=1, output_padding=1, bias=False),
        layers.norm(NORM, second), nn.ReLU(inplace=True),
        layers.conv_transpose(second, first, 3, stride=2, padding=1, output_padding=1, bias=False),
        layers.norm(NORM, first), nn.ReLU(inplace=True),
        layers.output_conv(first, output_nc, 7, padding=3, bias=False), nn.Tanh(),
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
        stem_ratio: the stem's and head's width ratio in (0, 1] (:func:`frame_widths`); 1 for 64/128 at ngf 64.
    """

    image_sides: ClassVar[ImageSides] = RESNET_SIDES

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, ops: Sequence[str] | None = None,
                 widths: Sequence[int] | None = None, stem_ratio: float = 1.0) -> None:
        super().__init__()
        for name, value in (("input_nc", input_nc), ("output_nc", output_nc), ("ngf", ngf)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"agd_translation {name}={value!r} is not a positive integer")
        ops = check_operators(["residual"] * DEFAULT_CELLS if ops is None else ops, "agd_translation ops")
        widths = check_widths([4 * ngf] * len(ops) if widths is None else widths, len(ops), "agd_translation widths")
        if isinstance(stem_ratio, bool) or not isinstance(stem_ratio, numbers.Real) or not 0 < stem_ratio <= 1:
            raise GanslimError(f"agd_translation stem_ratio={stem_ratio!r} is not a ratio in (0, 1]")
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.ops, self.widths, self.stem_ratio = ops, widths, float(stem_ratio)
        self.stem = stem(input_nc, ngf, frame_widths(ngf, stem_ratio))
        inputs = [4 * ngf, *widths[:-1]]
        self.cells = nn.ModuleList(make_operator(name, in_width, out_width, NORM)
                                   for name, in_width, out_width in zip(ops, inputs, widths))
        self.head = head(widths[-1], output_nc, frame_widths(ngf, stem_ratio))

    def operators(self) -> list[nn.Module]:
        """The cells' operators, in order."""
        return list(self.cells)

    def arch_kwargs(self) -> dict:
        """Keyword arguments of the registered builder that rebuild this network (for ``save_model``)."""
        return {"input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf, "ops": list(self.ops),
                "widths": list(self.widths), "stem_ratio": self.stem_ratio}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, H, W), values in [-1, 1]."""
        features = self.stem(image)
        for cell in self.cells:
            features = cell(features)
        return self.head(features)


@GENERATORS.register("agd_translation")
def agd_translation(input_nc: int = 3, output_nc: int = 3, ngf: int = 64, ops: list[str] | None = None,
                    widths: list[int] | None = None, stem_ratio: float = 1.0) -> AGDTranslationGenerator:
    """An AutoGAN-Distiller translation network: one operator and output width per cell and the stem's and head's
    width ratio (see agd/translation.py)."""
    return AGDTranslationGenerator(input_nc, output_nc, ngf, ops, widths, stem_ratio)
