"""AutoGAN-Distiller's searchable operators and width choices (VITA-Group/AGD's ``operations.py``).

Every operator maps (N, in, H, W) -> (N, out, H, W) with bias-free convolutions, each followed by ``norm``
(non-affine instance norm in the translation space, none in the super-resolution space), and ends in a ReLU:

* ``conv1x1``: 1x1 conv, norm, ReLU. The reference calls it ``skip``, but it is this convolution, not an identity.
* ``conv3x3``: 3x3 conv, norm, ReLU.
* ``residual``: two 3x3 convs (norm, ReLU, norm) plus the input, ReLU; a 1x1 conv + norm shortcut when the widths
  differ.
* ``dwsblock``: 1x1 expansion to 4x the *input* width, depthwise 3x3, 1x1 projection (each with norm, ReLU after
  the first two) plus the input (a 1x1 conv + norm shortcut when the widths differ), ReLU.

Built from a :class:`~ganslim.archs.translation.mobile_resnet.LayerKit`, an operator is plain or elastic (the
supernet's, :mod:`ganslim.archs.agd.supernet`): an elastic one holds the weights of its largest widths, takes its
input width from the tensor and its output width from :meth:`Operator.set_out_channels`, always has its shortcut
(used only while the two widths differ) and expands to 4x the width it gets, so at any widths it computes what the
plain operator of those widths computes with the leading slices of its weights.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import nn

from ganslim.archs.translation.mobile_resnet import STATIC_LAYERS, LayerKit
from ganslim.errors import GanslimError
from ganslim.nn.elastic import ElasticConv2d

OPERATORS = ("conv1x1", "conv3x3", "residual", "dwsblock")
WIDTH_RATIOS = (4 / 12, 6 / 12, 8 / 12, 10 / 12, 1.0)
EXPANSION = 4  # the depthwise block's expansion of its input width
WIDTH_DIVISOR = 8


def make_divisible(value: float, divisor: int = WIDTH_DIVISOR, min_value: int = 3) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``), but never more than 10%
    below it (TensorFlow slim's rule, which AGD uses): 256 * 4/12 -> 88."""
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def width_choices(base: int) -> list[int]:
    """The searched widths of a layer whose largest width is ``base``: 256 -> [88, 128, 168, 216, 256]."""
    return [make_divisible(base * ratio) for ratio in WIDTH_RATIOS]


def check_operators(ops: Sequence[str], what: str) -> list[str]:
    """``ops`` as a list if every name is one of :data:`OPERATORS`, else a one-line GanslimError naming ``what``."""
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence) or not ops:
        raise GanslimError(f"{what} must be a non-empty list of operator names ({', '.join(OPERATORS)}), got {ops!r}")
    for position, name in enumerate(ops):
        if name not in OPERATORS:
            raise GanslimError(f"{what}[{position}] is {name!r}, not an operator; choose one of: {', '.join(OPERATORS)}")
    return list(ops)


def check_widths(widths: Sequence[int], count: int, what: str) -> list[int]:
    """``widths`` as a list of ``count`` positive ints, else a one-line GanslimError naming ``what``."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) != count:
        raise GanslimError(f"{what} must be a list of {count} positive ints, got {widths!r}")
    for position, width in enumerate(widths):
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
            raise GanslimError(f"{what}[{position}] must be a positive int, got {width!r}")
    return [int(width) for width in widths]


def _conv(layers: LayerKit, in_channels: int, out_channels: int, kernel_size: int, groups: int = 1) -> nn.Conv2d:
    return layers.conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)


class Operator(nn.Module):
    """An operator of the space: (N, in, H, W) -> (N, out, H, W). Subclasses list in :attr:`output_convs` the
    convolutions whose output width is the operator's."""

    def output_convs(self) -> list[nn.Conv2d]:
        raise NotImplementedError

    def set_out_channels(self, channels: int | None) -> None:
        """Run an elastic operator with its first ``channels`` output channels (None: all of them)."""
        for conv in self.output_convs():
            conv.set_out_channels(channels)


