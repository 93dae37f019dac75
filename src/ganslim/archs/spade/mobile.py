"""GAN Compression's mobile SPADE generator (``mobile_spade``): GauGAN's layout with depthwise-separable gamma and
beta convs in every SPADE modulation, and a per-block channel configuration.

The configuration has GAN Compression's 8 entries ``[fc, head_0, G_middle_0, G_middle_1, up_0, up_1, up_2, up_3]``
(each an ngf-like width; ``[ngf] * 8`` is the unpruned mobile SPADE). With ``c`` the configuration and ``r = 16 c[0]``
the residual width of the 16-ngf stage (fc's output)::

    block        input     conv_0 / middle    output    SPADE hidden
    head_0       r         16 c[1]            r         2 c[1]
    G_middle_0   r         16 c[2]            r         2 c[2]
    G_middle_1   r         16 c[3]            r         2 c[3]
    up_0         r          8 c[4]            8 c[4]    2 c[4]     (learned 1x1 shortcut, as every up_ block)
    up_1         8 c[4]     4 c[5]            4 c[5]    2 c[5]
    up_2         4 c[5]     2 c[6]            2 c[6]    2 c[6]
    up_3         2 c[6]       c[7]              c[7]    2 c[7]     then conv_img c[7] -> output_nc

A SPADE modulation is the parameter-free norm of x, then a dense k x k conv of the resized label map to the hidden
width + ReLU (``mlp_shared``), then ``mlp_gamma`` / ``mlp_beta``, each a depthwise k x k conv -> parameter-free
InstanceNorm -> pointwise 1x1 conv to x's width (GAN Compression's ``SeparableConv2d``). NVlabs' 'most' upsampling
(an ``up_4``) and the VAE are not part of the mobile family.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganslim.archs.spade.generator import LEAKY_SLOPE, SPADELayout, _check_options
from ganslim.errors import GanslimError
from ganslim.nn import InstanceNorm2d
from ganslim.registry import GENERATORS

CHANNEL_NAMES = ("fc", "head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")
BLOCK_MULTIPLIERS = (16, 16, 16, 16, 8, 4, 2, 1)  # a block's width = its entry x this (GAN Compression's rule)


@dataclass(frozen=True)
class BlockWidths:
    """Real widths of one block: its input, conv_0's output (``middle``), its output, its SPADE hidden width."""

    name: str
    fin: int
    middle: int
    fout: int
    hidden: int

    @property
    def learned_shortcut(self) -> bool:
        """Whether the block has a 1x1 ``conv_s`` shortcut (the up_ blocks, whatever their widths)."""
        return self.name.startswith("up_")


def check_spade_channels(channels: Sequence[int]) -> list[int]:
    """``channels`` as a list of 8 positive ints, else a GanslimError naming the entries."""
    channels = list(channels)
    if len(channels) != len(CHANNEL_NAMES) or any(
            isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1 for c in channels):
        raise GanslimError(f"a mobile SPADE configuration is 8 positive ints ({', '.join(CHANNEL_NAMES)}), got "
                           f"{channels}")
    return [int(c) for c in channels]


def block_widths(channels: Sequence[int]) -> list[BlockWidths]:
    """The widths of every block at configuration ``channels`` (see the module docstring)."""
    c = check_spade_channels(channels)
    residual = 16 * c[0]
    blocks = [BlockWidths(name, residual, 16 * c[i], residual, 2 * c[i]) for i, name in enumerate(CHANNEL_NAMES[1:4], 1)]
    fin = residual
    for i in range(4, 8):
        width = BLOCK_MULTIPLIERS[i] * c[i]
        blocks.append(BlockWidths(CHANNEL_NAMES[i], fin, width, width, 2 * c[i]))
        fin = width
    return blocks


@dataclass(frozen=True)
class SpadeLayers:
    """The layer types a mobile SPADE is built from; the supernet swaps in elastic (sliceable) ones.

    ``conv`` is a Conv2d type (dense or depthwise); ``norm(kind, channels)`` a parameter-free batch or instance norm.
    """

    conv: type[nn.Conv2d]
    norm: Callable[[str, int], nn.Module]


def _static_norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, affine=False) if kind == "batch" else InstanceNorm2d(channels, affine=False)


STATIC_SPADE_LAYERS = SpadeLayers(nn.Conv2d, _static_norm)


