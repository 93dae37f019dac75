"""Anycost GAN's discriminators: StyleGAN2's residual discriminator with one fromRGB per resolution into shared
blocks, and optionally conditioned on the configuration of the sub-generator whose images it judges.

Layout (keys as Anycost's ``DiscriminatorMultiRes``; c[r] = channels at side r, R = size, n = resolutions)::

    convs.i        ConvLayer 1x1 fromRGB: an image of side R / 2^i -> c[R / 2^i], i = 0 .. n-1
    blocks.j       ResBlock c[r] -> c[r/2] for r = R .. 8 (a StyleGAN2 discriminator's convs.(j+1)); an image of
                   side R / 2^i enters at convs.i and runs blocks i, i+1, ...
    final_conv, final_linear   as StyleGAN2's (after the minibatch standard deviation)

Conditioned, the last two blocks modulate the output of each of their convs (conv1, conv2 and skip) before its
bias and activation: ``x * (1 + weight_mapping(code)) + bias_mapping(code)``, two ``nn.Linear`` layers from the
configuration code (a one-hot of each generator layer's width ratio among 0.25, 0.5, 0.75, 1, flattened:
2*log2(R) - 2 layers x 4 = 72 entries at 1024, :func:`config_one_hot`). The modulation sits at index 1 of conv1
and 2 of conv2 and skip, so the activations' biases are ``conv1.2.bias`` and ``conv2.3.bias``, as in Anycost's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganslim.archs.stylegan2.channels import check_positive_int, check_positive_number, resolve_channels
from ganslim.archs.stylegan2.discriminator import (
    STDDEV_GROUP,
    ConvLayer,
    ResBlock,
    StyleGAN2Discriminator,
    minibatch_stddev,
)
from ganslim.archs.stylegan2.subnets import CHANNEL_RATIOS, layer_count
from ganslim.errors import GanslimError
from ganslim.nn.equalized import EqualConv2d, EqualLinear
from ganslim.nn.upfirdn import Blur
from ganslim.registry import DISCRIMINATORS

ARCH = "anycost"
CONDITIONED_BLOCKS = 2  # Anycost modulates the last two ResBlocks


def config_one_hot(ratios: Sequence[float]) -> Tensor:
    """The conditioning code of a configuration given as one width ratio per generator layer (each one of
    :data:`CHANNEL_RATIOS`): (n_layers, 4), a one-hot row per layer."""
    unknown = sorted({ratio for ratio in ratios if ratio not in CHANNEL_RATIOS})
    if unknown:
        raise GanslimError(f"channel ratios {unknown} are not among {', '.join(map(str, CHANNEL_RATIOS))}: the "
                           f"conditioned discriminator takes one of those per layer")
    code = torch.zeros(len(ratios), len(CHANNEL_RATIOS))
    code[range(len(ratios)), [CHANNEL_RATIOS.index(ratio) for ratio in ratios]] = 1
    return code


class ConfigModulation(nn.Module):
    """(N, C, H, W) and codes (N, code_dim) -> ``x * (1 + weight_mapping(code)) + bias_mapping(code)`` per channel."""

    def __init__(self, code_dim: int, channels: int) -> None:
        super().__init__()
        self.weight_mapping = nn.Linear(code_dim, channels)
        self.bias_mapping = nn.Linear(code_dim, channels)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        scale = 1 + self.weight_mapping(code)  # 1 + ...: a smooth start, as Anycost's
        return x * scale[:, :, None, None] + self.bias_mapping(code)[:, :, None, None]


class ConditionedConvLayer(nn.Sequential):
    """A discriminator ConvLayer with a :class:`ConfigModulation` right after its conv: (x, code) -> y."""

    def __init__(self, layer: ConvLayer, code_dim: int) -> None:
        layers = list(layer)
        at = next(index for index, module in enumerate(layers) if isinstance(module, EqualConv2d))
        layers.insert(at + 1, ConfigModulation(code_dim, layers[at].weight.shape[0]))
        super().__init__(*layers)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        for module in self:
            x = module(x, code) if isinstance(module, ConfigModulation) else module(x)
        return x


class ConditionedResBlock(nn.Module):
    """A discriminator ResBlock whose three convs are :class:`ConditionedConvLayer`: (x, code) -> (N, out, H/2, W/2)."""

    def __init__(self, block: ResBlock, code_dim: int) -> None:
        super().__init__()
        self.conv1 = ConditionedConvLayer(block.conv1, code_dim)
        self.conv2 = ConditionedConvLayer(block.conv2, code_dim)
        self.skip = ConditionedConvLayer(block.skip, code_dim)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x, code), code) + self.skip(x, code)) / math.sqrt(2)


class MultiResolutionDiscriminator(nn.Module):
    """Images (N, image_channels, r, r) for r in ``resolutions`` (and with ``conditioned`` a configuration code)
    -> (N, 1) logits; see the module docstring.

    Args:
        size: the largest image side, a power of two of at least 4; ``channel_multiplier`` / ``channels`` as the
            StyleGAN2 discriminator's.
        resolutions: how many sides it judges: size, size/2, ... (Anycost: 4; at most log2(size) - 1).
        conditioned: take a configuration code and modulate the last two blocks with it.
        image_channels, conv_clamp, stddev_group: as the StyleGAN2 discriminator's.
    """

    def __init__(self, size: int = 1024, channel_multiplier: int = 2, channels: Sequence[int] | None = None,
                 resolutions: int = 4, conditioned: bool = False, image_channels: int = 3,
                 conv_clamp: float | None = None, stddev_group: int = STDDEV_GROUP) -> None:
        super().__init__()
        table = resolve_channels(size, channel_multiplier, channels)
        for name, value in (("image_channels", image_channels), ("stddev_group", stddev_group),
                            ("resolutions", resolutions)):
            check_positive_int(name, value, ARCH)
        if resolutions > len(table):
            raise GanslimError(f"{ARCH} resolutions={resolutions}: a {size} px discriminator judges at most "
                               f"{len(table)} sides ({size} down to 4)")
        if conv_clamp is not None:
            check_positive_number("conv_clamp", conv_clamp, ARCH)
        self.img_resolution, self.img_channels, self.stddev_group = size, image_channels, stddev_group
        self.channels, self.conv_clamp, self.conditioned = table, conv_clamp, conditioned
        self.resolutions = tuple(size >> i for i in range(resolutions))
        self.code_shape = (layer_count(size), len(CHANNEL_RATIOS))
        widths = list(reversed(table))  # c[size], ..., c[4]
        self.convs = nn.ModuleList(ConvLayer(image_channels, widths[i], 1, clamp=conv_clamp)
                                   for i in range(resolutions))
        blocks: list[nn.Module] = [ResBlock(a, b, conv_clamp) for a, b in zip(widths, widths[1:])]
        if conditioned:
            first = max(0, len(blocks) - CONDITIONED_BLOCKS)
            blocks[first:] = [ConditionedResBlock(block, math.prod(self.code_shape)) for block in blocks[first:]]
        self.blocks = nn.ModuleList(blocks)
        self.final_conv = ConvLayer(widths[-1] + 1, widths[-1], 3, clamp=conv_clamp)
        self.final_linear = nn.Sequential(EqualLinear(widths[-1] * 16, widths[-1], activate=True),
                                          EqualLinear(widths[-1], 1))

    def forward(self, image: Tensor, config: Tensor | None = None) -> Tensor:
        """``image`` (N, C, r, r); ``config`` (required iff conditioned) a code (n_layers, 4) for the whole batch or
        (N, n_layers, 4) per sample (:func:`config_one_hot`)."""
        side = image.shape[-1]
        if image.dim() != 4 or image.shape[1] != self.img_channels or image.shape[2] != side \
                or side not in self.resolutions:
            raise GanslimError(f"this {ARCH} discriminator takes (N, {self.img_channels}, r, r) images with r in "
                               f"{', '.join(map(str, self.resolutions))}, got {tuple(image.shape)}")
        code = self._code(config, image)
        start = self.resolutions.index(side)
        out = self.convs[start](image)
        for block in self.blocks[start:]:
            out = block(out, code) if isinstance(block, ConditionedResBlock) else block(out)
        out = minibatch_stddev(out, self.stddev_group)
        return self.final_linear(self.final_conv(out).flatten(1))

    def _code(self, config: Tensor | None, image: Tensor) -> Tensor | None:
        """The flattened code (N, n_layers * 4) on the image's device and dtype, or None unconditioned."""
        batch = image.shape[0]
        if not self.conditioned:
            if config is not None:
                raise GanslimError(f"this {ARCH} discriminator is not conditioned: pass no configuration (or build it "
                                   f"with conditioned=True)")
            return None
        shapes = (self.code_shape, (batch, *self.code_shape))
        if config is None or tuple(config.shape) not in shapes:
            got = "none" if config is None else tuple(config.shape)
            raise GanslimError(f"this conditioned {ARCH} discriminator takes a configuration code of shape "
                               f"{self.code_shape} or {(batch, *self.code_shape)} (config_one_hot), got {got}")
        return config.to(image).reshape(-1, math.prod(self.code_shape)).expand(batch, -1)

    @classmethod
    def from_discriminator(cls, source: StyleGAN2Discriminator | MultiResolutionDiscriminator,
                           resolutions: int = 4, conditioned: bool = False) -> MultiResolutionDiscriminator:
        """A discriminator initialised from a trained one, as Anycost starts each stage: a StyleGAN2 one's
        ``convs.0`` becomes the full-resolution fromRGB and its ``convs.k`` the shared ``blocks.(k-1)``; a
        multi-resolution one's fromRGBs and blocks carry over. fromRGBs and modulations the source lacks keep
        their random initialisation. Copies (not shared), on the source's device.
        """
        target = cls(source.img_resolution, channels=source.channels, resolutions=resolutions,
                     conditioned=conditioned, image_channels=source.img_channels, conv_clamp=source.conv_clamp,
                     stddev_group=source.stddev_group)
        if isinstance(source, StyleGAN2Discriminator):
            from_rgbs, blocks = [source.convs[0]], list(source.convs)[1:]
        else:
            from_rgbs, blocks = list(source.convs), list(source.blocks)
        for source_layer, target_layer in zip(from_rgbs, target.convs):
            target_layer.load_state_dict(source_layer.state_dict())
        for source_block, target_block in zip(blocks, target.blocks):
            for name in ("conv1", "conv2", "skip"):
                _copy_learned(getattr(source_block, name), getattr(target_block, name))
        target.final_conv.load_state_dict(source.final_conv.state_dict())
        target.final_linear.load_state_dict(source.final_linear.state_dict())
        return target.to(source.final_conv[0].weight.device)


def _copy_learned(source: nn.Sequential, target: nn.Sequential) -> None:
    """Copy the conv, activation and (when both have it) modulation of one ConvLayer into another, wherever each
    sits in its layer."""
    learned = {type(module): module for module in source if not isinstance(module, Blur)}
    for module in target:
        if type(module) in learned and not isinstance(module, Blur):
            module.load_state_dict(learned[type(module)].state_dict())


@DISCRIMINATORS.register(ARCH)
def anycost(size: int = 1024, channel_multiplier: int = 2, channels: Sequence[int] | None = None,
            resolutions: int = 4, conditioned: bool = False, image_channels: int = 3,
            conv_clamp: float | None = None, stddev_group: int = STDDEV_GROUP) -> MultiResolutionDiscriminator:
    """Anycost GAN's multi-resolution StyleGAN2 discriminator (conditioned on the generator's configuration with
    ``conditioned``), config-f at the defaults."""
    return MultiResolutionDiscriminator(size, channel_multiplier, channels, resolutions, conditioned, image_channels,
                                        conv_clamp, stddev_group)
