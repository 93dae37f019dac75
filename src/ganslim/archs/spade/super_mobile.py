"""Once-for-all supernet of the mobile SPADE generator (``super_mobile_spade``, GAN Compression's GauGAN supernet).

A :class:`~ganslim.archs.spade.mobile.MobileSPADEGenerator` at its largest configuration whose layers are elastic
(:mod:`ganslim.nn.elastic`): ``configure(channels)`` picks a sub-network of the 8-entry configuration, and every layer
then runs the leading channels of the shared weights (and of the parameter-free BatchNorms' running statistics). Its
state dict is the plain network's at the largest widths; at any configuration its output equals that of
``ganslim.compress.extract_subnet(supernet, channels)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ganslim.archs.spade.mobile import (
    CHANNEL_NAMES,
    MobileSPADE,
    MobileSPADEGenerator,
    SpadeLayers,
    block_widths,
    check_spade_channels,
)
from ganslim.errors import GanslimError
from ganslim.nn.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticInstanceNorm2d
from ganslim.registry import GENERATORS


def _elastic_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return ElasticBatchNorm2d(channels, affine=False)
    return ElasticInstanceNorm2d(channels, affine=False)


ELASTIC_SPADE_LAYERS = SpadeLayers(ElasticConv2d, _elastic_norm)


def _set_modulation(norm: MobileSPADE, hidden: int, channels: int) -> None:
    norm.mlp_shared[0].set_out_channels(hidden)
    norm.mlp_gamma.pointwise.set_out_channels(channels)
    norm.mlp_beta.pointwise.set_out_channels(channels)


class SuperMobileSPADEGenerator(MobileSPADEGenerator):
    """Mobile SPADE whose 8-entry configuration can be set after construction; ``channels`` (or ngf) sets the
    *largest* one. Forward runs the configuration last given to ``configure`` (initially the largest)."""

    layers = ELASTIC_SPADE_LAYERS

    def check_config(self, channels: Sequence[int]) -> list[int]:
        """``channels`` as a list if this supernet can run it (8 entries, each at most its largest)."""
        channels = check_spade_channels(channels)
        for position, (name, width, largest) in enumerate(zip(CHANNEL_NAMES, channels, self.channels)):
            if width > largest:
                raise GanslimError(f"channels[{position}] ({name}) = {width} exceeds the supernet's {largest}; use "
                                   f"at most {largest}")
        return channels

    def configure(self, channels: Sequence[int] | None) -> SuperMobileSPADEGenerator:
        """Select the sub-network with this configuration (None: the largest). Returns ``self``."""
        channels = list(self.channels) if channels is None else self.check_config(channels)
        self.fc.set_out_channels(16 * channels[0])
        for widths in block_widths(channels):
            block = self.get_submodule(widths.name)
            block.conv_0.set_out_channels(widths.middle)
            block.conv_1.set_out_channels(widths.fout)
            _set_modulation(block.norm_0, widths.hidden, widths.fin)
            _set_modulation(block.norm_1, widths.hidden, widths.middle)
            if widths.learned_shortcut:
                block.conv_s.set_out_channels(widths.fout)
                _set_modulation(block.norm_s, widths.hidden, widths.fin)
        return self


@GENERATORS.register("super_mobile_spade")
def super_mobile_spade(label_nc: int = 182, contain_dontcare_label: bool = False, instance_edges: bool = True,
                       ngf: int = 64, num_upsampling_layers: str = "normal", crop_size: int = 256,
                       aspect_ratio: float = 1.0, spade_kernel: int = 3, norm: str = "batch", output_nc: int = 3,
                       channels: list[int] | None = None) -> SuperMobileSPADEGenerator:
    """Once-for-all supernet of ``mobile_spade``; ``channels`` are its largest widths (default ``[ngf] * 8``)."""
    return SuperMobileSPADEGenerator(label_nc, contain_dontcare_label, instance_edges, ngf, num_upsampling_layers,
                                     crop_size, aspect_ratio, spade_kernel, norm, output_nc, channels)