class ConvOperator(Operator):
    """``conv1x1`` / ``conv3x3``: k x k conv, norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: str,
                 layers: LayerKit = STATIC_LAYERS) -> None:
        super().__init__()
        self.conv = _conv(layers, in_channels, out_channels, kernel_size)
        self.norm = layers.norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def output_convs(self) -> list[nn.Conv2d]:
        return [self.conv]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(self.conv(x)))


class _ShortcutOperator(Operator):
    """An operator that adds its input, through a 1x1 conv + norm ``shortcut`` while the widths differ."""

    shortcut: nn.Sequential | None

    def _make_shortcut(self, in_channels: int, out_channels: int, norm: str, layers: LayerKit,
                       always: bool) -> nn.Sequential | None:
        if not always and in_channels == out_channels:
            return None
        return nn.Sequential(_conv(layers, in_channels, out_channels, 1), layers.norm(norm, out_channels))

    def output_convs(self) -> list[nn.Conv2d]:
        return self._body_output_convs() + ([] if self.shortcut is None else [self.shortcut[0]])

    def _body_output_convs(self) -> list[nn.Conv2d]:
        raise NotImplementedError

    def _add_input(self, x: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
        identity = x if x.shape[1] == body.shape[1] else self.shortcut(x)
        return torch.relu(body + identity)


class ResidualOperator(_ShortcutOperator):
    """``residual``: two 3x3 convs plus the input (see the module docstring). ``elastic_shortcut`` builds the
    shortcut even at equal widths (the supernet's)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, layers: LayerKit = STATIC_LAYERS,
                 elastic_shortcut: bool = False) -> None:
        super().__init__()
        self.conv1 = _conv(layers, in_channels, out_channels, 3)
        self.norm1 = layers.norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(layers, out_channels, out_channels, 3)
        self.norm2 = layers.norm(norm, out_channels)
        self.shortcut = self._make_shortcut(in_channels, out_channels, norm, layers, elastic_shortcut)

    def _body_output_convs(self) -> list[nn.Conv2d]:
        return [self.conv1, self.conv2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = self.norm2(self.conv2(self.relu(self.norm1(self.conv1(x)))))
        return self._add_input(x, body)


class DepthwiseOperator(_ShortcutOperator):
    """``dwsblock``: 1x1 expansion x4, depthwise 3x3, 1x1 projection, plus the input (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, layers: LayerKit = STATIC_LAYERS,
                 elastic_shortcut: bool = False) -> None:
        super().__init__()
        hidden = EXPANSION * in_channels
        self.expand = _conv(layers, in_channels, hidden, 1)
        self.norm1 = layers.norm(norm, hidden)
        self.depthwise = _conv(layers, hidden, hidden, 3, groups=hidden)
        self.norm2 = layers.norm(norm, hidden)
        self.project = _conv(layers, hidden, out_channels, 1)
        self.norm3 = layers.norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = self._make_shortcut(in_channels, out_channels, norm, layers, elastic_shortcut)

    def _body_output_convs(self) -> list[nn.Conv2d]:
        return [self.project]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.expand, ElasticConv2d):  # the expansion follows the width it gets
            self.expand.set_out_channels(EXPANSION * x.shape[1])
        hidden = self.relu(self.norm1(self.expand(x)))
        hidden = self.relu(self.norm2(self.depthwise(hidden)))
        return self._add_input(x, self.norm3(self.project(hidden)))


def make_operator(name: str, in_channels: int, out_channels: int, norm: str, layers: LayerKit = STATIC_LAYERS,
                  elastic: bool = False) -> Operator:
    """The operator ``name`` (one of :data:`OPERATORS`) from ``in_channels`` to ``out_channels``; ``elastic``
    builds the supernet's version (``layers`` elastic, shortcuts always there)."""
    if name == "conv1x1":
        return ConvOperator(in_channels, out_channels, 1, norm, layers)
    if name == "conv3x3":
        return ConvOperator(in_channels, out_channels, 3, norm, layers)
    if name == "residual":
        return ResidualOperator(in_channels, out_channels, norm, layers, elastic)
    if name == "dwsblock":
        return DepthwiseOperator(in_channels, out_channels, norm, layers, elastic)
    raise GanslimError(f"unknown operator {name!r}; choose one of: {', '.join(OPERATORS)}")
