"""Mobile ResNet generator of GAN Compression (Li et al., CVPR 2020) with a per-layer channel configuration.

The teacher's stem, downsampling and upsampling are kept; every residual block swaps its dense 3x3 convs for
depthwise-separable ones. Layout of ``MobileResnetGenerator.model`` (an ``nn.Sequential``; n = n_blocks)::

    0 ReflectionPad2d(3)   1 Conv2d 7x7 in->stem     2 norm  3 ReLU
    4 Conv2d 3x3 s2 stem->down1   5 norm  6 ReLU     7 Conv2d 3x3 s2 down1->down2  8 norm  9 ReLU
    10 .. 10+n-1 MobileResnetBlock(down2, hidden of its group)
    10+n ConvTranspose2d down2->up1  11+n norm  12+n ReLU
    13+n ConvTranspose2d up1->up2    14+n norm  15+n ReLU
    16+n ReflectionPad2d(3)  17+n Conv2d 7x7 up2->out (always with bias)  18+n Tanh

Inside a block, ``conv_block`` is ``0 pad, 1 separable(down2->hidden), 2 norm, 3 ReLU, 4 Dropout(0.5) or
Identity, 5 pad, 6 separable(hidden->down2), 7 norm``, and a separable conv's ``conv`` is ``0 depthwise 3x3,
1 InstanceNorm, 2 pointwise 1x1`` — the key layout of mit-han-lab/gan-compression, whose details are kept:
the norm between the depthwise and the pointwise conv is always a non-affine InstanceNorm (whatever ``norm``
is), and every conv except the last has a bias exactly when ``norm`` is instance, as in the teacher.

The channel configuration ``channels`` lists real layer widths (not multiples of ngf), in this order::

    stem, down1, down2 (= the residual width), hidden width of each block group, up1, up2

The blocks are split into ``min(3, n_blocks)`` groups as the reference does (the first groups get
``n_blocks // groups`` blocks each, the last one the rest), so 9 blocks give groups 1-3, 4-6, 7-9 and an
8-integer configuration; 6 blocks give 1-2, 3-4, 5-6; 0 blocks give a 5-integer configuration. With the
mobile student of OMGD / GAN Compression (ngf 16, instance norm, uniform widths) this is 0.137M parameters
and 1.408G MACs (torchprofile convention) at 256x256.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ganslim.archs.translation.resnet import N_DOWNSAMPLING, RESNET_SIDES, ResnetGenerator, _check_indices
from ganslim.errors import GanslimError
from ganslim.nn import OutputConv2d, check_norm, conv_bias, make_norm
from ganslim.registry import GENERATORS
from ganslim.signature import ImageSides, TranslatesImages

MAX_BLOCK_GROUPS = 3
FIRST_BLOCK_INDEX = 1 + 3 + 3 * N_DOWNSAMPLING


def block_groups(n_blocks: int) -> list[range]:
    """Block positions (0-based, among the residual blocks) of each group sharing one hidden width.

    ``min(3, n_blocks)`` groups; the first ones hold ``n_blocks // groups`` blocks, the last one the rest,
    e.g. 9 -> [0..2], [3..5], [6..8]; 4 -> [0], [1], [2..3].
    """
    if n_blocks < 0:
        raise GanslimError(f"mobile resnet generator needs n_blocks >= 0, got {n_blocks}")
    count = min(MAX_BLOCK_GROUPS, n_blocks)
    if count == 0:
        return []
    size = n_blocks // count
    starts = [g * size for g in range(count)] + [n_blocks]
    return [range(starts[g], starts[g + 1]) for g in range(count)]


def channel_names(n_blocks: int) -> list[str]:
    """Names of the positions of a channel configuration, e.g. ``hidden[4-6]`` for blocks 4 to 6 (1-based)."""
    hidden = []
    for group in block_groups(n_blocks):
        first, last = group[0] + 1, group[-1] + 1
        hidden.append(f"hidden[{first}]" if first == last else f"hidden[{first}-{last}]")
    return ["stem", "down1", "down2", *hidden, "up1", "up2"]


def uniform_channels(ngf: int, n_blocks: int) -> list[int]:
    """The configuration of the unpruned student: ngf, 2ngf, 4ngf, 4ngf per block group, 2ngf, ngf."""
    return [ngf, 2 * ngf, 4 * ngf, *[4 * ngf] * len(block_groups(n_blocks)), 2 * ngf, ngf]


def check_channels(channels: Sequence[int], n_blocks: int) -> list[int]:
    """``channels`` as a list of ints if it is a valid configuration for ``n_blocks`` blocks, else a GanslimError."""
    names = channel_names(n_blocks)
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise GanslimError(f"channels must be a list of {len(names)} ints ({', '.join(names)}), got {channels!r}")
    if len(channels) != len(names):
        raise GanslimError(
            f"channels has {len(channels)} entries; {n_blocks} blocks need {len(names)} ({', '.join(names)})"
        )
    for position, (name, width) in enumerate(zip(names, channels)):
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
            raise GanslimError(f"channels[{position}] ({name}) must be a positive int, got {width!r}")
    return [int(width) for width in channels]


@dataclass(frozen=True)
class LayerKit:
    """The layer types a mobile ResNet is built from; the supernet swaps in elastic (sliceable) ones.

    ``norm(name, channels)`` builds a norm layer as ``ganslim.nn.make_norm`` does; ``output_conv`` is the last
    conv, to the image channels.
    """

    conv: type[nn.Conv2d]
    conv_transpose: type[nn.ConvTranspose2d]
    norm: Callable[[str, int], nn.Module]
    output_conv: type[nn.Conv2d]


STATIC_LAYERS = LayerKit(nn.Conv2d, nn.ConvTranspose2d, make_norm, OutputConv2d)


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 conv -> InstanceNorm -> pointwise 1x1 conv: (N, in, H, W) -> (N, out, H-2, W-2)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool, layers: LayerKit = STATIC_LAYERS) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            layers.conv(in_channels, in_channels, kernel_size=3, groups=in_channels, bias=bias),
            layers.norm("instance", in_channels),
            layers.conv(in_channels, out_channels, kernel_size=1, bias=bias),
        )

    @property
    def pointwise(self) -> nn.Conv2d:
        """The 1x1 conv, which sets the output width."""
        return self.conv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class MobileResnetBlock(nn.Module):
    """Residual block ``x + conv_block(x)`` with two separable convs through ``hidden`` channels.

    (N, channels, H, W) -> (N, channels, H, W); reflect padding keeps the size.
    """

    def __init__(
        self, channels: int, hidden: int, norm: str, use_dropout: bool, layers: LayerKit = STATIC_LAYERS
    ) -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            SeparableConv2d(channels, hidden, bias, layers),
            layers.norm(norm, hidden),
            nn.ReLU(inplace=True),
            # Identity keeps the reference's indices (the second separable conv is always conv_block.6).
            nn.Dropout(0.5) if use_dropout else nn.Identity(),
            nn.ReflectionPad2d(1),
            SeparableConv2d(hidden, channels, bias, layers),
            layers.norm(norm, channels),
        )

    @property
    def separable_convs(self) -> tuple[SeparableConv2d, SeparableConv2d]:
        """(into the hidden width, back to the residual width)."""
        return self.conv_block[1], self.conv_block[6]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class MobileResnetGenerator(TranslatesImages, nn.Module):
    """GAN Compression's student: (N, input_nc, H, W) in [-1, 1] -> (N, output_nc, H, W) in [-1, 1].

    H and W should be multiples of 4 (two stride-2 downsamplings).

    Args:
        input_nc: channels of the input image.
        output_nc: channels of the output image.
        ngf: base width; with ``channels=None`` the widths are those of the teacher at this ngf
            (``uniform_channels``).
        norm: ``batch`` | ``instance`` | ``none`` for the stem, down, block and up layers.
        use_dropout: Dropout(0.5) between the two separable convs of every block.
        n_blocks: number of residual blocks.
        channels: the width of each layer (see the module docstring): 8 ints for 9 blocks, ``5 + min(3,
            n_blocks)`` in general; None for ``uniform_channels(ngf, n_blocks)``.
    """

    layer_kit: ClassVar[LayerKit] = STATIC_LAYERS
    image_sides: ClassVar[ImageSides] = RESNET_SIDES

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_norm(norm)
        groups = block_groups(n_blocks)
        channels = uniform_channels(ngf, n_blocks) if channels is None else check_channels(channels, n_blocks)
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.norm, self.use_dropout, self.n_blocks = norm, use_dropout, n_blocks
        self.channels = channels
        layers, bias = self.layer_kit, conv_bias(norm)
        stem, down1, residual, *hidden, up1, up2 = channels

        model: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            layers.conv(input_nc, stem, kernel_size=7, bias=bias),
            layers.norm(norm, stem),
            nn.ReLU(inplace=True),
        ]
        for in_width, out_width in ((stem, down1), (down1, residual)):
            model += [
                layers.conv(in_width, out_width, kernel_size=3, stride=2, padding=1, bias=bias),
                layers.norm(norm, out_width),
                nn.ReLU(inplace=True),
            ]
        for group, width in zip(groups, hidden):
            model += [MobileResnetBlock(residual, width, norm, use_dropout, layers) for _ in group]
        for in_width, out_width in ((residual, up1), (up1, up2)):
            model += [
                layers.conv_transpose(
                    in_width, out_width, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                layers.norm(norm, out_width),
                nn.ReLU(inplace=True),
            ]
        model += [nn.ReflectionPad2d(3), layers.output_conv(up2, output_nc, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    @property
    def active_channels(self) -> list[int]:
        """The widths the forward runs at: ``channels`` here; the supernet's configured sub-network there."""
        return list(self.channels)

    @property
    def block_indices(self) -> list[int]:
        """Positions of the residual blocks in ``self.model`` (10 .. 10 + n_blocks - 1), as in the teacher."""
        return list(range(FIRST_BLOCK_INDEX, FIRST_BLOCK_INDEX + self.n_blocks))

    def distill_layers(self) -> list[int]:
        """Positions in ``self.model`` whose outputs GAN Compression distils.

        The output of the second downsampling (index 9) and of the last block of every block group:
        ``[9, 12, 15, 18]`` for 9 blocks (after blocks 3, 6, 9), ``[9, 11, 13, 15]`` for 6. They coincide
        with the same positions of a ``ResnetGenerator`` teacher with as many blocks.
        """
        return [FIRST_BLOCK_INDEX - 1] + [FIRST_BLOCK_INDEX + group[-1] for group in block_groups(self.n_blocks)]

    def relu_layers(self) -> list[int]:
        """Positions in ``self.model`` of the ReLUs after the second downsampling and after both upsamplings:
        ``[9, 21, 24]`` for 9 blocks (their outputs have down2, up1 and up2 channels)."""
        first_up = FIRST_BLOCK_INDEX + self.n_blocks
        return [FIRST_BLOCK_INDEX - 1, first_up + 2, first_up + 5]

    def arch_kwargs(self) -> dict:
        """Keyword arguments of the registered builder that rebuild this network (for ``save_model``)."""
        return {
            "input_nc": self.input_nc,
            "output_nc": self.output_nc,
            "ngf": self.ngf,
            "norm": self.norm,
            "use_dropout": self.use_dropout,
            "n_blocks": self.n_blocks,
            "channels": list(self.channels),
        }

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, H, W), values in [-1, 1]."""
        return self.model(image)

    # The same walk over ``self.model`` as the teacher's, so teacher and student indices mean the same layers.
    forward_features = ResnetGenerator.forward_features

    def feature_channels(self, layer_index: int) -> int:
        """Channels of the feature that ``forward_features`` returns for ``layer_index`` (at the active widths)."""
        (layer_index,) = _check_indices([layer_index], len(self.model))
        stem, down1, residual, *_, up1, up2 = self.active_channels
        first_up = FIRST_BLOCK_INDEX + self.n_blocks
        bounds = [  # (last index of a stretch, its width)
            (0, self.input_nc), (3, stem), (6, down1), (first_up - 1, residual),
            (first_up + 2, up1), (first_up + 6, up2),
        ]
        return next((width for last, width in bounds if layer_index <= last), self.output_nc)


@GENERATORS.register("mobile_resnet")
def mobile_resnet(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    use_dropout: bool = False,
    n_blocks: int = 9,
    channels: list[int] | None = None,
) -> MobileResnetGenerator:
    """GAN Compression's mobile ResNet student; ``channels`` sets every layer's width (see mobile_resnet.py).

    ngf 16 with instance norm is the published student: 0.137M parameters, 1.408G MACs (torchprofile) at 256.
    """
    return MobileResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks, channels)
