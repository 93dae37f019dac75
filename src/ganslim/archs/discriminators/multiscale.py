"""NVlabs/SPADE's multi-scale PatchGAN discriminator (pix2pixHD's), state-dict compatible with its
``latest_net_D.pth`` (``netD multiscale``, ``netD_subarch n_layer``, ``norm_D spectralinstance``).

``num_d`` PatchGANs ``discriminator_0`` ... see the input at full size, then each next one at half the previous
size (3x3 average pool, stride 2, padding 1, padding not counted). Each is a chain of ``model0`` ... ``model{n}``
(n = ``n_layers``; f = ``ndf``, widths doubled up to 512; 4x4 convs, padding 2; LeakyReLU 0.2)::

    model0       conv s2 in -> f (bias), LeakyReLU
    model1 ...   conv s2 (s1 in the last of them) without bias, spectral norm (``spectral``), InstanceNorm
                 (no affine), LeakyReLU; model{k}: -> min(f * 2^k, 512) channels
    model{n}     conv s1 -> 1 (bias): the patch scores

A side s becomes s // 2 + 1 at a stride-2 conv and s + 1 at a stride-1 conv. The forward pass returns every
model's output per scale: the intermediate features feed SPADE's feature-matching loss, the last is the scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from ganslim.errors import GanslimError
from ganslim.nn import InstanceNorm2d
from ganslim.registry import DISCRIMINATORS
from ganslim.signature import ImageSides

KERNEL, PADDING, MAX_WIDTH, SLOPE = 4, 2, 512, 0.2


class PatchDiscriminator(nn.Module):
    """One scale: (N, input_nc, H, W) -> its ``n_layers + 1`` outputs, the last (N, 1, h, w) raw scores."""

    def __init__(self, input_nc: int, ndf: int, n_layers: int, spectral: bool) -> None:
        super().__init__()
        width = ndf
        self.model0 = nn.Sequential(nn.Conv2d(input_nc, width, KERNEL, stride=2, padding=PADDING),
                                    nn.LeakyReLU(SLOPE))
        for index in range(1, n_layers):
            previous, width = width, min(width * 2, MAX_WIDTH)
            conv = nn.Conv2d(previous, width, KERNEL, stride=1 if index == n_layers - 1 else 2, padding=PADDING,
                             bias=False)  # NVlabs drops the bias before a norm
            normed = nn.Sequential(spectral_norm(conv) if spectral else conv, InstanceNorm2d(width, affine=False))
            self.add_module(f"model{index}", nn.Sequential(normed, nn.LeakyReLU(SLOPE)))
        self.add_module(f"model{n_layers}", nn.Sequential(nn.Conv2d(width, 1, KERNEL, stride=1, padding=PADDING)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for model in self.children():
            x = model(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """(N, input_nc, H, W) -> ``num_d`` lists (full size first) of ``n_layers + 1`` outputs each: n_layers feature
    maps, then the (N, 1, h, w) patch scores.

    Args:
        input_nc: channels judged: SPADE's label map (one-hot + dontcare + edges) and the image, concatenated.
        ndf: width of each scale's first conv (NVlabs: 64).
        n_layers: convs before the scoring conv (NVlabs' n_layers_D: 4).
        num_d: scales (NVlabs: 2).
        spectral: spectral norm on the normed convs (NVlabs' ``spectralinstance``); False: instance norm only.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4, num_d: int = 2, spectral: bool = True
                 ) -> None:
        super().__init__()
        for name, value in (("input_nc", input_nc), ("ndf", ndf), ("n_layers", n_layers), ("num_d", num_d)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"multiscale discriminator {name}={value!r} is not a positive integer")
        self.input_nc, self.ndf, self.n_layers, self.num_d, self.spectral = input_nc, ndf, n_layers, num_d, spectral
        for index in range(num_d):
            self.add_module(f"discriminator_{index}", PatchDiscriminator(input_nc, ndf, n_layers, spectral))

    @property
    def image_sides(self) -> ImageSides:
        """An instance norm needs more than one value per channel: the coarsest scale, which sees
        ceil(s / 2^(num_d - 1)) pixels, must see 2 (with no normed conv, n_layers 1, any side works)."""
        return ImageSides(minimum=2 ** (self.num_d - 1) + 1 if self.n_layers > 1 else 1)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """(N, input_nc, H, W) -> per scale, its outputs (see the class docstring)."""
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise GanslimError(f"the multiscale discriminator takes (N, {self.input_nc}, H, W), got shape "
                               f"{tuple(x.shape)}")
        results = []
        for index, scale in enumerate(self.children()):
            if index:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            results.append(scale(x))
        return results


@DISCRIMINATORS.register("multiscale")
def multiscale(input_nc: int = 39, ndf: int = 64, n_layers: int = 4, num_d: int = 2, spectral: bool = True
               ) -> MultiscaleDiscriminator:
    """SPADE's multi-scale PatchGAN (default input: Cityscapes' 36 label-map channels + RGB)."""
    return MultiscaleDiscriminator(input_nc, ndf, n_layers, num_d, spectral)
