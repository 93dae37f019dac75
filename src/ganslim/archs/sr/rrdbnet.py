"""ESRGAN's RRDBNet (Wang et al. 2018), state-dict compatible with XPixelGroup/BasicSR's ``RRDBNet``.

Layout (f = num_feat, g = num_grow_ch, n = num_block; every conv 3x3, stride 1, padding 1, with bias)::

    [pixel_unshuffle by 2 (x2) or 4 (x1)]  conv_first  in*(4/scale)^2 -> f
    body.0 .. body.n-1   RRDB(f, g): rdb1, rdb2, rdb3 (ResidualDenseBlock: conv1 .. conv5)
    conv_body f -> f, added to conv_first's output (the trunk)
    nearest x2, conv_up1, LeakyReLU;  nearest x2, conv_up2, LeakyReLU;  conv_hr, LeakyReLU;  conv_last f -> out

LeakyReLU slope 0.2 (in place, as BasicSR's); dense and RRDB residuals are scaled by 0.2. The image is in [0, 1]
in and out; the output is not clamped (callers clamp or quantise it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganslim.errors import GanslimError
from ganslim.registry import GENERATORS
from ganslim.signature import UNIT, ImageSides, Signature, image_to_image

SR_SCALES = (1, 2, 4)
RESIDUAL_SCALE = 0.2
INIT_SCALE = 0.1  # BasicSR scales the dense blocks' Kaiming init by 0.1, which keeps the deep trunk stable
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}  # scale -> pixel-unshuffle factor before conv_first (the trunk is always x4)


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)


def _scaled_residual(identity: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``identity + 0.2 * residual`` in one op: the scaling is part of the add, so no MAC convention counts an
    elementwise multiply (torchprofile would count BasicSR's ``x * 0.2``; the published figures omit it)."""
    return torch.add(identity, residual, alpha=RESIDUAL_SCALE)


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs (each sees the input and all earlier outputs); (N, f, H, W) -> same."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = _conv(num_feat, num_grow_ch)
        self.conv2 = _conv(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = _conv(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = _conv(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = _conv(num_feat + 4 * num_grow_ch, num_feat)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
                nn.init.kaiming_normal_(conv.weight).mul_(INIT_SCALE)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(self.lrelu(conv(torch.cat(features, dim=1))))
        return _scaled_residual(x, self.conv5(torch.cat(features, dim=1)))


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks and a scaled skip; (N, f, H, W) -> same."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _scaled_residual(x, self.rdb3(self.rdb2(self.rdb1(x))))


class RRDBNet(nn.Module):
    """ESRGAN generator: (N, input_nc, H, W) in [0, 1] -> (N, output_nc, scale*H, scale*W), about [0, 1].

    Args:
        input_nc: channels of the low-resolution image.
        output_nc: channels of the high-resolution image.
        scale: 4, 2 or 1. The trunk always upsamples x4; for x2 and x1 the input is pixel-unshuffled by 2 or 4
            first (so H and W must be multiples of 2 or 4), as BasicSR does for Real-ESRGAN's x2 model.
        num_feat: trunk width (64 for ESRGAN).
        num_block: number of RRDBs (23 for ESRGAN).
        num_grow_ch: growth channels of the dense blocks (32 for ESRGAN).
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if isinstance(scale, bool) or scale not in SR_SCALES:
            raise GanslimError(f"rrdbnet scale {scale!r} is not supported: use 4, 2 or 1")
        for name, value in (("input_nc", input_nc), ("output_nc", output_nc), ("num_feat", num_feat),
                            ("num_grow_ch", num_grow_ch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GanslimError(f"rrdbnet {name}={value!r} is not a positive integer")
        if isinstance(num_block, bool) or not isinstance(num_block, int) or num_block < 0:
            raise GanslimError(f"rrdbnet num_block={num_block!r} is not a non-negative integer")
        self.input_nc, self.output_nc, self.scale = input_nc, output_nc, scale
        self.num_feat, self.num_block, self.num_grow_ch = num_feat, num_block, num_grow_ch
        self.unshuffle = _UNSHUFFLE[scale]
        self.conv_first = _conv(input_nc * self.unshuffle**2, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = _conv(num_feat, num_feat)
        self.conv_up1 = _conv(num_feat, num_feat)
        self.conv_up2 = _conv(num_feat, num_feat)
        self.conv_hr = _conv(num_feat, num_feat)
        self.conv_last = _conv(num_feat, output_nc)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    @property
    def image_sides(self) -> ImageSides:
        """Any side for x4; multiples of the pixel-unshuffle factor (2 for x2, 4 for x1) otherwise."""
        return ImageSides(multiple=self.unshuffle, minimum=self.unshuffle)

    @property
    def signature(self) -> Signature:
        return image_to_image(self.input_nc, self.output_nc, self.image_sides, UNIT, scale=self.scale)

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """The trunk's output (conv_first + conv_body(body)): (N, num_feat, H*scale/4, W*scale/4)."""
        if image.dim() != 4 or image.shape[1] != self.input_nc:
            raise GanslimError(f"rrdbnet takes (N, {self.input_nc}, H, W) images, got shape {tuple(image.shape)}")
        if self.unshuffle > 1:
            image = F.pixel_unshuffle(image, self.unshuffle)
        features = self.conv_first(image)
        return features + self.conv_body(self.body(features))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(image)
        for conv in (self.conv_up1, self.conv_up2):
            features = self.lrelu(conv(F.interpolate(features, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(features)))


@GENERATORS.register("rrdbnet")
def rrdbnet(input_nc: int = 3, output_nc: int = 3, scale: int = 4, num_feat: int = 64, num_block: int = 23,
            num_grow_ch: int = 32) -> RRDBNet:
    """ESRGAN's RRDBNet (16.698 M parameters at the defaults: 64 features, 23 blocks, growth 32, x4)."""
    return RRDBNet(input_nc, output_nc, scale, num_feat, num_block, num_grow_ch)
