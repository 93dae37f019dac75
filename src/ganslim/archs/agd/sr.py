"""AutoGAN-Distiller's x4 super-resolution generators: searched cells inside ESRGAN's fixed frame.

Layout (f = num_feat; the frame's convs are 3x3 with bias, named as :mod:`ganslim.archs.sr.rrdbnet`'s)::

    conv_first in -> f
    body.0 .. body.n-1   cells: ops[c][0] f -> widths[c][0] -> ... -> ops[c][-1] -> f, each cell x + 0.2 * cell(x)
    conv_body f -> f, added to conv_first's output (the trunk)
    upsampler: nearest x2, conv_up1, LeakyReLU;  nearest x2, conv_up2, LeakyReLU;  conv_hr, LeakyReLU;
               conv_last f -> out;  (tanh + 1) / 2

The operators (:mod:`ganslim.archs.agd.operators`) have no norm here, as in the reference. AGD searches 5 cells of 5
operators, the inner widths among {4, 6, 8, 10, 12}/12 of 64 rounded to multiples of 8 (24, 32, 40, 56, 64). The
output goes through (tanh + 1) / 2 as the reference's: inside [0, 1], the range the signature declares (an RRDBNet
teacher's output is only nominally there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ganslim.archs.agd.operators import check_operators, check_widths, make_operator
from ganslim.archs.sr.rrdbnet import _conv, _scaled_residual
from ganslim.errors import GanslimError
from ganslim.registry import GENERATORS
from ganslim.signature import UNIT, ImageSides, Signature, image_to_image

NORM = "none"
SCALE = 4
DEFAULT_CELLS, DEFAULT_OPS_PER_CELL = 5, 5


class SRCell(nn.Module):
    """Operators in a chain from ``num_feat`` through ``widths`` back to ``num_feat``, and the scaled residual:
    (N, f, H, W) -> (N, f, H, W)."""

    def __init__(self, num_feat: int, ops: Sequence[str], widths: Sequence[int]) -> None:
        super().__init__()
        boundaries = [num_feat, *widths, num_feat]
        self.ops = nn.ModuleList(make_operator(name, boundaries[i], boundaries[i + 1], NORM)
                                 for i, name in enumerate(ops))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for op in self.ops:
            out = op(out)
        return _scaled_residual(x, out)


class Upsampler(nn.Module):
    """ESRGAN's x4 tail, then AGD's (tanh + 1) / 2: trunk features (N, f, H, W) -> (N, out, 4H, 4W) in [0, 1]."""

    def __init__(self, num_feat: int, output_nc: int) -> None:
        super().__init__()
        self.conv_up1 = _conv(num_feat, num_feat)
        self.conv_up2 = _conv(num_feat, num_feat)
        self.conv_hr = _conv(num_feat, num_feat)
        self.conv_last = _conv(num_feat, output_nc)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv_up1, self.conv_up2):
            features = self.lrelu(conv(F.interpolate(features, scale_factor=2, mode="nearest")))
        return (torch.tanh(self.conv_last(self.lrelu(self.conv_hr(features)))) + 1) / 2


def check_cells(ops: Sequence[Sequence[str]], widths: Sequence[Sequence[int]]) -> tuple[list[list[str]], list[list[int]]]:
    """``ops`` (one list of operator names per cell) and ``widths`` (per cell, one fewer ints: the inner widths) as
    lists, else a one-line GanslimError."""
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence) or not ops:
        raise GanslimError(f"agd_sr ops must be a non-empty list of cells, each a list of operator names; got {ops!r}")
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) != len(ops):
        raise GanslimError(f"agd_sr widths must hold one list of inner widths per cell ({len(ops)}), got {widths!r}")
    cell_ops = [check_operators(cell, f"agd_sr ops[{c}]") for c, cell in enumerate(ops)]
    cell_widths = [check_widths(cell, len(names) - 1, f"agd_sr widths[{c}]")
                   for c, (names, cell) in enumerate(zip(cell_ops, widths))]
    return cell_ops, cell_widths


class AGDSRGenerator(nn.Module):
    """A derived AGD super-resolution network: (N, input_nc, H, W) in [0, 1] -> (N, output_nc, 4H, 4W) in [0, 1].

    Args:
        input_nc: channels of the low-resolution image.
        output_nc: channels of the high-resolution image.
        num_feat: trunk width (64 in AGD, as ESRGAN).
        ops: per cell, its operator names (:data:`ganslim.archs.agd.operators.OPERATORS`); None for 5 cells of 5
            ``residual``.
        widths: per cell, the width after each of its operators but the last (which returns to ``num_feat``); None
            for ``num_feat`` everywhere.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_feat: int = 64,
                 ops: Sequence[Sequence[str]] | None = None, widths: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        for name, value in (("input_nc", input_nc), ("output_nc", output_nc), ("num_feat", num_feat)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"agd_sr {name}={value!r} is not a positive integer")
        if ops is None:
            ops = [["residual"] * DEFAULT_OPS_PER_CELL for _ in range(DEFAULT_CELLS)]
        if widths is None and isinstance(ops, Sequence):
            widths = [[num_feat] * (len(cell) - 1) for cell in ops]
        self.ops, self.widths = check_cells(ops, widths)
        self.input_nc, self.output_nc, self.num_feat = input_nc, output_nc, num_feat
        self.conv_first = _conv(input_nc, num_feat)
        self.body = nn.Sequential(*(SRCell(num_feat, names, inner) for names, inner in zip(self.ops, self.widths)))
        self.conv_body = _conv(num_feat, num_feat)
        self.upsampler = Upsampler(num_feat, output_nc)

    @property
    def image_sides(self) -> ImageSides:
        return ImageSides()

    @property
    def signature(self) -> Signature:
        return image_to_image(self.input_nc, self.output_nc, self.image_sides, UNIT, scale=SCALE)

    def operators(self) -> list[nn.Module]:
        """Every cell's operators, cell by cell."""
        return [op for cell in self.body for op in cell.ops]

    def arch_kwargs(self) -> dict:
        """Keyword arguments of the registered builder that rebuild this network (for ``save_model``)."""
        return {"input_nc": self.input_nc, "output_nc": self.output_nc, "num_feat": self.num_feat,
                "ops": [list(cell) for cell in self.ops], "widths": [list(cell) for cell in self.widths]}

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """The trunk's output (conv_first + conv_body(body)): (N, num_feat, H, W)."""
        if image.dim() != 4 or image.shape[1] != self.input_nc:
            raise GanslimError(f"agd_sr takes (N, {self.input_nc}, H, W) images, got shape {tuple(image.shape)}")
        features = self.conv_first(image)
        return features + self.conv_body(self.body(features))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, 4H, 4W), values in [0, 1]."""
        return self.upsampler(self.forward_features(image))


@GENERATORS.register("agd_sr")
def agd_sr(input_nc: int = 3, output_nc: int = 3, num_feat: int = 64, ops: list[list[str]] | None = None,
           widths: list[list[int]] | None = None) -> AGDSRGenerator:
    """An AutoGAN-Distiller x4 super-resolution network: per cell, its operators and inner widths (see agd/sr.py)."""
    return AGDSRGenerator(input_nc, output_nc, num_feat, ops, widths)
