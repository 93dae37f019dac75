"""BasicSR's ``VGGStyleDiscriminator`` (SRGAN / ESRGAN), state-dict compatible: one score per 128x128 (or 256x256)
image.

Layout (f = ``ndf``; every conv without bias is followed by a BatchNorm; LeakyReLU 0.2 after each)::

    conv0_0 3x3 in->f (bias)            conv0_1 4x4 s2 f->f, bn0_1
    conv1_0 3x3 f->2f, bn1_0            conv1_1 4x4 s2 2f->2f, bn1_1
    conv2_0 3x3 2f->4f, bn2_0           conv2_1 4x4 s2 4f->4f, bn2_1
    conv3_0 3x3 4f->8f, bn3_0           conv3_1 4x4 s2 8f->8f, bn3_1
    conv4_0 3x3 8f->8f, bn4_0           conv4_1 4x4 s2 8f->8f, bn4_1
    (256 input: conv5_0, bn5_0, conv5_1, bn5_1 as stage 4)
    linear1 8f*4*4 -> 100, LeakyReLU;   linear2 100 -> 1

Every stage halves the image, so the fully connected head sees 4x4 features: the input side is fixed.
"""

from __future__ import annotations

import torch
from torch import nn

from ganslim.errors import GanslimError
from ganslim.registry import DISCRIMINATORS
from ganslim.signature import ImageSides

INPUT_SIZES = (128, 256)
HEAD_SIDE = 4  # the features' side when they reach linear1
HIDDEN = 100


class VGGStyleDiscriminator(nn.Module):
    """(N, input_nc, S, S) -> (N, 1) raw scores (no sigmoid), S = ``input_size``.

    Args:
        input_nc: channels of the images judged.
        ndf: width of the first stage (BasicSR's ``num_feat``, 64 for ESRGAN); stages widen to 8 x ndf.
        input_size: 128 (ESRGAN's GT crops) or 256; the network takes no other side.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in INPUT_SIZES:
            raise GanslimError(f"the vgg_style discriminator takes {' or '.join(map(str, INPUT_SIZES))}-pixel "
                               f"images, not {input_size!r}: pass input_size=128 (ESRGAN's)")
        self.input_nc, self.ndf, self.input_size = input_nc, ndf, input_size
        stages = {128: 5, 256: 6}[input_size]
        widths = [ndf * min(2**stage, 8) for stage in range(stages)]
        self.conv0_0 = nn.Conv2d(input_nc, ndf, kernel_size=3, stride=1, padding=1)
        # (conv, norm) pairs in forward order, registered under BasicSR's attribute names so its net_d files load.
        self.normed: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
        self._add(0, 1, ndf, ndf, kernel_size=4, stride=2)
        for stage in range(1, stages):
            self._add(stage, 0, widths[stage - 1], widths[stage], kernel_size=3, stride=1)
            self._add(stage, 1, widths[stage], widths[stage], kernel_size=4, stride=2)
        self.linear1 = nn.Linear(widths[-1] * HEAD_SIDE * HEAD_SIDE, HIDDEN)
        self.linear2 = nn.Linear(HIDDEN, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def _add(self, stage: int, index: int, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=1, bias=False)
        norm = nn.BatchNorm2d(out_channels)
        self.add_module(f"conv{stage}_{index}", conv)
        self.add_module(f"bn{stage}_{index}", norm)
        self.normed.append((conv, norm))

    @property
    def image_sides(self) -> ImageSides:
        """Exactly ``input_size`` (the head is fully connected)."""
        return ImageSides(multiple=self.input_size, minimum=self.input_size, maximum=self.input_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, input_nc, input_size, input_size) -> (N, 1)."""
        if image.dim() != 4 or tuple(image.shape[1:]) != (self.input_nc, self.input_size, self.input_size):
            raise GanslimError(f"the vgg_style discriminator takes (N, {self.input_nc}, {self.input_size}, "
                               f"{self.input_size}) images, got shape {tuple(image.shape)}")
        features = self.lrelu(self.conv0_0(image))
        for conv, norm in self.normed:
            features = self.lrelu(norm(conv(features)))
        return self.linear2(self.lrelu(self.linear1(features.flatten(1))))


@DISCRIMINATORS.register("vgg_style")
def vgg_style(input_nc: int = 3, ndf: int = 64, input_size: int = 128) -> VGGStyleDiscriminator:
    """BasicSR's VGG-style discriminator of SRGAN / ESRGAN (128 or 256-pixel input)."""
    return VGGStyleDiscriminator(input_nc, ndf, input_size)
