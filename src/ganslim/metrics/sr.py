"""Super-resolution PSNR and SSIM as BasicSR computes them (and AGD reports them: Y channel, border = scale).

Both images are first quantised to 8 bits as saving them would (``round(clamp(x, 0, 1) * 255)``, BasicSR's
``tensor2img``), then ``crop_border`` pixels are dropped on every side, then (``y_channel=True``) RGB becomes the
luma of ITU-R BT.601 on the [0, 255] scale, as BasicSR's ``to_y_channel`` and MATLAB's ``rgb2ycbcr``, not rounded:
``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1]. All arithmetic is float64.

* PSNR: ``10 log10(255^2 / MSE)``, the MSE over the channels and pixels of each image.
* SSIM: BasicSR's ``calculate_ssim``, i.e. its MATLAB-style ``_ssim``: an 11-tap Gaussian window of sigma 1.5
  (``cv2.getGaussianKernel(11, 1.5)``), population statistics, C1 = (0.01 * 255)^2 and C2 = (0.03 * 255)^2, the
  map averaged over the pixels whose window lies inside the image, then over channels. That is
  ``skimage.metrics.structural_similarity(data_range=255, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`` (see :func:`ganslim.metrics.image.ssim`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganslim.errors import GanslimError
from ganslim.metrics.fid import quantize_uint8
from ganslim.metrics.image import psnr, ssim

# BT.601 luma of R, G, B in [0, 1] on the [16, 235] scale of 8-bit video (MATLAB's rgb2ycbcr, BasicSR's).
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
PIXEL_MAX = 255.0


def rgb_to_y(images: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 luma on the [0, 255] scale (16 for black, 235 for white)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise GanslimError(f"rgb_to_y takes (N, 3, H, W) RGB images, got shape {tuple(images.shape)}")
    weights = torch.tensor(Y_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True) + Y_OFFSET


def _compared(output: Tensor, target: Tensor, crop_border: int, y_channel: bool, name: str) -> tuple[Tensor, Tensor]:
    """The two images as they are compared: quantised, border-cropped, maybe Y; float64 on [0, 255]."""
    if output.dim() != 4 or output.shape != target.shape:
        raise GanslimError(f"{name}: output and target must both be (N, C, H, W) with the same shape, got "
                           f"{tuple(output.shape)} and {tuple(target.shape)}")
    height, width = output.shape[-2:]
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise GanslimError(f"{name}: crop_border={crop_border!r} is not a non-negative integer (use the scale)")
    if 2 * crop_border >= min(height, width):
        raise GanslimError(f"{name}: a border of {crop_border} pixels leaves nothing of {height}x{width} images: "
                           f"pass larger images or a smaller crop_border")
    if y_channel and output.shape[1] not in (1, 3):
        raise GanslimError(f"{name}: the Y channel needs RGB (or grayscale) images, these have {output.shape[1]} "
                           f"channels: pass y_channel=False")
    pair = []
    for images in (output, target):
        pixels = quantize_uint8(images, value_range=(0.0, 1.0)).to(torch.float64)
        if crop_border:
            pixels = pixels[..., crop_border:-crop_border, crop_border:-crop_border]
        if y_channel and pixels.shape[1] == 3:  # a grayscale image is its own luma, as in BasicSR
            pixels = rgb_to_y(pixels / PIXEL_MAX)
        pair.append(pixels)
    return pair[0], pair[1]


def sr_psnr(output: Tensor, target: Tensor, crop_border: int, y_channel: bool = True) -> Tensor:
    """PSNR in dB of each super-resolved image (see the module docstring); ``inf`` where they are equal.

    Args:
        output: (N, C, H, W) super-resolved images in [0, 1] (clamped and quantised here).
        target: (N, C, H, W) ground-truth images in [0, 1].
        crop_border: pixels dropped on each side before comparing (the scale, by convention).
        y_channel: compare the BT.601 luma (True, as SR papers report) or all RGB channels.
    Returns:
        (N,) float64.
    """
    x, y = _compared(output, target, crop_border, y_channel, "sr_psnr")
    return psnr(x, y, data_range=PIXEL_MAX)


def sr_ssim(output: Tensor, target: Tensor, crop_border: int, y_channel: bool = True) -> Tensor:
    """SSIM of each super-resolved image, BasicSR's MATLAB-style convention (see the module docstring).

    Arguments as :func:`sr_psnr`; after the border crop the images need at least 11 x 11 pixels. Returns (N,).
    """
    x, y = _compared(output, target, crop_border, y_channel, "sr_ssim")
    return ssim(x, y, value_range=(0.0, PIXEL_MAX))
