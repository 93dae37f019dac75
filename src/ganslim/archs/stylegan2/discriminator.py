"""StyleGAN2's residual discriminator, state-dict compatible with rosinality/stylegan2-pytorch.

Layout (keys as rosinality's; c[r] = channels at side r, R = image side)::

    convs.0        ConvLayer 1x1: image -> c[R] (EqualConv2d ``0``, FusedLeakyReLU ``1``)
    convs.1 ..     ResBlock c[r] -> c[r/2] for r = R .. 8: conv1 3x3, conv2 [1, 3, 3, 1] blur + 3x3 stride 2,
                   skip blur + 1x1 stride 2 (no bias, linear); out = (conv + skip) / sqrt(2)
    (minibatch standard deviation: one feature over groups of up to 4 samples)
    final_conv     ConvLayer 3x3: c[4] + 1 -> c[4]
    final_linear   EqualLinear c[4]*16 -> c[4] (fused lrelu), EqualLinear c[4] -> 1

It takes (N, C, R, R) images in [-1, 1] and returns (N, 1) logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganslim.archs.stylegan2.channels import check_positive_int, check_positive_number, resolve_channels
from ganslim.errors import GanslimError
from ganslim.nn.equalized import EqualConv2d, EqualLinear, FusedLeakyReLU
from ganslim.nn.modulated import BLUR_TAPS
from ganslim.nn.upfirdn import Blur, make_blur_kernel
from ganslim.registry import DISCRIMINATORS

STDDEV_GROUP = 4
STDDEV_EPS = 1e-8


class ConvLayer(nn.Sequential):
    """[blur, stride-2] EqualConv2d [+ bias + leaky ReLU * sqrt(2), clamped to +-``clamp`` when set]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 bias: bool = True, activate: bool = True, clamp: float | None = None) -> None:
        layers: list[nn.Module] = []
        if downsample:
            excess = len(BLUR_TAPS) - 2 + kernel_size - 1
            layers.append(Blur(make_blur_kernel(BLUR_TAPS), pad=((excess + 1) // 2, excess // 2)))
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=2 if downsample else 1,
                                  padding=0 if downsample else kernel_size // 2, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels, bias=bias, clamp=clamp))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """(N, in, H, W) -> (N, out, H/2, W/2): two 3x3 convs (the second downsamples) plus a 1x1 skip, / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, clamp: float | None = None) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3, clamp=clamp)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, clamp=clamp)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class StyleGAN2Discriminator(nn.Module):
    """(N, image_channels, size, size) images -> (N, 1) logits (see the module docstring).

    Args:
        size: image side, a power of two of at least 4.
        channel_multiplier: as the generator's (2 for config-f); ``channels`` replaces its table (one width per
            side 4, 8, ..., size).
        image_channels: channels of the image (3).
        conv_clamp: clamp every activated conv's output to +- this (NVIDIA's ``conv_clamp``); None clamps nothing.
        stddev_group: samples per minibatch-stddev group (4; NVIDIA's configs use 4 to 32).
    """

    def __init__(self, size: int = 1024, channel_multiplier: int = 2, channels: Sequence[int] | None = None,
                 image_channels: int = 3, conv_clamp: float | None = None, stddev_group: int = STDDEV_GROUP) -> None:
        super().__init__()
        table = resolve_channels(size, channel_multiplier, channels)
        check_positive_int("image_channels", image_channels)
        check_positive_int("stddev_group", stddev_group)
        if conv_clamp is not None:
            check_positive_number("conv_clamp", conv_clamp)
        self.img_resolution, self.img_channels, self.stddev_group = size, image_channels, stddev_group
        self.channels, self.conv_clamp = table, conv_clamp  # one width per side 4, ..., size
        widths = list(reversed(table))  # c[size], ..., c[4]
        self.convs = nn.Sequential(ConvLayer(image_channels, widths[0], 1, clamp=conv_clamp),
                                   *(ResBlock(a, b, conv_clamp) for a, b in zip(widths, widths[1:])))
        self.final_conv = ConvLayer(widths[-1] + 1, widths[-1], 3, clamp=conv_clamp)
        self.final_linear = nn.Sequential(EqualLinear(widths[-1] * 16, widths[-1], activate=True),
                                          EqualLinear(widths[-1], 1))

    def forward(self, image: Tensor) -> Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if image.dim() != 4 or tuple(image.shape[1:]) != expected:
            raise GanslimError(f"this StyleGAN2 discriminator takes (N, {', '.join(map(str, expected))}) images, "
                               f"got {tuple(image.shape)}")
        out = minibatch_stddev(self.convs(image), self.stddev_group)
        return self.final_linear(self.final_conv(out).flatten(1))


def minibatch_stddev(x: Tensor, group_size: int = STDDEV_GROUP) -> Tensor:
    """(N, C, H, W) -> (N, C + 1, H, W): appends each sample's group's mean standard deviation over the batch.

    Groups are samples ``n, n + N/G, ...`` with G = min(group_size, N), as rosinality's and NVIDIA's; when G does
    not divide N (where both fail) the largest divisor of N below it is used.
    """
    batch, channels, height, width = x.shape
    group = max(g for g in range(1, min(group_size, batch) + 1) if batch % g == 0)
    grouped = x.view(group, -1, channels, height, width)
    stddev = torch.sqrt(grouped.var(0, unbiased=False) + STDDEV_EPS).mean([1, 2, 3])
    feature = stddev.view(-1, 1, 1, 1).repeat(group, 1, height, width)
    return torch.cat([x, feature], dim=1)


@DISCRIMINATORS.register("stylegan2")
def stylegan2(size: int = 1024, channel_multiplier: int = 2, channels: Sequence[int] | None = None,
              image_channels: int = 3, conv_clamp: float | None = None,
              stddev_group: int = STDDEV_GROUP) -> StyleGAN2Discriminator:
    """StyleGAN2 config-f's discriminator at the defaults."""
    return StyleGAN2Discriminator(size, channel_multiplier, channels, image_channels, conv_clamp, stddev_group)