class ExactInstanceNorm(nn.Module):
    """Parameter-free instance norm of (N, C, H, W), any C, always through ``F.instance_norm``.

    The separable convs normalise depthwise outputs that are nearly constant where the label map is (a one-hot map
    through a ReLU), and ``group_norm``'s statistics (the fast path of :class:`ganslim.nn.InstanceNorm2d`) lose
    about 1e-3 of the output there against float64, where ``instance_norm`` stays at 1e-6.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, eps=self.eps)


class SeparableSPADEConv(nn.Module):
    """Depthwise k x k -> parameter-free InstanceNorm -> pointwise 1x1: (N, in, H, W) -> (N, out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, layers: SpadeLayers) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            layers.conv(in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels),
            ExactInstanceNorm(),
            layers.conv(in_channels, out_channels, kernel_size=1),
        )

    @property
    def pointwise(self) -> nn.Conv2d:
        """The 1x1 conv, which sets the output width."""
        return self.conv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class MobileSPADE(nn.Module):
    """SPADE with separable gamma / beta convs: (N, channels, h, w) features and the label map -> same shape."""

    def __init__(self, channels: int, label_channels: int, hidden: int, kernel_size: int, norm: str,
                 layers: SpadeLayers = STATIC_SPADE_LAYERS) -> None:
        super().__init__()
        self.param_free_norm = layers.norm(norm, channels)
        self.mlp_shared = nn.Sequential(layers.conv(label_channels, hidden, kernel_size, padding=kernel_size // 2),
                                        nn.ReLU())
        self.mlp_gamma = SeparableSPADEConv(hidden, channels, kernel_size, layers)
        self.mlp_beta = SeparableSPADEConv(hidden, channels, kernel_size, layers)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        features = self.mlp_shared(F.interpolate(label_map, size=x.shape[2:], mode="nearest"))
        return normalized * (1 + self.mlp_gamma(features)) + self.mlp_beta(features)


class MobileSPADEResnetBlock(nn.Module):
    """SPADE residual block of the given widths: (N, fin, h, w) and the label map -> (N, fout, h, w)."""

    def __init__(self, widths: BlockWidths, label_channels: int, kernel_size: int, norm: str,
                 layers: SpadeLayers = STATIC_SPADE_LAYERS) -> None:
        super().__init__()
        fin, middle, fout, hidden = widths.fin, widths.middle, widths.fout, widths.hidden
        self.learned_shortcut, self.out_channels = widths.learned_shortcut, fout
        self.conv_0 = layers.conv(fin, middle, kernel_size=3, padding=1)
        self.conv_1 = layers.conv(middle, fout, kernel_size=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = layers.conv(fin, fout, kernel_size=1, bias=False)
        self.norm_0 = MobileSPADE(fin, label_channels, hidden, kernel_size, norm, layers)
        self.norm_1 = MobileSPADE(middle, label_channels, hidden, kernel_size, norm, layers)
        if self.learned_shortcut:
            self.norm_s = MobileSPADE(fin, label_channels, hidden, kernel_size, norm, layers)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label_map)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label_map), LEAKY_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label_map), LEAKY_SLOPE))
        return shortcut + dx


class MobileSPADEGenerator(SPADELayout):
    """Mobile GauGAN: (N, semantic_nc, H, W) label map -> (N, output_nc, H, W) in [-1, 1].

    Args: as :class:`~ganslim.archs.spade.SPADEGenerator` (label encoding, ngf, 'normal' / 'more' upsampling, crop
    size, aspect ratio, SPADE kernel, parameter-free norm, output channels), and ``channels``: the 8-entry
    configuration (None: ``[ngf] * 8``), see the module docstring.
    """

    layers = STATIC_SPADE_LAYERS

    def __init__(self, label_nc: int = 182, contain_dontcare_label: bool = False, instance_edges: bool = True,
                 ngf: int = 64, num_upsampling_layers: str = "normal", crop_size: int = 256,
                 aspect_ratio: float = 1.0, spade_kernel: int = 3, norm: str = "batch", output_nc: int = 3,
                 channels: Sequence[int] | None = None) -> None:
        super().__init__()
        _check_options(label_nc, ngf, num_upsampling_layers, crop_size, aspect_ratio, 1, None, spade_kernel, norm,
                       output_nc)
        if num_upsampling_layers == "most":
            raise GanslimError("mobile_spade has no up_4: use num_upsampling_layers 'normal' or 'more'")
        self.label_nc, self.contain_dontcare_label = label_nc, contain_dontcare_label
        self.instance_edges, self.output_nc, self.ngf = instance_edges, output_nc, ngf
        self.num_upsampling_layers, self.crop_size, self.aspect_ratio = num_upsampling_layers, crop_size, aspect_ratio
        self.spade_kernel, self.norm = spade_kernel, norm
        self.channels = check_spade_channels([ngf] * len(CHANNEL_NAMES) if channels is None else channels)
        self._set_latent_size(num_upsampling_layers, crop_size, aspect_ratio)
        label_channels = self.input_nc
        self.fc = self.layers.conv(label_channels, 16 * self.channels[0], kernel_size=3, padding=1)
        for widths in block_widths(self.channels):
            self.add_module(widths.name, MobileSPADEResnetBlock(widths, label_channels, spade_kernel, norm,
                                                                self.layers))
        self.conv_img = self.layers.conv(self.channels[-1], output_nc, kernel_size=3, padding=1)

    def arch_kwargs(self) -> dict:
        """The builder's keyword arguments that rebuild this network (what a checkpoint records)."""
        return {"label_nc": self.label_nc, "contain_dontcare_label": self.contain_dontcare_label,
                "instance_edges": self.instance_edges, "ngf": self.ngf,
                "num_upsampling_layers": self.num_upsampling_layers, "crop_size": self.crop_size,
                "aspect_ratio": self.aspect_ratio, "spade_kernel": self.spade_kernel, "norm": self.norm,
                "output_nc": self.output_nc, "channels": list(self.channels)}


@GENERATORS.register("mobile_spade")
def mobile_spade(label_nc: int = 182, contain_dontcare_label: bool = False, instance_edges: bool = True,
                 ngf: int = 64, num_upsampling_layers: str = "normal", crop_size: int = 256, aspect_ratio: float = 1.0,
                 spade_kernel: int = 3, norm: str = "batch", output_nc: int = 3,
                 channels: list[int] | None = None) -> MobileSPADEGenerator:
    """GAN Compression's mobile SPADE student at the 8-entry ``channels`` (see :class:`MobileSPADEGenerator`)."""
    return MobileSPADEGenerator(label_nc, contain_dontcare_label, instance_edges, ngf, num_upsampling_layers,
                                crop_size, aspect_ratio, spade_kernel, norm, output_nc, channels)
