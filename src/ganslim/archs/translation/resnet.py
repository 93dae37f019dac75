"""ResNet generator of pix2pix / CycleGAN (Johnson et al.), state-dict compatible with the reference.

Layout of ``ResnetGenerator.model`` (an ``nn.Sequential``; n = n_blocks, c = ngf)::

    0 ReflectionPad2d(3)   1 Conv2d 7x7 in->c      2 norm  3 ReLU
    4 Conv2d 3x3 s2 c->2c  5 norm  6 ReLU          7 Conv2d 3x3 s2 2c->4c  8 norm  9 ReLU
    10 .. 10+n-1 ResnetBlock(4c)
    10+n ConvTranspose2d 4c->2c  11+n norm  12+n ReLU
    13+n ConvTranspose2d 2c->c   14+n norm  15+n ReLU
    16+n ReflectionPad2d(3)  17+n Conv2d 7x7 c->out (always with bias)  18+n Tanh

Inside a block, ``conv_block`` is pad, conv, norm, ReLU, [Dropout(0.5)], pad, conv, norm: the second conv is
``conv_block.5`` without dropout and ``conv_block.6`` with it.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.nn import OutputConv2d, check_norm, conv_bias, make_norm
from ganslim.registry import GENERATORS
from ganslim.signature import ImageSides, TranslatesImages

N_DOWNSAMPLING = 2
# Two stride-2 downsamplings undone by transposed convs; the H/4 x W/4 middle needs 2 pixels for its norms.
RESNET_SIDES = ImageSides(multiple=2**N_DOWNSAMPLING, minimum=2 * 2**N_DOWNSAMPLING)


class ResnetBlock(nn.Module):
    """Residual block ``x + conv_block(x)`` with reflect padding; (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int, norm: str, use_dropout: bool) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, bias=bias),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, bias=bias),
            make_norm(norm, channels),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(TranslatesImages, nn.Module):
    """Image-to-image ResNet generator: (N, input_nc, H, W) in [-1, 1] -> (N, output_nc, H, W) in [-1, 1].

    H and W should be multiples of 4 (two stride-2 downsamplings); otherwise the output is rounded up to one.

    Args:
        input_nc: channels of the input image.
        output_nc: channels of the output image.
        ngf: width of the first conv; the residual blocks run at 4 * ngf channels and H/4 x W/4.
        norm: ``batch`` | ``instance`` | ``none`` (convs have a bias only with ``instance``).
        use_dropout: Dropout(0.5) between the two convs of every block (shifts the second conv's key).
        n_blocks: number of residual blocks (9 for ``resnet_9blocks``, 6 for ``resnet_6blocks``).
    """

    image_sides: ClassVar[ImageSides] = RESNET_SIDES

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = False,
        n_blocks: int = 9,
    ) -> None:
        super().__init__()
        check_norm(norm)
        if n_blocks < 0:
            raise GanslimError(f"resnet generator needs n_blocks >= 0, got {n_blocks}")
        self.input_nc, self.output_nc, self.ngf = input_nc, output_nc, ngf
        self.norm, self.use_dropout, self.n_blocks = norm, use_dropout, n_blocks
        bias = conv_bias(norm)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, bias=bias),
            make_norm(norm, ngf),
            nn.ReLU(inplace=True),
        ]
        channels = ngf
        for _ in range(N_DOWNSAMPLING):
            layers += [
                nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(norm, channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        layers += [ResnetBlock(channels, norm, use_dropout) for _ in range(n_blocks)]
        for _ in range(N_DOWNSAMPLING):
            layers += [
                nn.ConvTranspose2d(
                    channels, channels // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                make_norm(norm, channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), OutputConv2d(channels, output_nc, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @property
    def block_indices(self) -> list[int]:
        """Positions of the residual blocks in ``self.model`` (10 .. 10 + n_blocks - 1).

        GAN Compression distils the output of the second downsampling (index 9) and of blocks 3, 6, 9,
        i.e. ``[9, 12, 15, 18]`` for ``resnet_9blocks``.
        """
        first = 1 + 3 + 3 * N_DOWNSAMPLING
        return list(range(first, first + self.n_blocks))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, H, W) -> (N, output_nc, H, W), values in [-1, 1]."""
        return self.model(image)

    def forward_features(
        self, image: torch.Tensor, layer_indices: Sequence[int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the generator and also return the outputs of ``self.model[i]`` for each i in ``layer_indices``.

        Args:
            image: (N, input_nc, H, W).
            layer_indices: positions in ``self.model`` (0 .. len(self.model) - 1), in any order.
        Returns:
            ``(output, features)``: output (N, output_nc, H, W) equal to ``forward(image)``; features in the
            order of ``layer_indices``, each (N, feature_channels(i), h, w) — e.g. H/4 x W/4 with 4 * ngf
            channels for the residual blocks. Features stay attached to the autograd graph.
        """
        wanted = _check_indices(layer_indices, len(self.model))
        captured: dict[int, torch.Tensor] = {}
        x = image
        for index, layer in enumerate(self.model):
            x = layer(x)
            if index in wanted:
                # The next layer may be an in-place ReLU that would overwrite this tensor.
                follows_inplace = index + 1 < len(self.model) and getattr(self.model[index + 1], "inplace", False)
                captured[index] = x.clone() if follows_inplace else x
        return x, [captured[i] for i in layer_indices]

    def feature_channels(self, layer_index: int) -> int:
        """Channels of the feature that ``forward_features`` returns for ``layer_index``."""
        (layer_index,) = _check_indices([layer_index], len(self.model))
        channels = self.input_nc
        for layer in self.model[: layer_index + 1]:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                channels = layer.out_channels
        return channels


def _check_indices(layer_indices: Sequence[int], length: int) -> set[int]:
    bad = [i for i in layer_indices if not isinstance(i, int) or not 0 <= i < length]
    if bad:
        raise GanslimError(f"layer indices {bad} are outside this generator's 0..{length - 1}; pick positions in it")
    return set(layer_indices)


@GENERATORS.register("resnet")
def resnet(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "batch",
    use_dropout: bool = False,
    n_blocks: int = 9,
) -> ResnetGenerator:
    """ResNet generator with any number of residual blocks."""
    return ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks)


@GENERATORS.register("resnet_9blocks")
def resnet_9blocks(
    input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch", use_dropout: bool = False
) -> ResnetGenerator:
    """CycleGAN's default generator: 9 residual blocks (11.38M parameters at ngf 64)."""
    return ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks=9)


@GENERATORS.register("resnet_6blocks")
def resnet_6blocks(
    input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch", use_dropout: bool = False
) -> ResnetGenerator:
    """ResNet generator with 6 residual blocks (the reference's choice for 128x128 images)."""
    return ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks=6)
