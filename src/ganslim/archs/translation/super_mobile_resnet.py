"""Once-for-all supernet of the mobile ResNet generator (GAN Compression).

``SuperMobileResnetGenerator`` is a ``MobileResnetGenerator`` at its largest widths whose layers are elastic
(``ganslim.nn.elastic``): ``configure(channels)`` picks a sub-network, and every layer then runs the first k
channels of the shared weights (conv inputs and outputs, depthwise filters, norm weights and BatchNorm
running statistics). Its state dict is that of the plain network at the largest widths, and at any
configuration its output equals that of ``ganslim.compress.extract_subnet(supernet, channels)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ganslim.archs.translation.mobile_resnet import (
    FIRST_BLOCK_INDEX,
    LayerKit,
    MobileResnetBlock,
    MobileResnetGenerator,
    block_groups,
    channel_names,
    check_channels,
)
from ganslim.errors import GanslimError
from ganslim.nn.elastic import ElasticConv2d, ElasticConvTranspose2d, make_elastic_norm
from ganslim.registry import GENERATORS

ELASTIC_KIT = LayerKit(ElasticConv2d, ElasticConvTranspose2d, make_elastic_norm, ElasticConv2d)


class SuperMobileResnetGenerator(MobileResnetGenerator):
    """Mobile ResNet whose widths can be set per layer after construction.

    Same arguments as ``MobileResnetGenerator``; ``channels`` (or ngf) sets the *largest* widths. Forward
    runs the configuration last given to ``configure`` (initially the largest).
    """

    layer_kit: ClassVar[LayerKit] = ELASTIC_KIT

    @property
    def active_channels(self) -> list[int]:
        """The configuration the forward runs at, as the elastic convs hold it."""
        return [convs[0].current_out_channels for convs in self._width_setters()]

    def check_config(self, channels: Sequence[int]) -> list[int]:
        """``channels`` as a list if this supernet can run it (right length, each width <= its largest)."""
        channels = check_channels(channels, self.n_blocks)
        for position, (name, width, largest) in enumerate(
            zip(channel_names(self.n_blocks), channels, self.channels)
        ):
            if width > largest:
                raise GanslimError(
                    f"channels[{position}] ({name}) = {width} exceeds the supernet's {largest}; use at most {largest}"
                )
        return channels

    def configure(self, channels: Sequence[int] | None) -> SuperMobileResnetGenerator:
        """Select the sub-network with these widths (None: the largest). Returns ``self``."""
        channels = list(self.channels) if channels is None else self.check_config(channels)
        for width, convs in zip(channels, self._width_setters()):
            for conv in convs:
                conv.set_out_channels(width)
        return self

    def _width_setters(self) -> list[list[ElasticConv2d | ElasticConvTranspose2d]]:
        """For each position of the configuration, the convs whose output width it sets."""
        blocks: list[MobileResnetBlock] = [self.model[i] for i in self.block_indices]
        first_up = FIRST_BLOCK_INDEX + self.n_blocks
        residual = [self.model[7]] + [block.separable_convs[1].pointwise for block in blocks]
        hidden = [[blocks[i].separable_convs[0].pointwise for i in group] for group in block_groups(self.n_blocks)]
        ups = [[self.model[first_up]], [self.model[first_up + 3]]]
        return [[self.model[1]], [self.model[4]], residual, *hidden, *ups]


@GENERATORS.register("super_mobile_resnet")
def super_mobile_resnet(
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    use_dropout: bool = False,
    n_blocks: int = 9,
    channels: list[int] | None = None,
) -> SuperMobileResnetGenerator:
    """Once-for-all supernet of ``mobile_resnet``; ``channels`` are its largest widths (default from ngf)."""
    return SuperMobileResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks, channels)
