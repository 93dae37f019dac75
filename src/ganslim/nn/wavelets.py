"""The Haar wavelet transform MobileStyleGAN predicts images in, and its style-modulated IDWT upsampling.

Convention (pytorch_wavelets' ``db1`` in ``zero`` mode, which MobileStyleGAN uses): for each 2x2 block
``[[a, b], [c, d]]`` of a channel, ``LL = (a+b+c+d)/2``, ``LH = (a+b-c-d)/2``, ``HL = (a-b+c-d)/2`` and
``HH = (a-b-c+d)/2``; the transform is orthonormal, so the inverse is the same sums of the four bands. A C-channel
image becomes 4C *wavelet channels*, channel-major for the high bands: ``[LL_0 .. LL_{C-1}, LH_0, HL_0, HH_0, LH_1,
..]`` (for RGB: ``[LL_R, LL_G, LL_B, R_LH, R_HL, R_HH, G_LH, ..., B_HH]``, MobileStyleGAN's 12-channel layout).
Pixel (un)shuffles and sums only: no multiplications beyond the 1/2, and every op exports to ONNX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganslim.errors import GanslimError

BANDS = 4  # LL, LH, HL, HH


def haar_dwt(image: Tensor) -> tuple[Tensor, Tensor]:
    """One Haar level: image (N, C, 2H, 2W) -> ``(low, high)``, low (N, C, H, W) and high (N, C, 3, H, W) (LH, HL,
    HH)."""
    batch, channels, height, width = image.shape
    if height % 2 or width % 2:
        raise GanslimError(f"the Haar transform takes even sides, got {height}x{width}")
    a, b, c, d = F.pixel_unshuffle(image, 2).view(batch, channels, BANDS, height // 2, width // 2).unbind(2)
    low = (a + b + c + d) / 2
    high = torch.stack([a + b - c - d, a - b + c - d, a - b - c + d], dim=2) / 2
    return low, high


def haar_idwt(low: Tensor, high: Tensor) -> Tensor:
    """The exact inverse of :func:`haar_dwt`: low (N, C, H, W) and high (N, C, 3, H, W) -> image (N, C, 2H, 2W)."""
    lh, hl, hh = high.unbind(2)
    blocks = torch.stack([low + lh + hl + hh, low + lh - hl - hh, low - lh + hl - hh, low - lh - hl + hh], dim=2) / 2
    batch, channels, height, width = low.shape
    return F.pixel_shuffle(blocks.reshape(batch, channels * BANDS, height, width), 2)


def image_to_wavelets(image: Tensor) -> Tensor:
    """Image (N, C, 2H, 2W) -> wavelet channels (N, 4C, H, W) in the module docstring's layout."""
    low, high = haar_dwt(image)
    return torch.cat([low, high.flatten(1, 2)], dim=1)


def wavelets_to_image(wavelets: Tensor) -> Tensor:
    """Wavelet channels (N, 4C, H, W) (the first C the low band, then LH, HL, HH per channel) -> image (N, C, 2H,
    2W); the inverse of :func:`image_to_wavelets`."""
    batch, channels, height, width = wavelets.shape
    if channels % BANDS:
        raise GanslimError(f"wavelet channels come in fours (one low and three high bands), got {channels}")
    low_channels = channels // BANDS
    high = wavelets[:, low_channels:].reshape(batch, low_channels, BANDS - 1, height, width)
    return haar_idwt(wavelets[:, :low_channels], high)


class IDWTUpsample(nn.Module):
    """MobileStyleGAN's upsampling: (N, C, H, W) and styles (N, style_dim) -> (N, C/4, 2H, 2W).

    The style scales each input channel (``modulation``, a plain Linear with bias initialised to 1, not equalised),
    then the first C/4 channels are read as the low band and the other 3C/4 as the high bands (LH, HL, HH per
    output channel) of an inverse Haar transform: twice the side, a quarter of the channels, nothing learned but
    the style's affine.
    """

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        if channels % BANDS:
            raise GanslimError(f"IDWT upsampling takes a multiple of 4 channels (a low and three high bands each), "
                               f"got {channels}")
        self.channels = channels
        self.modulation = nn.Linear(style_dim, channels)
        nn.init.ones_(self.modulation.bias)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        modulation = self.modulation(style).view(x.shape[0], self.channels, 1, 1)
        return wavelets_to_image(x * modulation)
